"""SQL of what game servers do: report progress, unlock achievements, read progress.

The common progress update (nothing unlocks, the level does not rise) is one statement on
the pool: `fast_update`. Anything else runs in a transaction on one connection, the row
locked first (`lock_progress`), each statement seeing what committed before it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from gameportal.progress.board_events import LEADERBOARD_CHANNEL

# --- the fast path -------------------------------------------------------------------------


def _new_state(base: str, level_fallback: str) -> str:
    """The state after the change, as one row (experience, points, stats, level), from
    `base`: the locked row (`p`) or a new one. Level: from the game's thresholds when it
    has any, else what the game server sent, else unchanged."""
    if base == "p":
        experience, points = "p.experience + $7", "p.points + $6"
        stats = (
            "p.stats || coalesce((SELECT jsonb_object_agg(d.key, "
            "coalesce((p.stats->>d.key)::bigint, 0) + d.value::bigint) "
            "FROM jsonb_each_text($9) d), '{}'::jsonb)"
        )
    else:
        experience, points = "$7::bigint", "$6::bigint"
        stats = (
            "coalesce((SELECT jsonb_object_agg(d.key, d.value::bigint) "
            "FROM jsonb_each_text($9) d), '{}'::jsonb)"
        )
    return f"""
        SELECT s.*, coalesce(
            (SELECT 1 + (SELECT count(*) FROM unnest(lv.thresholds) t
                         WHERE t <= CASE lv.basis WHEN 'points' THEN s.points
                                    ELSE s.experience END)
             FROM lv),
            $8, {level_fallback}) AS level
        FROM (SELECT {experience} AS experience, {points} AS points, {stats} AS stats) s"""  # noqa: S608


# Nothing more to do than add: the level does not rise, and no criterion the new state
# meets is still locked. Read from the statement's snapshot, an unlock committed meanwhile
# can only make this say "more to do" when there is not: then the careful path runs.
def _quiet(old_level: str) -> str:
    return f"""
        n.level <= {old_level} AND NOT EXISTS (
            SELECT FROM achievements a
            WHERE a.game_id = $2 AND a.criteria IS NOT NULL
              AND CASE a.criteria->>'type'
                    WHEN 'level' THEN n.level >= (a.criteria->>'min')::bigint
                    WHEN 'points' THEN n.points >= (a.criteria->>'min')::bigint
                    WHEN 'stat' THEN coalesce((n.stats->>(a.criteria->>'stat'))::bigint, 0)
                                     >= (a.criteria->>'min')::bigint
                    ELSE false END
              AND NOT EXISTS (SELECT FROM achievement_unlocks x
                              WHERE x.user_id = $3 AND x.achievement_id = a.id))"""  # noqa: S608


# $1 key hash, $2 game, $3 player, $4 idempotency key, $5 request hash, $6 points delta,
# $7 experience delta, $8 level (or null), $9 stats to add (jsonb), $10 id of a new row.
#
# One round trip does it all, or nothing: the key, game and player checks; the replay of
# a key already used; the upsert of the progress row (ON CONFLICT DO UPDATE locks the row
# and computes from its latest version, so concurrent updates add up); the week and month
# scores; the idempotency record (a plain INSERT: the same key in flight elsewhere makes
# this statement fail on the primary key and roll back, and the caller replays the
# winner's result); the leaderboards' NOTIFY. Where the update has more to do (an unlock,
# a level-up) its WHERE leaves the row alone, nothing is written, and the caller takes the
# careful path. The final SELECT always gives one row saying which case this was.
FAST_UPDATE_SQL = f"""
WITH
k AS (SELECT id, game_id FROM game_api_keys WHERE key_hash = $1),
g AS (SELECT type = 'GAME' AND status = 'PUBLISHED' AS live FROM content WHERE id = $2),
u AS (SELECT is_blocked FROM users WHERE id = $3),
lv AS (SELECT basis, thresholds FROM game_levels WHERE game_id = $2),
prior AS (
    SELECT user_id, request_hash, result FROM progress_updates
    WHERE game_id = $2 AND idempotency_key = $4
),
go AS (
    SELECT FROM k, g, u
    WHERE k.game_id = $2 AND g.live AND NOT u.is_blocked
      AND NOT EXISTS (SELECT FROM prior)
      AND ($8::int IS NULL OR NOT EXISTS (SELECT FROM lv))
),
up AS (
    INSERT INTO user_progress AS p (id, user_id, game_id, level, experience, points, stats)
    SELECT $10, $3, $2, n.level, n.experience, n.points, n.stats
    FROM go, LATERAL ({_new_state("new", "1")}) n
    WHERE {_quiet("1")}
    ON CONFLICT (user_id, game_id) DO UPDATE SET
        (level, experience, points, stats, points_reached_at, last_activity_at, updated_at) = (
            SELECT n.level, n.experience, n.points, n.stats,
                   CASE WHEN $6 <> 0 THEN now() ELSE p.points_reached_at END, now(), now()
            FROM ({_new_state("p", "p.level")}) n)
    WHERE (SELECT {_quiet("p.level")} FROM ({_new_state("p", "p.level")}) n)
    RETURNING p.level, p.experience, p.points, p.stats, p.last_activity_at
),
board AS (
    INSERT INTO leaderboard_scores AS s (game_id, period, period_start, user_id, points, reached_at)
    SELECT $2, b.period, b.start, $3, $6, now()
    FROM up, (VALUES ('week', date_trunc('week', now() AT TIME ZONE 'UTC')::date),
                     ('month', date_trunc('month', now() AT TIME ZONE 'UTC')::date))
             AS b (period, start)
    WHERE $6 <> 0
    ON CONFLICT (game_id, period, period_start, user_id) DO UPDATE
    SET points = s.points + excluded.points, reached_at = now()
),
rec AS (
    INSERT INTO progress_updates (game_id, idempotency_key, user_id, request_hash, result)
    SELECT $2, $4, $3, $5,
           jsonb_build_object('level', up.level, 'experience', up.experience,
                              'points', up.points, 'stats', up.stats,
                              'last_activity_at', up.last_activity_at,
                              'unlocked', '[]'::jsonb)
    FROM up
)
SELECT (SELECT id FROM k) AS key_id, (SELECT game_id FROM k) AS key_game,
       (SELECT live FROM g) AS game_live, (SELECT is_blocked FROM u) AS blocked,
       EXISTS (SELECT FROM lv) AS has_levels,
       (SELECT request_hash FROM prior) AS prior_hash, (SELECT result FROM prior) AS prior_result,
       up.level, up.experience, up.points, up.stats, up.last_activity_at,
       (SELECT pg_notify('{LEADERBOARD_CHANNEL}', $2::text || ':' || $3::text)
        FROM up WHERE $6 <> 0) AS notified
