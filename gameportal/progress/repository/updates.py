"""SQL of what game servers do: report progress, unlock achievements, read progress.

The common progress update (nothing unlocks, the level does not rise) is one statement on
the pool, shared by the updates that arrive together: `fast_updates`. Anything else runs
in a transaction on one connection, the row locked first (`lock_progress`), each
statement seeing what committed before it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

# --- the fast path -------------------------------------------------------------------------


@dataclass(frozen=True)
class FastUpdate:
    """One game server's update, as the fast statement takes it."""

    key_hash: bytes
    game_id: uuid.UUID
    user_id: uuid.UUID
    idempotency_key: str
    request_hash: bytes
    points: int
    experience: int
    level: int | None
    stats: dict[str, int]
    new_id: uuid.UUID


def _new_state(base: str, level_fallback: str) -> str:
    """The state after update `r`, as one row (experience, points, stats, level), from
    `base`: the locked row (`p`) or a new one. Level: from the game's thresholds when it
    has any, else what the game server sent, else unchanged."""
    if base == "p":
        experience, points = "p.experience + r.dx", "p.points + r.dp"
        stats = (
            "p.stats || coalesce((SELECT jsonb_object_agg(d.key, "
            "coalesce((p.stats->>d.key)::bigint, 0) + d.value::bigint) "
            "FROM jsonb_each_text(r.stats) d), '{}'::jsonb)"
        )
    else:
        experience, points = "r.dx", "r.dp"
        stats = (
            "coalesce((SELECT jsonb_object_agg(d.key, d.value::bigint) "
            "FROM jsonb_each_text(r.stats) d), '{}'::jsonb)"
        )
    return f"""
        SELECT s.*, coalesce(
            CASE WHEN r.basis IS NOT NULL THEN
                1 + (SELECT count(*) FROM unnest(r.thresholds) t
                     WHERE t <= CASE r.basis WHEN 'points' THEN s.points ELSE s.experience END)
            END,
            r.lvl, {level_fallback}) AS level
        FROM (SELECT {experience} AS experience, {points} AS points, {stats} AS stats) s"""  # noqa: S608


# Nothing more to do than add: the level does not rise, and no criterion the new state
# meets is still locked. Read from the statement's snapshot, an unlock committed meanwhile
# can only make this say "more to do" when there is not: then the careful path runs.
def _quiet(old_level: str) -> str:
    return f"""
        n.level <= {old_level} AND NOT EXISTS (
            SELECT FROM achievements a
            WHERE a.game_id = r.game_id AND a.criteria IS NOT NULL
              AND CASE a.criteria->>'type'
                    WHEN 'level' THEN n.level >= (a.criteria->>'min')::bigint
                    WHEN 'points' THEN n.points >= (a.criteria->>'min')::bigint
                    WHEN 'stat' THEN coalesce((n.stats->>(a.criteria->>'stat'))::bigint, 0)
                                     >= (a.criteria->>'min')::bigint
                    ELSE false END
              AND NOT EXISTS (SELECT FROM achievement_unlocks x
                              WHERE x.user_id = r.user_id AND x.achievement_id = a.id))"""  # noqa: S608


