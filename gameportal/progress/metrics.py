from prometheus_client import Counter, Histogram

UPDATES = Counter(
    "gameportal_progress_updates_total",
    "Progress updates from game servers, by how they were answered: `fast` (one statement), "
    "`careful` (an unlock or level-up to handle), `replayed` (a retried idempotency key)",
    ["path"],
)
UNLOCKS = Counter(
    "gameportal_achievement_unlocks_total",
    "Achievements unlocked, by what unlocked them: `criteria` or `game_server`",
    ["by"],
)
LEVEL_UPS = Counter("gameportal_level_ups_total", "Players reaching a higher level")
BATCH_SIZE = Histogram(
    "gameportal_progress_batch_size",
    "Progress updates written by one statement (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1000),
)
