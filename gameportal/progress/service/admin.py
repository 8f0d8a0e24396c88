"""The rules of administering progress: a game's API keys (admins), its achievements and
level thresholds (editors and admins)."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.content.media.schemas import MediaRead
from gameportal.content.media.service import unknown_media
from gameportal.errors import InvalidField
from gameportal.kit.ids import new_id
from gameportal.kit.time import utcnow
from gameportal.models import Achievement, GameApiKey, GameLevels, MediaAsset
from gameportal.progress.keys import SHOWN_PREFIX, key_hash, new_key
from gameportal.progress.repository import admin as repo
from gameportal.progress.schemas import (
    AchievementCreate,
    AchievementRead,
    AchievementUpdate,
    LevelsPut,
)
from gameportal.progress.service.errors import (
    AchievementKeyTaken,
    AchievementNotFound,
    ApiKeyNotFound,
    GameNotFound,
    LevelsNotFound,
)

log = structlog.get_logger(__name__)


async def _game(session: AsyncSession, game_id: uuid.UUID) -> None:
    if await repo.content_type(session, game_id) != "GAME":
        raise GameNotFound(f"no game {game_id} (a content item of type GAME)")


# --- API keys --------------------------------------------------------------------------------


async def create_key(
    session: AsyncSession, admin_id: uuid.UUID, game_id: uuid.UUID, name: str
) -> tuple[GameApiKey, str]:
    """A new key for the game, and the key itself (which is not kept)."""
    await _game(session, game_id)
    key = new_key()
    row = await repo.add_key(
        session,
        game_id=game_id,
        name=name,
        prefix=key[:SHOWN_PREFIX],
        key_hash=key_hash(key),
        created_by=admin_id,
    )
    log.info("game_api_key_created", key_id=str(row.id), game_id=str(game_id), by=str(admin_id))
    return row, key


async def list_keys(
    session: AsyncSession, game_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> list[GameApiKey]:
    await _game(session, game_id)
    return await repo.keys_page(session, game_id, before=before, limit=limit)


async def revoke_key(
    session: AsyncSession, admin_id: uuid.UUID, game_id: uuid.UUID, key_id: uuid.UUID
) -> None:
    """Deleted, so the next request with it is refused (every request looks it up)."""
    if not await repo.delete_key(session, game_id, key_id):
        raise ApiKeyNotFound(f"the game has no API key {key_id}")
    log.info("game_api_key_revoked", key_id=str(key_id), game_id=str(game_id), by=str(admin_id))


# --- achievements ----------------------------------------------------------------------------


async def _media(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, MediaAsset]:
    found = await repo.media_assets(session, ids, lock=True)
    missing = [i for i in ids if i not in found]
    if missing:
        raise unknown_media(ids, missing)
    return found


def achievement_read(item: Achievement, media: dict[uuid.UUID, MediaAsset]) -> AchievementRead:
    return AchievementRead(
        id=item.id,
        game_id=item.game_id,
        key=item.key,
        title=item.title,
        description=item.description,
        points=item.points,
        hidden=item.hidden,
        criteria=item.criteria,  # validated into its model
        # Assets deleted since are left out (a deleted asset leaves its id behind).
        media=[MediaRead.model_validate(media[m]) for m in item.media if m in media],
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


async def _flush(session: AsyncSession, key: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:  # two editors took the same key at the same moment
        if "uq_achievements_game_id_key" in str(exc.orig):
            raise AchievementKeyTaken(key) from None
        raise


async def create_achievement(session: AsyncSession, body: AchievementCreate) -> AchievementRead:
    if await repo.content_type(session, body.game_id) != "GAME":
        raise InvalidField("gameId", "no game (content of type GAME) has this id", "not_found")
    if await repo.key_taken(session, body.game_id, body.key, other_than=None):
        raise AchievementKeyTaken(body.key)
    media = await _media(session, body.media)
    item = Achievement(
        id=new_id(),
        game_id=body.game_id,
        key=body.key,
        title=body.title,
        description=body.description,
        points=body.points,
        hidden=body.hidden,
        criteria=body.criteria.model_dump() if body.criteria else None,
        media=body.media,
    )
    session.add(item)
    await _flush(session, item.key)
    await session.refresh(item)
    return achievement_read(item, media)


async def _found(session: AsyncSession, achievement_id: uuid.UUID, *, lock: bool) -> Achievement:
    item = await repo.achievement(session, achievement_id, lock=lock)
    if item is None:
        raise AchievementNotFound(f"no achievement {achievement_id}")
    return item


async def get_achievement(session: AsyncSession, achievement_id: uuid.UUID) -> AchievementRead:
    item = await _found(session, achievement_id, lock=False)
    return achievement_read(item, await repo.media_assets(session, item.media))


async def list_achievements(
    session: AsyncSession, *, game_id: uuid.UUID | None, after: uuid.UUID | None, limit: int
) -> list[AchievementRead]:
    items = await repo.achievements_page(session, game_id=game_id, after=after, limit=limit)
    media = await repo.media_assets(session, [m for i in items for m in i.media])
    return [achievement_read(i, media) for i in items]


async def update_achievement(
    session: AsyncSession, achievement_id: uuid.UUID, body: AchievementUpdate
) -> AchievementRead:
    """Changed criteria apply from each player's next progress update on."""
    item = await _found(session, achievement_id, lock=True)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    for required in ("key", "title", "description", "points", "hidden", "media"):
        if required in changes and changes[required] is None:
            raise InvalidField(required, "cannot be null", "null")
    if (
        "key" in changes
        and changes["key"] != item.key
        and await repo.key_taken(session, item.game_id, changes["key"], other_than=item.id)
    ):
        raise AchievementKeyTaken(changes["key"])
    media = await _media(session, body.media) if body.media is not None else None
    if "criteria" in changes and body.criteria is not None:
        changes["criteria"] = body.criteria.model_dump()
    if "media" in changes:
        changes["media"] = body.media
    if changes:
        for name, value in changes.items():
            setattr(item, name, value)
        item.updated_at = utcnow()
        await _flush(session, item.key)
        await session.refresh(item)
    if media is None:
        media = await repo.media_assets(session, item.media)
    return achievement_read(item, media)


async def delete_achievement(session: AsyncSession, achievement_id: uuid.UUID) -> None:
    """Gone with its unlocks; the points it gave stay with the players."""
    item = await _found(session, achievement_id, lock=True)
    await session.delete(item)
    await session.flush()


# --- levels ----------------------------------------------------------------------------------


async def put_levels(session: AsyncSession, game_id: uuid.UUID, body: LevelsPut) -> GameLevels:
    """Players' levels follow the new thresholds from their next progress update on."""
    await _game(session, game_id)
    return await repo.put_levels(session, game_id, body.basis, body.thresholds)


async def get_levels(session: AsyncSession, game_id: uuid.UUID) -> GameLevels:
    await _game(session, game_id)
    found = await repo.levels(session, game_id)
    if found is None:
        raise LevelsNotFound("the game server sets this game's levels")
    return found


async def delete_levels(session: AsyncSession, game_id: uuid.UUID) -> None:
    await _game(session, game_id)
    if not await repo.delete_levels(session, game_id):
        raise LevelsNotFound("the game has no level thresholds")
