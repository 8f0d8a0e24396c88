"""Conversions (a player in a campaign did what it was for), and a visitor's assignments
passing to the account they log in to or register."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.errors import Conflict
from gameportal.liveops import evaluation_repository as repo
from gameportal.liveops.errors import CampaignNotFound
from gameportal.liveops.evaluation import SHARED_UUIDS
from gameportal.progress.service.errors import GameNotFound, InvalidApiKey, PlayerNotFound

log = structlog.get_logger(__name__)


class NotInCampaign(Conflict):
    slug = "not-in-campaign"
    title = "The player is not in this campaign"


def _read(campaign_id: uuid.UUID, user_id: uuid.UUID, row: asyncpg.Record) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "user_id": user_id,
        "variant_id": row["variant_id"],
        "assigned_at": row["assigned_at"],
        "conversion_event": row["conversion_event"],
        "event": row["conversion_name"],
        "value": row["conversion_value"],
    }


async def convert(
    pool: asyncpg.Pool,
    campaign_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    event: str | None,
    value: Decimal | None,
) -> tuple[dict[str, Any], bool]:
    """Record the player's conversion once: (the row, True) the first time; (the row as
    first recorded, False) after. 404 for no such campaign, 409 for a player not in it."""
    for _ in range(2):
        row = await repo.convert(pool, campaign_id, user_id, event, value)
        if row is not None:
            return _read(campaign_id, user_id, row), True
        found = await repo.conversion(pool, campaign_id, user_id)
        if not found["campaign_exists"]:
            raise CampaignNotFound(f"no campaign {campaign_id}")
        if found["variant_id"] is None:
            raise NotInCampaign(
                "the player has no variant in this campaign: it is assigned by GET "
                "/api/v1/campaigns/active when the campaign matches"
            )
        if found["conversion_event"] is not None:
            return _read(campaign_id, user_id, found), False
        # Logged between the two statements (or its visitor row just passed to the
        # account): the update finds it now.
    raise NotInCampaign("the player's assignment is not settled yet; try again")


async def convert_for_game(
    pool: asyncpg.Pool,
    key_hash: bytes,
    game_id: uuid.UUID,
    user_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    event: str | None,
    value: Decimal | None,
) -> tuple[dict[str, Any], bool, uuid.UUID]:
    """A game server's conversion on behalf of a player: its key must be the game's, and
    a campaign with a segment must be in that game (one without takes any game's key).
    Also the key's id (to stamp its use)."""
    access = await repo.server_access(pool, key_hash, user_id, campaign_id)
    if access["key_game"] is None:
        raise InvalidApiKey("the API key is unknown or was revoked")
    if access["key_game"] != game_id:
        raise GameNotFound(f"no game {game_id} for this API key")
    if access["user_id"] is None:
        raise PlayerNotFound(f"no player {user_id}")
    segment_game = access["segment_game"]
    if access["campaign_id"] is None or (segment_game is not None and segment_game != str(game_id)):
        raise CampaignNotFound(f"no campaign {campaign_id} in game {game_id}")
    row, first = await convert(pool, campaign_id, user_id, event=event, value=value)
    return row, first, access["key_id"]


# --- carry-over ------------------------------------------------------------------------------


def visitor_from(header: str | None) -> uuid.UUID | None:
    """The visitor an X-Anonymous-Id header names; None for none, a malformed one or one
    every unset client shares (a login does not fail over it)."""
    if not header:
        return None
    try:
        visitor = uuid.UUID(header.strip())
    except ValueError:
        return None
    return None if visitor in SHARED_UUIDS else visitor


def _account_id(user: Any) -> uuid.UUID:
    # Identity's AuthResult.user: the ORM row (register) or its JSON (login).
    return uuid.UUID(str(user["id"] if isinstance(user, dict) else user.id))


async def carry_over(pool: asyncpg.Pool, header: str | None, user: Any) -> int:
    """After a login with X-Anonymous-Id (`header`): the visitor's rows pass to the account
    where it has none for that campaign (or exclusion group); the account's own rows win.
    How many passed."""
    visitor = visitor_from(header)
    if visitor is None:
        return 0
    async with pool.acquire() as conn:
        return await _carry_over(conn, visitor, _account_id(user))


async def carry_over_in(session: AsyncSession, header: str | None, user: Any) -> int:
    """The same inside a registration's transaction (the account is not committed yet):
    in a savepoint, so that a lost race leaves the registration whole."""
    visitor = visitor_from(header)
    if visitor is None:
        return 0
    user_id = _account_id(user)
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    return await _carry_over(driver, visitor, user_id)


async def _carry_over(conn: asyncpg.Connection, visitor: uuid.UUID, user_id: uuid.UUID) -> int:
    # A request of the player logging the same campaign meanwhile makes the move break a
    # unique index: then the account's row exists, and the next try leaves the visitor's.
    for _ in range(3):
        try:
            async with conn.transaction():
                moved = await repo.carry_over(conn, visitor, user_id)
        except asyncpg.UniqueViolationError:
            continue
        if moved:
            log.info("liveops_assignments_carried_over", user_id=str(user_id), rows=moved)
        return moved
    return 0
