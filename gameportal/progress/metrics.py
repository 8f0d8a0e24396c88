from prometheus_client import Counter

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