FROM (SELECT) AS one LEFT JOIN up ON true
"""  # noqa: S608 - only module constants are interpolated


async def fast_update(
    pool: asyncpg.Pool,
    *,
    key_hash: bytes,
    game_id: uuid.UUID,
    user_id: uuid.UUID,
    idempotency_key: str,
    request_hash: bytes,
    points: int,
    experience: int,
    level: int | None,
    stats: dict[str, int],
    new_id: uuid.UUID,
) -> asyncpg.Record:
    row: asyncpg.Record = await pool.fetchrow(
        FAST_UPDATE_SQL,
        key_hash,
        game_id,
        user_id,
        idempotency_key,
        request_hash,
        points,
        experience,
        level,
        stats,
        new_id,
    )
    return row


# --- access ----------------------------------------------------------------------------------

# Who may do what, in one row whatever exists: the key's game (null: no such key), whether
# the game is a published GAME, the player (null: unknown), the game's level thresholds.
_ACCESS_SQL = """
SELECT k.id AS key_id, k.game_id AS key_game,
       c.type = 'GAME' AND c.status = 'PUBLISHED' AS game_live, c.title AS game_title,
       u.is_blocked AS blocked, lv.basis AS level_basis, lv.thresholds
FROM (SELECT) AS one
LEFT JOIN game_api_keys k ON k.key_hash = $1
LEFT JOIN content c ON c.id = $2
LEFT JOIN users u ON u.id = $3
LEFT JOIN game_levels lv ON lv.game_id = $2
"""


async def access(
    conn: asyncpg.Connection | asyncpg.Pool, key_hash: bytes, game_id: uuid.UUID, user_id: uuid.UUID
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(_ACCESS_SQL, key_hash, game_id, user_id)
    return row


async def touch_key(pool: asyncpg.Pool, key_id: uuid.UUID) -> None:
    await pool.execute("UPDATE game_api_keys SET last_used_at = now() WHERE id = $1", key_id)


# --- idempotency -----------------------------------------------------------------------------


async def claim_update(
    conn: asyncpg.Connection,
    game_id: uuid.UUID,
    idempotency_key: str,
    user_id: uuid.UUID,
    request_hash: bytes,
) -> bool:
    """Take the key for this transaction; False when it is taken (waiting first for a
    transaction that holds it to end)."""
    taken: bool | None = await conn.fetchval(
        """
        INSERT INTO progress_updates (game_id, idempotency_key, user_id, request_hash, result)
        VALUES ($1, $2, $3, $4, '{}'::jsonb)
        ON CONFLICT (game_id, idempotency_key) DO NOTHING
        RETURNING true
        """,
        game_id,
        idempotency_key,
        user_id,
        request_hash,
    )
    return bool(taken)


async def prior_update(
    conn: asyncpg.Connection | asyncpg.Pool, game_id: uuid.UUID, idempotency_key: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT request_hash, result FROM progress_updates "
        "WHERE game_id = $1 AND idempotency_key = $2",
        game_id,
        idempotency_key,
    )
    return row


async def record_update(
    conn: asyncpg.Connection, game_id: uuid.UUID, idempotency_key: str, result: dict[str, Any]
) -> None:
    await conn.execute(
        "UPDATE progress_updates SET result = $3 WHERE game_id = $1 AND idempotency_key = $2",
        game_id,
        idempotency_key,
        result,
    )


async def prune_updates(pool: asyncpg.Pool, *, older_than_hours: float, batch: int) -> int:
    """Forget idempotency keys past their retention, a batch at a time (short locks)."""
    deleted: int = await pool.fetchval(
        """
        WITH gone AS (
            DELETE FROM progress_updates WHERE (game_id, idempotency_key) IN (
                SELECT game_id, idempotency_key FROM progress_updates
                WHERE created_at < now() - make_interval(secs => $1 * 3600)
                LIMIT $2)
            RETURNING 1
        )
        SELECT count(*) FROM gone
        """,
        older_than_hours,
        batch,
    )
    return deleted


# --- the careful path ------------------------------------------------------------------------

_PROGRESS_COLUMNS = "id, level, experience, points, stats, last_activity_at"


async def lock_progress(
    conn: asyncpg.Connection, user_id: uuid.UUID, game_id: uuid.UUID, new_id: uuid.UUID
) -> asyncpg.Record:
    """The player's progress in the game, created on first use, locked until commit: every
    writer of a player's progress and unlocks in a game takes this lock first."""
    await conn.execute(
        "INSERT INTO user_progress (id, user_id, game_id) VALUES ($1, $2, $3) "
        "ON CONFLICT (user_id, game_id) DO NOTHING",
        new_id,
        user_id,
        game_id,
    )
    row: asyncpg.Record = await conn.fetchrow(
        f"SELECT {_PROGRESS_COLUMNS} FROM user_progress "  # noqa: S608 - a module constant
        "WHERE user_id = $1 AND game_id = $2 FOR UPDATE",
        user_id,
        game_id,
    )
    return row


