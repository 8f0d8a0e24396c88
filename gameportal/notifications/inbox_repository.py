"""SQL of a player's in-app inbox: their own IN_APP messages and every broadcast, once
delivered, with read state per user."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

_IN_INBOX = """
    m.type = 'IN_APP' AND m.status = 'SENT'
    AND (m.recipient_user_id = :me OR m.recipient_user_id IS NULL)
"""

_LIST_SQL = f"""
SELECT m.id, m.payload, m.created_at, m.sent_at, r.read_at,
       m.recipient_user_id IS NULL AS broadcast
FROM messages m
LEFT JOIN notification_reads r ON r.message_id = m.id AND r.user_id = :me
WHERE {_IN_INBOX}
  AND (CAST(:before AS uuid) IS NULL OR m.id < CAST(:before AS uuid))
  AND (NOT :unread OR r.message_id IS NULL)
ORDER BY m.id DESC
LIMIT :limit
"""  # noqa: S608 - only module constants are interpolated

_UNREAD_SQL = f"""
SELECT count(*) FROM messages m
WHERE {_IN_INBOX}
  AND NOT EXISTS (SELECT 1 FROM notification_reads r
                  WHERE r.message_id = m.id AND r.user_id = :me)
"""  # noqa: S608 - only module constants are interpolated

_MARK_ONE_SQL = f"""
INSERT INTO notification_reads (user_id, message_id)
SELECT :me, m.id FROM messages m WHERE m.id = :id AND {_IN_INBOX}
ON CONFLICT DO NOTHING
RETURNING message_id
"""  # noqa: S608 - only module constants are interpolated

_IS_MINE_SQL = f"SELECT 1 FROM messages m WHERE m.id = :id AND {_IN_INBOX}"  # noqa: S608

_MARK_ALL_SQL = f"""
INSERT INTO notification_reads (user_id, message_id)
SELECT :me, m.id FROM messages m WHERE {_IN_INBOX}
ON CONFLICT DO NOTHING
"""  # noqa: S608 - only module constants are interpolated


async def list_inbox(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    before: uuid.UUID | None,
    limit: int,
    unread_only: bool,
) -> list[Row[tuple[object, ...]]]:
    result = await session.execute(
        text(_LIST_SQL),
        {"me": user_id, "before": before, "limit": limit, "unread": unread_only},
    )
    return list(result.all())


# --- live streams (asyncpg: a stream outlives pooled ORM connections across an outage) -----
#
# A stream's replay goes in order of delivery (sent_at, then id), not creation: a message
# scheduled for later, or retried, is delivered after messages created after it, and a
# client resuming after one of those must still get it.
#
# A stream hears of a message while its worker is still marking it SENT (the announcement
# is part of delivering it), so PROCESSING counts as delivered here: a replay run just
# after an announcement it missed must still find that message. Those have no sent_at
# yet and come after every SENT one; the stream skips what it has sent.
_STREAM_COLUMNS = "m.id, m.payload, m.created_at, m.sent_at"

_STREAM_DELIVERED_SQL = f"""
WITH found AS (
    (SELECT {_STREAM_COLUMNS}, false AS broadcast FROM messages m
     WHERE m.recipient_user_id = $1 AND m.type = 'IN_APP' AND m.status = 'SENT'
       AND (m.sent_at, m.id) > ($2, $3)
     ORDER BY m.sent_at, m.id LIMIT $4)
    UNION ALL
    (SELECT {_STREAM_COLUMNS}, true FROM messages m
     WHERE m.type = 'IN_APP' AND m.recipient_user_id IS NULL AND m.status = 'SENT'
       AND (m.sent_at, m.id) > ($2, $3)
     ORDER BY m.sent_at, m.id LIMIT $4)
)
SELECT f.*, r.read_at FROM found f
LEFT JOIN notification_reads r ON r.message_id = f.id AND r.user_id = $1
ORDER BY f.sent_at, f.id
LIMIT $4
"""  # noqa: S608 - only module constants are interpolated

# The stream's messages with their read state for user $1, from a WHERE that follows.
_STREAM_ITEMS = f"""
SELECT {_STREAM_COLUMNS}, m.recipient_user_id IS NULL AS broadcast, r.read_at
FROM messages m
LEFT JOIN notification_reads r ON r.message_id = m.id AND r.user_id = $1
"""  # noqa: S608 - only module constants are interpolated

_STREAM_IN_DELIVERY_SQL = f"""{_STREAM_ITEMS}
WHERE m.status = 'PROCESSING' AND m.type = 'IN_APP'
  AND (m.recipient_user_id = $1 OR m.recipient_user_id IS NULL)
