"""All leaderboard SQL: one Core statement each on the asyncpg pool (the hot path).

A board ranks the players with points in it: no points (a progress row with experience
only, or points gained and lost again within the week) is no rank. Blocked players are
left out where the scores are read, so a board never holds them; erased players have no
rows left (their scores go with the account)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import date

import asyncpg

from gameportal.progress.leaderboard import Period

# Each score comes with its time in whole microseconds since 1970, bounded to the 53 bits
# the sort key gives it (up to the year 2255).
_GAME_OPEN = """
SELECT EXISTS (SELECT 1 FROM content WHERE id = $1 AND type = 'GAME' AND status = 'PUBLISHED')
"""

# Read in the board index's order: the sorted list is then built in one linear pass.
_ALL_TIME = """
SELECT p.points,
       greatest(0, least((extract(epoch FROM p.points_reached_at) * 1e6)::bigint,
                         9007199254740991)),
       p.user_id
FROM user_progress p JOIN users u ON u.id = p.user_id
WHERE p.game_id = $1 AND p.points <> 0 AND NOT u.is_blocked
ORDER BY p.points DESC, p.points_reached_at, p.user_id
"""

_PERIOD = """
SELECT s.points,
       greatest(0, least((extract(epoch FROM s.reached_at) * 1e6)::bigint,
                         9007199254740991)),
       s.user_id
FROM leaderboard_scores s JOIN users u ON u.id = s.user_id
WHERE s.game_id = $1 AND s.period = $2 AND s.period_start = $3 AND s.points <> 0
  AND NOT u.is_blocked
ORDER BY s.points DESC, s.reached_at, s.user_id
"""

# The current scores of some players in some games, on every board of those games held
# in memory ($3, $4: the periods and period starts held): one statement for a batch of
# NOTIFYs. A player with no row here (no points, blocked, erased) is off those boards.
_PLAYERS = """
WITH wanted AS (SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS w(game_id, user_id))
SELECT w.game_id, w.user_id, 'all' AS period, NULL::date AS period_start, p.points,
       greatest(0, least((extract(epoch FROM p.points_reached_at) * 1e6)::bigint,
                         9007199254740991))
         AS micros
FROM wanted w
JOIN user_progress p ON p.game_id = w.game_id AND p.user_id = w.user_id AND p.points <> 0
JOIN users u ON u.id = w.user_id AND NOT u.is_blocked
UNION ALL
SELECT w.game_id, w.user_id, s.period, s.period_start, s.points,
       greatest(0, least((extract(epoch FROM s.reached_at) * 1e6)::bigint,
                         9007199254740991))
FROM wanted w
CROSS JOIN unnest($3::text[], $4::date[]) AS b(period, period_start)
JOIN leaderboard_scores s
  ON s.game_id = w.game_id AND s.period = b.period AND s.period_start = b.period_start
 AND s.user_id = w.user_id AND s.points <> 0
JOIN users u ON u.id = w.user_id AND NOT u.is_blocked
"""

_NAMES = "SELECT id, name FROM users WHERE id = ANY($1::uuid[])"

LOAD_CHUNK = 20_000


async def game_is_open(pool: asyncpg.Pool, game_id: uuid.UUID) -> bool:
    """A published GAME item: the only content that has leaderboards."""
    found: bool = await pool.fetchval(_GAME_OPEN, game_id)
    return found


async def board_rows(
    pool: asyncpg.Pool, game_id: uuid.UUID, period: Period, start: date | None
) -> AsyncIterator[list[tuple[int, int, uuid.UUID]]]:
    """A board's (points, reached_at µs, user id) in rank order, in chunks: one snapshot
    (a read-only repeatable-read transaction), and the event loop gets a turn between
    chunks while a board of a million players loads."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        if period == "all":
            cursor = await conn.cursor(_ALL_TIME, game_id)
        else:
            cursor = await conn.cursor(_PERIOD, game_id, period, start)
        while True:
            rows = await cursor.fetch(LOAD_CHUNK)
            if not rows:
                return
            yield rows
            if len(rows) < LOAD_CHUNK:
                return


async def player_scores(
    pool: asyncpg.Pool,
    pairs: Iterable[tuple[uuid.UUID, uuid.UUID]],
    boards: Iterable[tuple[Period, date]],
) -> list[asyncpg.Record]:
    games, users = zip(*pairs, strict=True) if pairs else ((), ())
    periods, starts = zip(*boards, strict=True) if boards else ((), ())
    rows: list[asyncpg.Record] = await pool.fetch(
        _PLAYERS, list(games), list(users), list(periods), list(starts)
    )
    return rows


async def display_names(pool: asyncpg.Pool, users: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = await pool.fetch(_NAMES, users)
    return {row["id"]: row["name"] for row in rows}
