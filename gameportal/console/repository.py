"""The console's own reads: counts across domains for the overview, and the security
events of every account. Read-only; every write goes through a domain's service.

The counts scan their tables (a few of them whole): fine for a page an operator opens
now and then, not for anything a player's request runs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.models import Content, Message, SecurityEvent, Session, User

LOGIN_FAILED = "login_failed"


@dataclass(frozen=True)
class PlayerCounts:
    total: int
    new_today: int
    active_sessions: int
    sign_ins_24h: int
    failed_logins_24h: int
    lockouts_24h: int


async def player_counts(session: AsyncSession, *, idle: timedelta) -> PlayerCounts:
    day_start = func.date_trunc("day", func.timezone("UTC", func.now()))
    since = func.now() - timedelta(hours=24)
    users = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(func.timezone("UTC", User.created_at) >= day_start),
            ).select_from(User)
        )
    ).one()
    sessions = (
        await session.execute(
            select(
                func.count().filter(
                    Session.revoked_at.is_(None),
                    Session.expires_at > func.now(),
                    Session.last_used_at > func.now() - idle,
                ),
                func.count().filter(Session.created_at > since),
            ).select_from(Session)
        )
    ).one()
    events = (
        await session.execute(
            select(
                func.count().filter(SecurityEvent.kind == LOGIN_FAILED),
                func.count().filter(SecurityEvent.kind == "login_lockout"),
            ).where(SecurityEvent.created_at > since)
        )
    ).one()
    return PlayerCounts(
        total=users[0],
        new_today=users[1],
        active_sessions=sessions[0],
        sign_ins_24h=sessions[1],
        failed_logins_24h=events[0],
        lockouts_24h=events[1],
    )


async def queue_counts(session: AsyncSession) -> dict[str, dict[str, int]]:
    """{type: {status: count}} of the messages not yet sent (and the failed ones)."""
    rows = await session.execute(
        select(Message.type, Message.status, func.count())
        .where(Message.status.in_(("PENDING", "PROCESSING", "FAILED")))
        .group_by(Message.type, Message.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for kind, status, count in rows:
        counts.setdefault(kind, {})[status] = count
    return counts


async def content_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Content.status, func.count()).group_by(Content.status))
    return {status: count for status, count in rows}


@dataclass(frozen=True)
class EventRow:
    id: uuid.UUID
    kind: str
    created_at: datetime
    user_id: uuid.UUID | None
    email: str | None
    ip: str | None
    detail: dict[str, Any]


async def security_events(
    session: AsyncSession,
    *,
    kind: str | None = None,
    before: uuid.UUID | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[EventRow]:
    """Every account's security events, newest first (ids are time-ordered: the id is
    the cursor), with the address of the account each is about."""
    stmt = (
        select(SecurityEvent, User.email)
        .outerjoin(User, User.id == SecurityEvent.user_id)
        .order_by(SecurityEvent.id.desc())
        .limit(limit)
    )
    if kind:
        stmt = stmt.where(SecurityEvent.kind == kind)
    if before is not None:
        stmt = stmt.where(SecurityEvent.id < before)
    if since is not None:
        stmt = stmt.where(SecurityEvent.created_at > since)
    rows = await session.execute(stmt)
    return [
        EventRow(
            id=event.id,
            kind=event.kind,
            created_at=event.created_at,
            user_id=event.user_id,
            email=email,
            ip=str(event.ip) if event.ip is not None else None,
            detail=event.detail or {},
        )
        for event, email in rows
    ]


async def event_kinds(session: AsyncSession) -> list[str]:
    rows = await session.scalars(select(SecurityEvent.kind).distinct().order_by(SecurityEvent.kind))
    return list(rows.all())
