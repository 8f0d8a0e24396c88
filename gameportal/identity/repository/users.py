"""User lookups, listing and erasure: ORM (writes, admin)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Select, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.identity.repository.sessions import SESSIONS_ENDED_CHANNEL
from gameportal.models import User, normalize_email

# NOTIFY channel (payload: the user id) for what other processes keep about a player
# outside this table: a block, unblock, rename or erasure. The leaderboards held in each
# API process listen, so a blocked or erased player leaves them at once.
USER_CHANNEL = "gameportal_users"

_NOTIFY = text("SELECT pg_notify(:channel, :id)")


async def announce_user_changed(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Delivered when the transaction commits (NOTIFY is transactional)."""
    await session.execute(_NOTIFY, {"channel": USER_CHANNEL, "id": str(user_id)})


async def email_taken(session: AsyncSession, email: str) -> bool:
    found = await session.scalar(select(User.id).where(User.email == email).limit(1))
    return found is not None


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    user: User | None = await session.scalar(
        select(User).where(User.email == email).with_for_update()
    )
    return user


async def get_user(session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False) -> User | None:
    stmt = select(User).where(User.id == user_id)
    if lock:
        stmt = stmt.with_for_update()
    user: User | None = await session.scalar(stmt)
    return user


async def lock_unblocked_admins(session: AsyncSession) -> list[uuid.UUID]:
    """Row-lock every active admin so two concurrent demotions cannot both pass the
    last-admin check."""
    rows = await session.scalars(
        select(User.id)
        .where(User.roles.any_() == "admin", User.is_blocked.is_(False))
        .order_by(User.id)
        .with_for_update()
    )
    return list(rows.all())


@dataclass(frozen=True)
class UserFilter:
    email_prefix: str | None = None
    role: str | None = None
    is_blocked: bool | None = None


def users_page(filters: UserFilter, *, after: uuid.UUID | None, limit: int) -> Select[User]:
    stmt = select(User).order_by(User.id).limit(limit)
    if after is not None:
        stmt = stmt.where(User.id > after)
    if filters.email_prefix:
        escaped = (
            normalize_email(filters.email_prefix)
            .replace("\\", "\\\\")
            .replace("%", "\\%")
            .replace("_", "\\_")
        )
        stmt = stmt.where(User.email.like(escaped + "%", escape="\\"))
    if filters.role:
        stmt = stmt.where(User.roles.any_() == filters.role)
    if filters.is_blocked is not None:
        stmt = stmt.where(User.is_blocked.is_(filters.is_blocked))
    return stmt


async def list_users(
    session: AsyncSession, filters: UserFilter, *, after: uuid.UUID | None, limit: int
) -> list[User]:
    return list((await session.scalars(users_page(filters, after=after, limit=limit))).all())


async def delete_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(delete(User).where(User.id == user_id))
    # Its sessions went with it (ON DELETE CASCADE), unrevoked: the live notification
    # streams of those sessions hear it as they hear any revocation, at commit.
    await session.execute(_NOTIFY, {"channel": SESSIONS_ENDED_CHANNEL, "id": str(user_id)})
