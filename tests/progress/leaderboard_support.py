"""Leaderboard test helpers: games, players and scores written straight into PostgreSQL
(as the progress API writes them, NOTIFY included), and polling a board until it shows
what a test waits for."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import httpx
import orjson

from gameportal.progress.board_events import notify_scores


async def published_game(db: asyncpg.Pool, status: str = "PUBLISHED") -> uuid.UUID:
    slug = f"game-{uuid.uuid4().hex[:12]}"
    game_id: uuid.UUID = await db.fetchval(
        """
        INSERT INTO content (id, type, title, slug, format, content, status, published_at)
        VALUES (gen_random_uuid(), 'GAME', 'A game', $1, 'MARKDOWN', '', $2, now())
        RETURNING id
        """,
        slug,
        status,
    )
    return game_id


async def bulk_players(db: asyncpg.Pool, count: int) -> list[uuid.UUID]:
    """Players made with one COPY (no password anyone could log in with)."""
    ids = [uuid.uuid4() for _ in range(count)]
    tag = uuid.uuid4().hex[:8]
    await db.copy_records_to_table(
        "users",
        records=[(u, f"bulk-{tag}-{i}@example.com", f"Player {i}", "!") for i, u in enumerate(ids)],
        columns=["id", "email", "name", "password_hash"],
    )
    return ids


async def bulk_scores(
    db: asyncpg.Pool,
    game_id: uuid.UUID,
    scores: Sequence[tuple[uuid.UUID, int, datetime]],
    *,
    period: str = "all",
    start: date | None = None,
) -> None:
    """Scores written with one COPY and no NOTIFY: for boards not loaded yet."""
    if period == "all":
        await db.copy_records_to_table(
            "user_progress",
            records=[(uuid.uuid4(), u, game_id, p, t) for u, p, t in scores],
            columns=["id", "user_id", "game_id", "points", "points_reached_at"],
        )
    else:
        await db.copy_records_to_table(
            "leaderboard_scores",
            records=[(game_id, period, start, u, p, t) for u, p, t in scores],
            columns=["game_id", "period", "period_start", "user_id", "points", "reached_at"],
        )


async def set_score(
    db: asyncpg.Pool,
    game_id: uuid.UUID,
    user_id: uuid.UUID,
    points: int,
    *,
    at: datetime | None = None,
    period: str = "all",
    start: date | None = None,
    notify: bool = True,
) -> None:
    """One player's score, and the NOTIFY, in one transaction, as a progress update does."""
    at = at or datetime.now(UTC)
    async with db.acquire() as conn, conn.transaction():
        if period == "all":
            await conn.execute(
                """
                INSERT INTO user_progress (id, user_id, game_id, points, points_reached_at)
                VALUES (gen_random_uuid(), $1, $2, $3, $4)
                ON CONFLICT (user_id, game_id) DO UPDATE
                SET points = EXCLUDED.points, points_reached_at = EXCLUDED.points_reached_at
                """,
                user_id,
                game_id,
                points,
                at,
            )
        else:
            await conn.execute(
                """
                INSERT INTO leaderboard_scores
                    (game_id, period, period_start, user_id, points, reached_at)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (game_id, period, period_start, user_id) DO UPDATE
                SET points = EXCLUDED.points, reached_at = EXCLUDED.reached_at
                """,
                game_id,
                period,
                start,
                user_id,
                points,
                at,
            )
        if notify:
            await notify_scores(conn, game_id, user_id)


async def board(client: httpx.AsyncClient, game_id: uuid.UUID, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/api/v1/games/{game_id}/leaderboard", params=params)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    # Written by hand on the hot path: byte for byte what orjson writes for the same dict.
    assert response.content == orjson.dumps(data)
    return data


async def whole_board(
    client: httpx.AsyncClient, game_id: uuid.UUID, **params: Any
) -> list[dict[str, Any]]:
    """Every entry, page after page through the cursors."""
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await board(
            client, game_id, limit=200, **params, **({"cursor": cursor} if cursor else {})
        )
        entries.extend(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            return entries


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 1.0, every: float = 0.02
) -> float:
    """Seconds until `check` holds; fails if it does not within `within` seconds."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(every)
