"""SQL of the administration of progress (API keys, achievements, level thresholds): ORM
statements in the request's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.models import Achievement, Content, GameApiKey, GameLevels, MediaAsset


async def content_type(session: AsyncSession, content_id: uuid.UUID) -> str | None:
    """The type of the content item, or None when there is none. KEY SHARE-locked until
    commit, so it cannot vanish under what is being attached to it."""
    found: str | None = await session.scalar(
        select(Content.type).where(Content.id == content_id).with_for_update(key_share=True)
    )
    return found


# --- API keys --------------------------------------------------------------------------------


async def add_key(
    session: AsyncSession,
    *,
    game_id: uuid.UUID,
    name: str,
    prefix: str,
    key_hash: bytes,
    created_by: uuid.UUID,
) -> GameApiKey:
    key = GameApiKey(
        game_id=game_id, name=name, prefix=prefix, key_hash=key_hash, created_by=created_by
    )
    session.add(key)
    await session.flush()
    await session.refresh(key)
    return key


async def keys_page(
    session: AsyncSession, game_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> list[GameApiKey]:
    query = select(GameApiKey).where(GameApiKey.game_id == game_id)
    if before is not None:
        query = query.where(GameApiKey.id < before)
    rows = await session.scalars(query.order_by(GameApiKey.id.desc()).limit(limit))
    return list(rows)


async def delete_key(session: AsyncSession, game_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(GameApiKey)
        .where(GameApiKey.id == key_id, GameApiKey.game_id == game_id)
        .returning(GameApiKey.id)
    )
    return result.first() is not None


# --- achievements ----------------------------------------------------------------------------


async def achievement(
    session: AsyncSession, achievement_id: uuid.UUID, *, lock: bool = False
) -> Achievement | None:
    query = select(Achievement).where(Achievement.id == achievement_id)
    if lock:
        query = query.with_for_update()
    found: Achievement | None = await session.scalar(query)
    return found


async def achievements_page(
    session: AsyncSession, *, game_id: uuid.UUID | None, after: uuid.UUID | None, limit: int
) -> list[Achievement]:
    query = select(Achievement)
    if game_id is not None:
        query = query.where(Achievement.game_id == game_id)
    if after is not None:
        query = query.where(Achievement.id > after)
    rows = await session.scalars(query.order_by(Achievement.id).limit(limit))
    return list(rows)


async def key_taken(
    session: AsyncSession, game_id: uuid.UUID, key: str, *, other_than: uuid.UUID | None
) -> bool:
    query = select(Achievement.id).where(Achievement.game_id == game_id, Achievement.key == key)
    if other_than is not None:
        query = query.where(Achievement.id != other_than)
    return (await session.scalar(query.limit(1))) is not None


async def media_assets(
    session: AsyncSession, ids: Sequence[uuid.UUID], *, lock: bool = False
) -> dict[uuid.UUID, MediaAsset]:
    """The assets that exist among `ids`; with `lock`, KEY SHARE-locked until commit, so
    a concurrent delete waits and the achievement never names a missing asset."""
    if not ids:
        return {}
    query = select(MediaAsset).where(MediaAsset.id.in_(list(ids)))
    if lock:
        query = query.with_for_update(key_share=True)
    return {m.id: m for m in await session.scalars(query)}


# --- levels ----------------------------------------------------------------------------------


async def levels(session: AsyncSession, game_id: uuid.UUID) -> GameLevels | None:
    return await session.get(GameLevels, game_id, populate_existing=True)


async def put_levels(
    session: AsyncSession, game_id: uuid.UUID, basis: str, thresholds: list[int]
) -> GameLevels:
    await session.execute(
        pg_insert(GameLevels)
        .values(game_id=game_id, basis=basis, thresholds=thresholds)
        .on_conflict_do_update(
            index_elements=[GameLevels.game_id],
            set_={"basis": basis, "thresholds": thresholds, "updated_at": func.now()},
        )
    )
    found = await levels(session, game_id)
    assert found is not None
    return found


async def delete_levels(session: AsyncSession, game_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(GameLevels).where(GameLevels.game_id == game_id).returning(GameLevels.game_id)
    )
    return result.first() is not None
