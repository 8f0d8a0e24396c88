"""Password reset tokens: stored as SHA-256, spent by one conditional UPDATE."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.models import PasswordResetToken


async def recent_reset_exists(
    session: AsyncSession, user_id: uuid.UUID, *, within: timedelta
) -> bool:
    found = await session.scalar(
        select(PasswordResetToken.token_hash)
        .where(
            PasswordResetToken.user_id == user_id,
            PasswordResetToken.created_at > func.now() - within,
        )
        .limit(1)
    )
    return found is not None


def add_reset_token(
    session: AsyncSession, *, user_id: uuid.UUID, token_hash: str, ttl: timedelta
) -> None:
    session.add(
        PasswordResetToken(token_hash=token_hash, user_id=user_id, expires_at=func.now() + ttl)
    )


async def spend_reset_token(session: AsyncSession, token_hash: str) -> uuid.UUID | None:
    """The token's user, if it was unused and unexpired; it is used from now on. Two
    concurrent resets with one token: exactly one gets the user."""
    user_id: uuid.UUID | None = await session.scalar(
        update(PasswordResetToken)
        .where(
            PasswordResetToken.token_hash == token_hash,
            PasswordResetToken.used_at.is_(None),
            PasswordResetToken.expires_at > func.now(),
        )
        .values(used_at=func.now())
        .returning(PasswordResetToken.user_id)
    )
    return user_id
