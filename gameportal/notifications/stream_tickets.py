"""Stream tickets: how a browser opens the live notification stream. EventSource sends
no Authorization header, and an access token in a URL would end up in logs, browser
history and Referer headers for as long as the token lives. So the page asks for a ticket
with its access token, and puts that in the URL instead: random, kept only as its SHA-256,
good once, for GAMEPORTAL_STREAM_TICKET_TTL_SECONDS, and only while its session lives.
A stream opened with one is the session's stream like any other: ending the session ends
it (live.py)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from gameportal.identity.service import Principal
from gameportal.notifications import ticket_repository as repo

# What a ticket may look like: token_urlsafe(32) makes 43 characters; anything much
# longer is not one of ours and is refused before it reaches the database.
MAX_TICKET_LENGTH = 64


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedTicket:
    ticket: str
    expires_at: datetime


async def issue(pool: asyncpg.Pool, principal: Principal, ttl: timedelta) -> IssuedTicket:
    ticket = secrets.token_urlsafe(32)  # 256 bits
    expires_at = await repo.issue(
        pool,
        ticket_hash=_hash(ticket),
        session_id=principal.session_id,
        user_id=principal.user_id,
        ttl=ttl,
    )
    return IssuedTicket(ticket=ticket, expires_at=expires_at)


async def redeem(pool: asyncpg.Pool, ticket: str, idle: timedelta) -> Principal | None:
    """The caller the ticket stands for, spending it; None if it opens nothing (unknown,
    used, expired, its session ended or its user blocked)."""
    if not ticket or len(ticket) > MAX_TICKET_LENGTH:
        return None
    row = await repo.spend(pool, ticket_hash=_hash(ticket), idle=idle)
    if row is None:
        return None
    user = dict(row)
    session_id = user.pop("session_id")
    return Principal(
        user_id=user["id"], session_id=session_id, roles=tuple(user["roles"]), user=user
    )
