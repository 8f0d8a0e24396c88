from prometheus_client import Counter, Gauge, Histogram

# Per API process, summed over the live ones.
BOARDS = Gauge(
    "gameportal_leaderboard_boards",
    "Leaderboards held in memory by the API processes",
    multiprocess_mode="livesum",
)
PLAYERS = Gauge(
    "gameportal_leaderboard_players",
    "Player entries held by those boards (about 150 bytes each)",
    multiprocess_mode="livesum",
)
LOADS = Counter(
    "gameportal_leaderboard_loads_total",
    "Boards read from the database: `first` (first read in this process), `reload` (after "
    "the LISTEN connection came back)",
    ["reason"],
)
LOAD_SECONDS = Histogram(
    "gameportal_leaderboard_load_seconds",
    "Time to read a board from the database and build it",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REREADS = Counter(
    "gameportal_leaderboard_rereads_total",
    "Players' scores read again after a NOTIFY (one statement per batch)",
)