# Updates come as arrays, one element per update (a batch: see service/batching.py), no
# two for the same player and game, nor with the same idempotency key.
#
# One round trip does it all, or nothing: each update's key, game and player checks; the
# replay of a key already used; the upsert of the progress row (ON CONFLICT DO UPDATE locks
# the row and computes from its latest version, so concurrent updates add up); the week
# and month scores; the idempotency record (a plain INSERT: the same key in flight
# elsewhere makes the statement fail on the primary key and roll back, and each update is
# then tried alone); whether the leaderboards must hear of it (`scored`: their NOTIFY goes
# after the commit, see board_events.ScoreNotices). Where an update has more to do (an
# unlock, a level-up) the upsert's WHERE leaves its row alone, nothing is written for it,
# and the caller takes the careful path. The rows are locked in (game, player) order, so that
# concurrent batches cannot deadlock. One row per update comes back, in their order,
# saying what happened to it.
_FAST_UPDATES = f"""
WITH
q AS (
    SELECT * FROM unnest({{arrays}})
        WITH ORDINALITY
        AS q (key_hash, game_id, user_id, idem, req_hash, dp, dx, lvl, stats, new_id, ord)
),
chk AS (
    SELECT q.*, k.id AS key_id, k.game_id AS key_game,
           c.type = 'GAME' AND c.status = 'PUBLISHED' AS game_live, u.is_blocked AS blocked,
           lv.basis, lv.thresholds, pr.request_hash AS prior_hash, pr.result AS prior_result
    FROM q
    LEFT JOIN game_api_keys k ON k.key_hash = q.key_hash
    LEFT JOIN content c ON c.id = q.game_id
    LEFT JOIN users u ON u.id = q.user_id
    LEFT JOIN game_levels lv ON lv.game_id = q.game_id
    LEFT JOIN progress_updates pr ON pr.game_id = q.game_id AND pr.idempotency_key = q.idem
),
go AS (
    SELECT * FROM chk
    WHERE key_game = game_id AND game_live AND NOT blocked AND prior_hash IS NULL
      AND (lvl IS NULL OR basis IS NULL)
),
up AS (
    INSERT INTO user_progress AS p (id, user_id, game_id, level, experience, points, stats)
    SELECT r.new_id, r.user_id, r.game_id, n.level, n.experience, n.points, n.stats
    FROM go r, LATERAL ({_new_state("new", "1")}) n
    WHERE {_quiet("1")}
    ORDER BY r.game_id, r.user_id
    ON CONFLICT (user_id, game_id) DO UPDATE SET
        (level, experience, points, stats, points_reached_at, last_activity_at, updated_at) = (
            SELECT n.level, n.experience, n.points, n.stats,
                   CASE WHEN r.dp <> 0 THEN now() ELSE p.points_reached_at END, now(), now()
            FROM go r, LATERAL ({_new_state("p", "p.level")}) n
            WHERE r.user_id = p.user_id AND r.game_id = p.game_id)
    WHERE (SELECT {_quiet("p.level")}
           FROM go r, LATERAL ({_new_state("p", "p.level")}) n
           WHERE r.user_id = p.user_id AND r.game_id = p.game_id)
    RETURNING p.user_id, p.game_id, p.level, p.experience, p.points, p.stats,
              p.last_activity_at
),
done AS (
    SELECT go.ord, go.idem, go.req_hash, go.dp, up.*
    FROM up JOIN go ON go.user_id = up.user_id AND go.game_id = up.game_id
),
board AS (
    INSERT INTO leaderboard_scores AS s (game_id, period, period_start, user_id, points, reached_at)
    SELECT d.game_id, b.period, b.start, d.user_id, d.dp, now()
    FROM done d, (VALUES ('week', date_trunc('week', now() AT TIME ZONE 'UTC')::date),
                         ('month', date_trunc('month', now() AT TIME ZONE 'UTC')::date))
                 AS b (period, start)
    WHERE d.dp <> 0
    ORDER BY d.game_id, b.period, d.user_id
    ON CONFLICT (game_id, period, period_start, user_id) DO UPDATE
    SET points = s.points + excluded.points, reached_at = now()
),
rec AS (
    INSERT INTO progress_updates (game_id, idempotency_key, user_id, request_hash, result)
    SELECT d.game_id, d.idem, d.user_id, d.req_hash,
           jsonb_build_object('level', d.level, 'experience', d.experience,
                              'points', d.points, 'stats', d.stats,
                              'last_activity_at', d.last_activity_at,
                              'unlocked', '[]'::jsonb)
    FROM done d
)
SELECT c.ord, c.key_id, c.key_game, c.game_live, c.blocked, c.basis IS NOT NULL AS has_levels,
       c.prior_hash, c.prior_result,
       d.level, d.experience, d.points, d.stats, d.last_activity_at,
       d.dp <> 0 AS scored
FROM chk c LEFT JOIN done d ON d.ord = c.ord
ORDER BY c.ord
"""  # noqa: S608 - only module constants are interpolated
_TYPES = ("bytea", "uuid", "uuid", "text", "bytea", "bigint", "bigint", "int", "jsonb", "uuid")
FAST_UPDATES_SQL = _FAST_UPDATES.replace(
    "{arrays}", ", ".join(f"${n}::{t}[]" for n, t in enumerate(_TYPES, 1))
)
# The same for one update, its fields as plain parameters. PostgreSQL plans a statement
# afresh on every run while its custom plans look cheaper than the generic one; fed arrays
# of one, it saw their length in each custom plan (one row) but not in the generic plan
# (it guesses ten), and so planned every run: about 1.1 ms each, against 0.4 ms of work,
# on a game with 10,000 players and their history. A quiet game's updates come one at a
# time. An ARRAY[$n] has one element in every plan, so after its first five runs it keeps
# the generic plan.
FAST_UPDATE_ONE_SQL = _FAST_UPDATES.replace(
    "{arrays}", ", ".join(f"ARRAY[${n}::{t}]" for n, t in enumerate(_TYPES, 1))
)


async def fast_updates(
    pool: asyncpg.Pool | asyncpg.Connection, updates: Sequence[FastUpdate]
) -> list[asyncpg.Record]:
    """What became of each update, in their order: applied (`level` is set), or why not."""
    if len(updates) == 1:
        one: list[asyncpg.Record] = await pool.fetch(FAST_UPDATE_ONE_SQL, *_params(updates[0]))
        return one
    columns = zip(*(_params(u) for u in updates), strict=True)
    rows: list[asyncpg.Record] = await pool.fetch(FAST_UPDATES_SQL, *(list(c) for c in columns))
    return rows


def _params(u: FastUpdate) -> tuple[object, ...]:
    """An update's fields in the statements' parameter order (_TYPES)."""
    return (
        u.key_hash,
        u.game_id,
        u.user_id,
        u.idempotency_key,
        u.request_hash,
        u.points,
        u.experience,
        u.level,
        u.stats,
        u.new_id,
    )


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
