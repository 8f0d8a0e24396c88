"""All stream-ticket SQL: one statement to issue a ticket, one to spend it. Both run on
the pool (asyncpg): the stream route is a hot path and holds no ORM session."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg

# The session's expired tickets go as a new one comes: a session keeps at most the
# tickets of the last few seconds, and those of ended sessions leave with the session
# (ON DELETE CASCADE, when `gameportal prune` deletes it).
_ISSUE_SQL = """
WITH expired AS (
    DELETE FROM stream_tickets WHERE session_id = $2 AND expires_at <= now()
)
INSERT INTO stream_tickets (ticket_hash, session_id, user_id, expires_at)
VALUES ($1, $2, $3, now() + $4::interval)
RETURNING expires_at
"""


async def issue(
    pool: asyncpg.Pool,
    *,
    ticket_hash: str,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    ttl: timedelta,
) -> datetime:
    expires_at: datetime = await pool.fetchval(_ISSUE_SQL, ticket_hash, session_id, user_id, ttl)
    return expires_at


# Spent whatever happens next (the DELETE), so it works once even for concurrent callers;
# then the caller behind it, only if the ticket is in time and its session still live
# (the same conditions as the per-request check in identity.repository.sessions).
_SPEND_SQL = """
WITH spent AS (
    DELETE FROM stream_tickets WHERE ticket_hash = $1
    RETURNING session_id, user_id, expires_at
)
SELECT sp.session_id, u.id, u.email, u.name, u.created_at, u.last_login_at, u.is_blocked,
       u.country, u.roles, u.preferences, u.email_verified_at
FROM spent sp
JOIN sessions s ON s.id = sp.session_id AND s.user_id = sp.user_id
JOIN users u ON u.id = s.user_id
WHERE sp.expires_at > now()
  AND s.revoked_at IS NULL AND s.expires_at > now()
  AND s.last_used_at > now() - $2::interval
  AND NOT u.is_blocked
"""


async def spend(pool: asyncpg.Pool, *, ticket_hash: str, idle: timedelta) -> asyncpg.Record | None:
    """The live session and user a ticket stood for, or None: unknown, used, expired, or
    its session ended."""
    row: asyncpg.Record | None = await pool.fetchrow(_SPEND_SQL, ticket_hash, idle)
    return row