ORDER BY m.id
LIMIT $2
"""

# When a message of this user's inbox became due: it was claimed, announced and recorded
# after that, however late the recording came (a worker holds what it delivered during a
# database outage, and records it when the database is back).
_DUE_AT_SQL = """
SELECT GREATEST(m.created_at, m.scheduled_at) FROM messages m
WHERE m.id = $2 AND m.type = 'IN_APP' AND m.status IN ('SENT', 'PROCESSING')
  AND (m.recipient_user_id = $1 OR m.recipient_user_id IS NULL)
"""

_STREAM_IDS_SQL = f"""{_STREAM_ITEMS}
WHERE m.id = ANY($2::uuid[]) AND m.type = 'IN_APP' AND m.status IN ('SENT', 'PROCESSING')
  AND (m.recipient_user_id = $1 OR m.recipient_user_id IS NULL)
ORDER BY m.id
"""


async def stream_delivered(
    pool: asyncpg.Pool,
    user_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID],
    limit: int,
) -> list[asyncpg.Record]:
    """In order of delivery: the inbox messages delivered after `after` (sent_at, id)."""
    rows: list[asyncpg.Record] = await pool.fetch(
        _STREAM_DELIVERED_SQL, user_id, after[0], after[1], limit
    )
    return rows


async def stream_in_delivery(
    pool: asyncpg.Pool, user_id: uuid.UUID, *, limit: int
) -> list[asyncpg.Record]:
    """Oldest first: the inbox messages being delivered at this moment (PROCESSING)."""
    rows: list[asyncpg.Record] = await pool.fetch(_STREAM_IN_DELIVERY_SQL, user_id, limit)
    return rows


async def due_at(pool: asyncpg.Pool, user_id: uuid.UUID, message_id: uuid.UUID) -> datetime | None:
    """When a message of this user's inbox became due; None when it is not in their
    inbox."""
    at: datetime | None = await pool.fetchval(_DUE_AT_SQL, user_id, message_id)
    return at


async def stream_ids(
    pool: asyncpg.Pool, user_id: uuid.UUID, ids: list[uuid.UUID]
) -> list[asyncpg.Record]:
    """Oldest first: those of `ids` that are in this user's inbox."""
    rows: list[asyncpg.Record] = await pool.fetch(_STREAM_IDS_SQL, user_id, ids)
    return rows


async def unread_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    count = await session.scalar(text(_UNREAD_SQL), {"me": user_id})
    return int(count or 0)


async def mark_read(session: AsyncSession, user_id: uuid.UUID, message_id: uuid.UUID) -> bool:
    """False when the message is not in this user's inbox (another user's, or unknown)."""
    marked = await session.scalar(text(_MARK_ONE_SQL), {"me": user_id, "id": message_id})
    if marked is not None:
        return True
    # Already read is fine; not ours is not.
    return await session.scalar(text(_IS_MINE_SQL), {"me": user_id, "id": message_id}) is not None


async def mark_all_read(session: AsyncSession, user_id: uuid.UUID) -> int:
    result = await session.execute(text(_MARK_ALL_SQL), {"me": user_id})
    return int(getattr(result, "rowcount", 0) or 0)
