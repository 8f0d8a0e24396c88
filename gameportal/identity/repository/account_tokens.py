"""Single-use mailed tokens (password reset, email verification): stored as SHA-256,
spent by one conditional UPDATE. Every change to an account's tokens is made under the
account's row lock (the services take it first), so two links used at once serialise
instead of deadlocking, and a link voided by the other one is refused."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.models import AccountToken


async def recent_token_exists(
    session: AsyncSession, user_id: uuid.UUID, *, purpose: str, within: timedelta
) -> bool:
    found = await session.scalar(
        select(AccountToken.token_hash)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == purpose,
            AccountToken.created_at > func.now() - within,
        )
        .limit(1)
    )
    return found is not None


def add_account_token(
    session: AsyncSession, *, user_id: uuid.UUID, purpose: str, token_hash: str, ttl: timedelta
) -> None:
    session.add(
        AccountToken(
            token_hash=token_hash, purpose=purpose, user_id=user_id, expires_at=func.now() + ttl
        )
    )


async def spend_account_token(
    session: AsyncSession, token_hash: str, *, purpose: str
) -> uuid.UUID | None:
    """The token's user, if it was unused, unexpired and for this purpose; it is used from
    now on. Two concurrent uses of one token: exactly one gets the user."""
    user_id: uuid.UUID | None = await session.scalar(
        update(AccountToken)
        .where(
            AccountToken.token_hash == token_hash,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > func.now(),
        )
        .values(used_at=func.now())
        .returning(AccountToken.user_id)
    )
    return user_id


async def live_account_token_owner(
    session: AsyncSession, token_hash: str, *, purpose: str
) -> uuid.UUID | None:
    """Whose token this is, if it is unused and unexpired; nothing is changed (a page
    that shows a link's form before it is used)."""
    user_id: uuid.UUID | None = await session.scalar(
        select(AccountToken.user_id).where(
            AccountToken.token_hash == token_hash,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > func.now(),
        )
    )
    return user_id


async def account_token_owner(
    session: AsyncSession, token_hash: str, *, purpose: str
) -> uuid.UUID | None:
    """Whose token this is (live or not): the account to lock before spending it."""
    user_id: uuid.UUID | None = await session.scalar(
        select(AccountToken.user_id).where(
            AccountToken.token_hash == token_hash, AccountToken.purpose == purpose
        )
    )
    return user_id


async def void_account_tokens(session: AsyncSession, user_id: uuid.UUID, *, purpose: str) -> None:
    """Every live token of the account for `purpose` expires now: a newer link, a new
    password or a verified address makes the links mailed before it worthless."""
    await session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > func.now(),
        )
        .values(expires_at=func.now())
    )
