"""Reading progress and achievements: the public catalogue of a game (with unlock rates,
hidden ones masked), and a player's own progress and unlocks."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from gameportal.content.media.schemas import PublicMedia
from gameportal.kit.pagination import encode_cursor
from gameportal.progress.repository import reads as repo
from gameportal.progress.schemas import (
    AchievementHeld,
    CatalogueEntry,
    MyAchievement,
    ProgressRead,
)
from gameportal.progress.service.errors import GameNotFound, ProgressNotFound
from gameportal.progress.service.runtime import ProgressRuntime, UnlockCounts


def progress_read(row: Mapping[str, Any], held: Sequence[Mapping[str, Any]]) -> ProgressRead:
    return ProgressRead(
        id=row["id"],
        user_id=row["user_id"],
        game_id=row["game_id"],
        level=row["level"],
        experience=row["experience"],
        points=row["points"],
        stats=row["stats"],
        achievements=[
            AchievementHeld(id=h["id"], key=h["key"], unlocked_at=h["unlocked_at"])
            for h in held
            if h["game_id"] == row["game_id"]
        ],
        personalized_offers=list(row["personalized_offers"]),
        last_activity_at=row["last_activity_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def my_progress(pool: asyncpg.Pool, user_id: uuid.UUID, game_id: uuid.UUID) -> ProgressRead:
    row = await repo.progress(pool, user_id, game_id)
    if row is None:
        raise ProgressNotFound("you have no progress in this game yet")
    return progress_read(row, await repo.held(pool, user_id, [game_id]))


async def my_progress_page(
    pool: asyncpg.Pool, user_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> tuple[list[ProgressRead], str | None]:
    rows = await repo.progress_page(pool, user_id, before=before, limit=limit + 1)
    shown = rows[:limit]
    held = await repo.held(pool, user_id, [r["game_id"] for r in shown])
    cursor = encode_cursor(shown[-1]["id"]) if len(rows) > limit else None
    return [progress_read(r, held) for r in shown], cursor


def _entry(
    row: Mapping[str, Any],
    counts: UnlockCounts,
    media: Mapping[uuid.UUID, Mapping[str, Any]],
    *,
    viewer: uuid.UUID | None,
) -> CatalogueEntry:
    unlocked_at = row["unlocked_at"]
    # Hidden and not the viewer's: what it is and how to get it stay secret.
    masked = row["hidden"] and unlocked_at is None
    return CatalogueEntry(
        id=row["id"],
        key=None if masked else row["key"],
        title=None if masked else row["title"],
        description=None if masked else row["description"],
        points=row["points"],
        hidden=row["hidden"],
        criteria=None if masked else row["criteria"],
        media=[]
        if masked
        else [PublicMedia.model_validate(dict(media[m])) for m in row["media"] if m in media],
        unlock_rate=counts.rate(row["id"]),
        unlocked=None if viewer is None else unlocked_at is not None,
        unlocked_at=unlocked_at,
    )


async def catalogue(
    pool: asyncpg.Pool,
    runtime: ProgressRuntime,
    game_id: uuid.UUID,
    *,
    viewer: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
) -> tuple[list[CatalogueEntry], str | None]:
    if not await repo.game_is_open(pool, game_id):
        raise GameNotFound(f"no published game {game_id}")
    rows = await repo.catalogue_page(pool, game_id, viewer=viewer, after=after, limit=limit + 1)
    shown = rows[:limit]
    counts = await runtime.unlock_stats.of(pool, game_id) if shown else UnlockCounts(0, {})
    media = await repo.media(pool, [m for r in shown for m in r["media"]], ready_only=True)
    cursor = encode_cursor(shown[-1]["id"]) if len(rows) > limit else None
    return [_entry(r, counts, media, viewer=viewer) for r in shown], cursor


async def my_achievements(
    pool: asyncpg.Pool,
    runtime: ProgressRuntime,
    user_id: uuid.UUID,
    *,
    game_id: uuid.UUID | None,
    before: uuid.UUID | None,
    limit: int,
) -> tuple[list[MyAchievement], str | None]:
    rows = await repo.my_unlocks_page(
        pool, user_id, game_id=game_id, before=before, limit=limit + 1
    )
    shown = rows[:limit]
    media = await repo.media(pool, [m for r in shown for m in r["media"]], ready_only=True)
    counts = {g: await runtime.unlock_stats.of(pool, g) for g in {r["game_id"] for r in shown}}
    items = [
        MyAchievement(
            game_id=r["game_id"],
            unlocked_at=r["unlocked_at"],
            achievement=_entry(r, counts[r["game_id"]], media, viewer=user_id),
        )
        for r in shown
    ]
    cursor = encode_cursor(shown[-1]["id"]) if len(rows) > limit else None
    return items, cursor
