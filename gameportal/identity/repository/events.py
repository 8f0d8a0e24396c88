"""Security events: written through the pool when they must survive an error answer,
or with the request's session; listed for admins."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.models import SecurityEvent

# --- hot paths (asyncpg) -------------------------------------------------------------------


async def record_security_event(
    pool: asyncpg.Pool,
    *,
    event_id: uuid.UUID,
    kind: str,
    user_id: uuid.UUID | None,
    session_id: uuid.UUID | None,
    ip: str | None,
    detail: dict[str, Any],
) -> None:
    await pool.execute(
        "INSERT INTO security_events (id, kind, user_id, session_id, ip, detail) "
        "VALUES ($1, $2, $3, $4, $5::inet, $6::jsonb)",
        event_id,
        kind,
        user_id,
        session_id,
        ip,
        detail,
    )


# --- ORM (writes, admin) -------------------------------------------------------------------


async def list_security_events(
    session: AsyncSession, user_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> list[SecurityEvent]:
    stmt = (
        select(SecurityEvent)
        .where(SecurityEvent.user_id == user_id)
        .order_by(SecurityEvent.id.desc())
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(SecurityEvent.id < before)
    return list((await session.scalars(stmt)).all())


def add_security_event(
    session: AsyncSession,
    *,
    kind: str,
    user_id: uuid.UUID | None,
    session_id: uuid.UUID | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        SecurityEvent(kind=kind, user_id=user_id, session_id=session_id, ip=ip, detail=detail or {})
    )
