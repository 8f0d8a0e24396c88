"""SQL of reading progress and achievements: players' own, game servers', the public
catalogue. One Core statement each on the asyncpg pool."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

_PROGRESS = """
SELECT id, user_id, game_id, level, experience, points, stats, personalized_offers,
       last_activity_at, created_at, updated_at
FROM user_progress
"""


async def progress(
    pool: asyncpg.Pool, user_id: uuid.UUID, game_id: uuid.UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        _PROGRESS + "WHERE user_id = $1 AND game_id = $2", user_id, game_id
    )
    return row


async def progress_page(
    pool: asyncpg.Pool, user_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> list[asyncpg.Record]:
    """The player's progress in every game, most recently started first."""
    rows: list[asyncpg.Record] = await pool.fetch(
        _PROGRESS
        + "WHERE user_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        user_id,
        before,
        limit,
    )
    return rows


async def held(
    pool: asyncpg.Pool, user_id: uuid.UUID, game_ids: Sequence[uuid.UUID]
) -> list[asyncpg.Record]:
    """The player's unlocks in these games, oldest first."""
    rows: list[asyncpg.Record] = await pool.fetch(
        """
        SELECT x.game_id, x.achievement_id AS id, a.key, x.unlocked_at
        FROM achievement_unlocks x JOIN achievements a ON a.id = x.achievement_id
        WHERE x.user_id = $1 AND x.game_id = ANY($2::uuid[])
        ORDER BY x.unlocked_at, x.achievement_id
        """,
        user_id,
        list(game_ids),
    )
    return rows


async def game_is_open(pool: asyncpg.Pool, game_id: uuid.UUID) -> bool:
    found: bool = await pool.fetchval(
        "SELECT EXISTS (SELECT FROM content "
        "WHERE id = $1 AND type = 'GAME' AND status = 'PUBLISHED')",
        game_id,
    )
    return found


_ACHIEVEMENT = (
    "a.id, a.game_id, a.key, a.title, a.description, a.points, a.hidden, a.criteria, a.media"
)


async def catalogue_page(
    pool: asyncpg.Pool,
    game_id: uuid.UUID,
    *,
    viewer: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[asyncpg.Record]:
    """A game's achievements in the order they were made, each with when `viewer` (if
    any) unlocked it."""
    rows: list[asyncpg.Record] = await pool.fetch(
        f"""
        SELECT {_ACHIEVEMENT}, mine.unlocked_at
        FROM achievements a
        LEFT JOIN achievement_unlocks mine ON mine.achievement_id = a.id AND mine.user_id = $2
        WHERE a.game_id = $1 AND ($3::uuid IS NULL OR a.id > $3)
        ORDER BY a.id LIMIT $4
        """,  # noqa: S608 - a module constant
        game_id,
        viewer,
        after,
        limit,
    )
    return rows


async def unlock_counts(pool: asyncpg.Pool, game_id: uuid.UUID) -> tuple[int, dict[uuid.UUID, int]]:
    """How many players a game has (progress rows), and how many hold each achievement.
    Counting costs in proportion to the players: callers keep the answer a while."""
    rows = await pool.fetch(
        """
        SELECT a.id, (SELECT count(*) FROM achievement_unlocks x WHERE x.achievement_id = a.id)
                     AS unlocks,
               (SELECT count(*) FROM user_progress WHERE game_id = $1) AS players
        FROM achievements a WHERE a.game_id = $1
        """,
        game_id,
    )
    players = rows[0]["players"] if rows else 0
    return players, {r["id"]: r["unlocks"] for r in rows}


async def my_unlocks_page(
    pool: asyncpg.Pool,
    user_id: uuid.UUID,
    *,
    game_id: uuid.UUID | None,
    before: uuid.UUID | None,
    limit: int,
) -> list[asyncpg.Record]:
    """The player's unlocks, newest first; the cursor is the achievement id of the last
    one shown, and the order continues from that unlock's time."""
    rows: list[asyncpg.Record] = await pool.fetch(
        f"""
        SELECT {_ACHIEVEMENT}, x.unlocked_at
        FROM achievement_unlocks x JOIN achievements a ON a.id = x.achievement_id
        WHERE x.user_id = $1 AND ($2::uuid IS NULL OR x.game_id = $2)
          AND ($3::uuid IS NULL OR (x.unlocked_at, x.achievement_id) < (
                SELECT c.unlocked_at, c.achievement_id FROM achievement_unlocks c
                WHERE c.user_id = $1 AND c.achievement_id = $3))
        ORDER BY x.unlocked_at DESC, x.achievement_id DESC LIMIT $4
        """,  # noqa: S608 - a module constant
        user_id,
        game_id,
        before,
        limit,
    )
    return rows


_MEDIA = """
SELECT id, file_name, url, mime_type, size_bytes, width, height, renditions, created_at,
       uploaded_by, related_content_id, status, reject_reason, sha256, updated_at
FROM media_assets WHERE id = ANY($1::uuid[]) AND (NOT $2 OR status = 'READY')
"""


async def media(
    conn: asyncpg.Pool | asyncpg.Connection, ids: Sequence[uuid.UUID], *, ready_only: bool
) -> dict[uuid.UUID, asyncpg.Record]:
    if not ids:
        return {}
    rows = await conn.fetch(_MEDIA, list(set(ids)), ready_only)
    return {r["id"]: r for r in rows}