_RULE_COLUMNS = "id, key, title, description, points, criteria"


async def criteria_rules(conn: asyncpg.Connection, game_id: uuid.UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {_RULE_COLUMNS} FROM achievements "  # noqa: S608 - a module constant
        "WHERE game_id = $1 AND criteria IS NOT NULL ORDER BY id",
        game_id,
    )
    return rows


async def achievement_by_key(
    conn: asyncpg.Connection, game_id: uuid.UUID, key: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_RULE_COLUMNS} FROM achievements "  # noqa: S608 - a module constant
        "WHERE game_id = $1 AND key = $2",
        game_id,
        key,
    )
    return row


async def held_achievements(
    conn: asyncpg.Connection, user_id: uuid.UUID, game_id: uuid.UUID
) -> dict[uuid.UUID, Any]:
    """The player's unlocks in the game: achievement id -> when."""
    rows = await conn.fetch(
        "SELECT achievement_id, unlocked_at FROM achievement_unlocks "
        "WHERE user_id = $1 AND game_id = $2",
        user_id,
        game_id,
    )
    return {r["achievement_id"]: r["unlocked_at"] for r in rows}


async def write_progress(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    game_id: uuid.UUID,
    *,
    level: int,
    experience: int,
    points: int,
    stats: dict[str, int],
    points_changed: bool,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""
        UPDATE user_progress
        SET level = $3, experience = $4, points = $5, stats = $6,
            points_reached_at = CASE WHEN $7 THEN now() ELSE points_reached_at END,
            last_activity_at = now(), updated_at = now()
        WHERE user_id = $1 AND game_id = $2
        RETURNING {_PROGRESS_COLUMNS}
        """,  # noqa: S608 - a module constant
        user_id,
        game_id,
        level,
        experience,
        points,
        stats,
        points_changed,
    )
    return row


async def insert_unlocks(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    game_id: uuid.UUID,
    achievement_ids: Sequence[uuid.UUID],
) -> dict[uuid.UUID, Any]:
    """No ON CONFLICT: under the progress row's lock an unlock cannot be there already,
    and if that ever broke, failing loudly beats rewarding twice."""
    rows = await conn.fetch(
        "INSERT INTO achievement_unlocks (user_id, achievement_id, game_id) "
        "SELECT $1, a, $2 FROM unnest($3::uuid[]) AS a "
        "RETURNING achievement_id, unlocked_at",
        user_id,
        game_id,
        list(achievement_ids),
    )
    return {r["achievement_id"]: r["unlocked_at"] for r in rows}


async def add_to_boards(
    conn: asyncpg.Connection, game_id: uuid.UUID, user_id: uuid.UUID, points: int
) -> None:
    """Points gained this ISO week and this calendar month (UTC): a new period is a new
    row, so each board starts empty at its boundary and nothing is ever deleted."""
    await conn.execute(
        """
        INSERT INTO leaderboard_scores AS s
            (game_id, period, period_start, user_id, points, reached_at)
        SELECT $1, b.period, b.start, $2, $3, now()
        FROM (VALUES ('week', date_trunc('week', now() AT TIME ZONE 'UTC')::date),
                     ('month', date_trunc('month', now() AT TIME ZONE 'UTC')::date))
             AS b (period, start)
        ON CONFLICT (game_id, period, period_start, user_id) DO UPDATE
        SET points = s.points + excluded.points, reached_at = now()
        """,
        game_id,
        user_id,
        points,
    )


async def notification_reach(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record:
    """The player's opt-outs, and whether any live device of theirs takes Web Push."""
    row: asyncpg.Record = await conn.fetchrow(
        """
        SELECT coalesce((SELECT opt_outs FROM notification_preferences WHERE user_id = $1),
                        ARRAY[]::text[]) AS opt_outs,
               EXISTS (SELECT FROM push_subscriptions s JOIN sessions d ON d.id = s.session_id
                       WHERE s.user_id = $1 AND d.revoked_at IS NULL
                         AND d.expires_at > now()) AS has_push
        """,
        user_id,
    )
    return row
