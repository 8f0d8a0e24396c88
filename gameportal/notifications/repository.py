"""All queue SQL. Enqueueing runs in the caller's transaction (ORM session); the worker's
claim, lease and completion statements run on the pool, one statement each."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from gameportal.models import Message, NotificationPreference, User
from gameportal.notifications import sealed
from gameportal.notifications.registry import ClaimedMessage

CHANNEL = "gameportal_queue"

# The unique index on dedupe keys leaves out rows without one, so every ON CONFLICT names
# that predicate too.
_ON_OPEN_DEDUPE_KEY = (
    "ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN ('PENDING', 'PROCESSING') "
    "DO NOTHING"
)

_INSERT_FROM_ARRAYS = """
    INSERT INTO messages (id, type, recipient_user_id, payload, priority, max_attempts,
                          scheduled_at, dedupe_key)
    SELECT id, type, recipient, payload::jsonb, priority, max_attempts,
           coalesce(scheduled_at, now()), dedupe_key
    FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::int[], $6::int[],
                $7::timestamptz[], $8::text[])
         AS m (id, type, recipient, payload, priority, max_attempts, scheduled_at, dedupe_key)
"""

# One statement per batch: the rows, and a NOTIFY per type that got any. NOTIFY is
# transactional, so workers wake when (and only if) the caller commits.
_ENQUEUE_SQL = f"""
WITH ins AS ({_INSERT_FROM_ARRAYS} {_ON_OPEN_DEDUPE_KEY} RETURNING id, type),
woken AS (SELECT pg_notify($9, type) FROM (SELECT DISTINCT type FROM ins) AS t)
-- `woken` must be read for it to run (a plain SELECT in WITH is evaluated lazily),
-- and its column used, or the planner removes the join as pointless.
SELECT ins.id, w.notified FROM ins CROSS JOIN (SELECT count(*) AS notified FROM woken) AS w
"""  # noqa: S608 - only module constants are interpolated

# Columns often the same across a batch (a fan-out, a batch job): such a column is sent
# once, as a scalar, instead of as an array with a value per row. Measured, 1,000 rows:
# 3.7 ms against 5.4 ms with every column an array.
_SHAREABLE_COLUMNS = (
    ("type", "text", "{}"),
    ("recipient_user_id", "uuid", "{}"),
    ("priority", "int", "{}"),
    ("max_attempts", "int", "{}"),
    ("scheduled_at", "timestamptz", "coalesce({}, now())"),
)


@functools.cache
def _enqueue_all_sql(varies: tuple[bool, ...]) -> str:
    """The insert of a batch without dedupe keys (every row goes in: ids are new, so
    nothing needs to come back; the INSERT in WITH runs to completion unread). $1 ids,
    $2 payloads, $3 the channel, $4 the batch's types; then per shareable column, an
    array where `varies`, else its one value."""
    arrays, names, values = ["$1::uuid[]", "$2::text[]"], ["id", "payload"], []
    for number, ((column, pg_type, expression), vary) in enumerate(
        zip(_SHAREABLE_COLUMNS, varies, strict=True), start=5
    ):
        if vary:
            arrays.append(f"${number}::{pg_type}[]")
            names.append(column)
            values.append(expression.format(f"m.{column}"))
        else:
            values.append(expression.format(f"${number}::{pg_type}"))
    return f"""
WITH ins AS (
    INSERT INTO messages (id, payload, {", ".join(c[0] for c in _SHAREABLE_COLUMNS)})
    SELECT m.id, m.payload::jsonb, {", ".join(values)}
    FROM unnest({", ".join(arrays)}) AS m ({", ".join(names)})
)
SELECT pg_notify($3, t) FROM unnest($4::text[]) AS t
"""  # noqa: S608 - only module constants are interpolated


@dataclass(frozen=True)
class NewMessages:
    """A batch to insert, column by column (the shape the statement takes)."""

    ids: list[uuid.UUID]
    types: list[str]
    recipients: list[uuid.UUID | None]
    payloads_json: list[str]
    priorities: list[int]
    max_attempts: list[int]
    scheduled: list[datetime | None]
    dedupe_keys: list[str | None]


async def _driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The session's own asyncpg connection, inside the session's transaction: the batch
    insert skips SQLAlchemy's statement handling (a third of the enqueue time), not the
    caller's transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy sends BEGIN with its first statement: send one through it, so that
        # what follows on the driver connection is part of the caller's transaction.
        await connection.exec_driver_sql("SELECT 1")
    return driver


async def insert_messages(session: AsyncSession, batch: NewMessages) -> set[uuid.UUID] | None:
    """The ids inserted, where a dedupe key may have kept some out (those whose key is on
    an unfinished message); None when the batch had no dedupe key, so all went in."""
    conn = await _driver_connection(session)
    columns = (
        batch.ids,
        batch.types,
        batch.recipients,
        batch.payloads_json,
        batch.priorities,
        batch.max_attempts,
        batch.scheduled,
        batch.dedupe_keys,
        CHANNEL,
    )
    if not any(batch.dedupe_keys):
        shareable: tuple[list[Any], ...] = (
            batch.types,
            batch.recipients,
            batch.priorities,
            batch.max_attempts,
            batch.scheduled,
        )
        varies = tuple(any(v != values[0] for v in values) for values in shareable)
        await conn.execute(
            _enqueue_all_sql(varies),
            batch.ids,
            batch.payloads_json,
            CHANNEL,
            sorted(set(batch.types)),
            *(
                values if vary else values[0]
                for values, vary in zip(shareable, varies, strict=True)
            ),
        )
        return None
    rows = await conn.fetch(_ENQUEUE_SQL, *columns)
    return {row[0] for row in rows}


_ENQUEUE_ONE_SQL = f"""
WITH ins AS (
    INSERT INTO messages (id, type, recipient_user_id, payload, priority, max_attempts,
                          scheduled_at, dedupe_key)
    VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, coalesce($7, now()), $8)
    {_ON_OPEN_DEDUPE_KEY}
    RETURNING id, type
)
SELECT ins.id, pg_notify($9, ins.type) FROM ins
"""  # noqa: S608 - only module constants are interpolated


async def insert_message_on(conn: asyncpg.Connection, batch: NewMessages) -> bool:
    """The first message of `batch`, inserted on a plain asyncpg connection (a worker's
    transaction)."""
    row = await conn.fetchrow(
        _ENQUEUE_ONE_SQL,
        batch.ids[0],
        batch.types[0],
        batch.recipients[0],
        batch.payloads_json[0],
        batch.priorities[0],
        batch.max_attempts[0],
        batch.scheduled[0],
        batch.dedupe_keys[0],
        CHANNEL,
    )
    return row is not None


async def open_message_with_key(session: AsyncSession, dedupe_key: str) -> uuid.UUID | None:
    found = await session.scalar(
        text(
            "SELECT id FROM messages WHERE dedupe_key = :key "
            "AND status IN ('PENDING', 'PROCESSING')"
        ),
        {"key": dedupe_key},
    )
    return found if isinstance(found, uuid.UUID) else None


# The claim: due rows in priority order, skipping rows other workers hold, leased to us.
_CLAIM = """
due AS (
    SELECT id FROM messages
    WHERE status = 'PENDING' AND scheduled_at <= now() AND type = ANY($1::text[])
    ORDER BY priority DESC, scheduled_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE messages m
    SET status = 'PROCESSING', lease_owner = $3, lease_expires_at = now() + $4::interval,
        updated_at = now()
    FROM due WHERE m.id = due.id
    RETURNING m.id, m.type, m.recipient_user_id, m.payload, m.priority, m.retry_count,
              m.max_attempts, m.scheduled_at, m.created_at
)"""

# SENT for every message we still hold the lease of. A finished message keeps no sealed
# secret (sealed.py): erased in the statement that finishes it.
_COMPLETE = f"""
UPDATE messages SET status = 'SENT', sent_at = now(), lease_owner = NULL,
    lease_expires_at = NULL, last_error = NULL, updated_at = now(),
    payload = {sealed.ERASE_SQL}
WHERE id = ANY($1::uuid[]) AND lease_owner = $2 AND status = 'PROCESSING'
RETURNING id
"""  # noqa: S608 - only module constants are interpolated

_CLAIM_SQL = f"WITH {_CLAIM} SELECT * FROM claimed"  # noqa: S608 - module constants only

# A worker's usual round trip: what it finished is marked SENT and the next batch claimed,
# in one statement and one commit. Both parts see the same snapshot and touch disjoint
# rows (ours in PROCESSING, anyone's in PENDING). A SENT row comes back with only its id
# (no claimed row lacks a type).
_SETTLE_AND_CLAIM_SQL = f"""
WITH sent AS (
    UPDATE messages SET status = 'SENT', sent_at = now(), lease_owner = NULL,
        lease_expires_at = NULL, last_error = NULL, updated_at = now(),
        payload = {sealed.ERASE_SQL}
    WHERE id = ANY($5::uuid[]) AND lease_owner = $3 AND status = 'PROCESSING'
    RETURNING id
), {_CLAIM}
SELECT * FROM claimed
UNION ALL
SELECT id, NULL::text, NULL::uuid, NULL::jsonb, NULL::smallint, NULL::int, NULL::int,
       NULL::timestamptz, NULL::timestamptz
FROM sent
"""  # noqa: S608 - only module constants are interpolated


async def claim(
    pool: asyncpg.Pool, *, types: list[str], limit: int, owner: str, lease: timedelta
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(_CLAIM_SQL, types, limit, owner, lease)
    return rows


async def complete_many(pool: asyncpg.Pool, *, ids: list[uuid.UUID], owner: str) -> set[uuid.UUID]:
    """SENT for every message we still hold the lease of; those ids are returned."""
    rows = await pool.fetch(_COMPLETE, ids, owner)
    return {r["id"] for r in rows}


async def complete_and_claim(
    pool: asyncpg.Pool,
    *,
    done: list[uuid.UUID],
    types: list[str],
    limit: int,
    owner: str,
    lease: timedelta,
) -> tuple[set[uuid.UUID], list[asyncpg.Record]]:
    """`complete_many(done)` and `claim(limit)` in one statement: the ids marked SENT, and
    the rows claimed."""
    rows = await pool.fetch(_SETTLE_AND_CLAIM_SQL, types, limit, owner, lease, done)
    sent = {r[0] for r in rows if r[1] is None}
    if sent:
        rows = [r for r in rows if r[1] is not None]
    return sent, rows


# A failed attempt: FAILED when permanent or out of attempts, else back to PENDING later.
# An attempt on its handler's own schedule ($6 false: RetryLater) does not use one up:
# max_attempts grows with retry_count, so what is left for other failures stays.
_FAILS = "($4 OR ($6 AND retry_count + 1 >= max_attempts))"
_FAIL_SQL = f"""
UPDATE messages
SET retry_count = retry_count + 1,
    max_attempts = max_attempts + CASE WHEN $6 THEN 0 ELSE 1 END,
    status = CASE WHEN {_FAILS} THEN 'FAILED' ELSE 'PENDING' END,
    scheduled_at = CASE WHEN {_FAILS} THEN scheduled_at ELSE now() + $5::interval END,
    payload = CASE WHEN {_FAILS} THEN {sealed.ERASE_SQL} ELSE payload END,
    last_error = left($3, 2000), lease_owner = NULL, lease_expires_at = NULL,
    updated_at = now()
WHERE id = $1 AND lease_owner = $2 AND status = 'PROCESSING'
RETURNING status
"""  # noqa: S608 - only module constants are interpolated


async def fail(
    pool: asyncpg.Pool | asyncpg.Connection,
    *,
    message_id: uuid.UUID,
    owner: str,
    error: str,
    permanent: bool,
    retry_in: timedelta,
    uses_attempt: bool = True,
) -> str | None:
    """The new status, or None when the lease was lost meanwhile."""
    status: str | None = await pool.fetchval(
        _FAIL_SQL, message_id, owner, error, permanent, retry_in, uses_attempt
    )
    return status


async def extend_leases(
    pool: asyncpg.Pool, *, ids: list[uuid.UUID], owner: str, lease: timedelta
) -> set[uuid.UUID]:
    """The ids whose lease `owner` still held, now extended. A lease that ran out but
    that nobody took back yet is still ours (after a database outage, say)."""
    rows = await pool.fetch(
        "UPDATE messages SET lease_expires_at = now() + $3::interval "
        "WHERE id = ANY($1::uuid[]) AND lease_owner = $2 AND status = 'PROCESSING' "
        "RETURNING id",
        ids,
        owner,
        lease,
    )
    return {r[0] for r in rows}


async def release(pool: asyncpg.Pool, *, ids: list[uuid.UUID], owner: str) -> int:
    """Give unfinished messages back (a worker shutting down): no attempt is counted."""
    result: str = await pool.execute(
        "UPDATE messages SET status = 'PENDING', lease_owner = NULL, lease_expires_at = NULL, "
        "updated_at = now() "
        "WHERE id = ANY($1::uuid[]) AND lease_owner = $2 AND status = 'PROCESSING'",
        ids,
        owner,
    )
    return int(result.rsplit(" ", 1)[-1])


# A lease that ran out means its worker died or hung. That counts as an attempt, so a
# message that kills every worker that takes it ends FAILED instead of looping forever.
_REAP_SQL = f"""
UPDATE messages
SET retry_count = retry_count + 1,
    status = CASE WHEN retry_count + 1 >= max_attempts THEN 'FAILED' ELSE 'PENDING' END,
    payload = CASE WHEN retry_count + 1 >= max_attempts THEN {sealed.ERASE_SQL} ELSE payload END,
    last_error = 'lease expired: the worker ' || coalesce(lease_owner, '?')
                 || ' stopped without finishing',
    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE id IN (
    SELECT id FROM messages
    WHERE status = 'PROCESSING' AND lease_expires_at < now()
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
RETURNING id, type, recipient_user_id, payload, priority, retry_count, max_attempts,
          scheduled_at, created_at, status, last_error
"""  # noqa: S608 - only module constants are interpolated


async def reap_expired(
    conn: asyncpg.Pool | asyncpg.Connection, *, limit: int = 1000
) -> list[asyncpg.Record]:
    """Messages whose lease ran out, back to PENDING (or FAILED when that was their last
    attempt): each row is the message as claimed, then its new `status` and `last_error`."""
    rows: list[asyncpg.Record] = await conn.fetch(_REAP_SQL, limit)
    return rows


# --- operators (ORM session) -----------------------------------------------------------------


async def user_exists(session: AsyncSession, user_id: uuid.UUID) -> bool:
    return await session.scalar(select(User.id).where(User.id == user_id)) is not None


async def get_message(session: AsyncSession, message_id: uuid.UUID) -> Message | None:
    found: Message | None = await session.get(Message, message_id)
    return found


async def list_messages(
    session: AsyncSession,
    *,
    status: str | None,
    message_type: str | None,
    recipient_user_id: uuid.UUID | None,
    before: uuid.UUID | None,
    limit: int,
) -> list[Message]:
    stmt = select(Message).order_by(Message.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(Message.status == status)
    if message_type is not None:
        stmt = stmt.where(Message.type == message_type)
    if recipient_user_id is not None:
        stmt = stmt.where(Message.recipient_user_id == recipient_user_id)
    if before is not None:
        stmt = stmt.where(Message.id < before)
    return list((await session.scalars(stmt)).all())


# Every statement that finishes a message erases its sealed secrets, this one too.
_PAYLOAD_WITHOUT_SECRETS: ColumnElement[Any] = literal_column(sealed.ERASE_SQL)


async def set_status_if(
    session: AsyncSession,
    message_id: uuid.UUID,
    *,
    expected: str,
    values: dict[str, Any],
) -> Message | None:
    """Change a message only if it is still in `expected` (one conditional UPDATE)."""
    if values.get("status") in ("SENT", "FAILED"):
        values = {"payload": _PAYLOAD_WITHOUT_SECRETS, **values}
    row: Message | None = await session.scalar(
        update(Message)
        .where(Message.id == message_id, Message.status == expected)
        .values(updated_at=func.now(), **values)
        .returning(Message)
    )
    return row


_STATS_SQL = """
SELECT type, status, count(*) AS n FROM messages GROUP BY type, status ORDER BY type, status
"""

_STATS_EXTRA_SQL = """
SELECT
  (SELECT extract(epoch FROM now() - min(scheduled_at)) FROM messages
    WHERE status = 'PENDING' AND scheduled_at <= now()) AS oldest_due,
  (SELECT count(*) FROM messages WHERE status = 'SENT' AND sent_at > now() - interval '1 minute')
    AS sent_last_minute,
  (SELECT count(*) FROM messages WHERE status = 'FAILED'
    AND updated_at > now() - interval '1 minute') AS failed_last_minute
"""


async def queue_stats(pool: asyncpg.Pool) -> tuple[list[asyncpg.Record], asyncpg.Record]:
    counts = await pool.fetch(_STATS_SQL)
    extra = await pool.fetchrow(_STATS_EXTRA_SQL)
    return counts, extra


# Messages settled per minute over the last $1 minutes (the current one included): SENT by
# when they were sent, FAILED by when they failed (their last change). Like the counts
# above it scans the table: for an operator's chart, not for a player's request.
_PER_MINUTE_SQL = """
WITH w AS (SELECT date_trunc('minute', now()) - make_interval(mins => $1 - 1) AS since)
SELECT w.since, m.minute, m.sent, m.failed
FROM w LEFT JOIN (
  SELECT date_trunc('minute', CASE WHEN status = 'SENT' THEN sent_at ELSE updated_at END)
           AS minute,
         count(*) FILTER (WHERE status = 'SENT') AS sent,
         count(*) FILTER (WHERE status = 'FAILED') AS failed
  FROM messages, w
  WHERE (status = 'SENT' AND sent_at >= w.since) OR (status = 'FAILED' AND updated_at >= w.since)
  GROUP BY 1
) AS m ON true
ORDER BY m.minute
"""


async def settled_per_minute(
    pool: asyncpg.Pool, minutes: int
) -> tuple[datetime, list[asyncpg.Record]]:
    """The window's first minute, and its minutes that settled anything (minute, sent,
    failed), oldest first."""
    rows = await pool.fetch(_PER_MINUTE_SQL, minutes)
    return rows[0]["since"], [r for r in rows if r["minute"] is not None]


async def opt_outs_of(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    found = await session.scalar(
        select(NotificationPreference.opt_outs).where(NotificationPreference.user_id == user_id)
    )
    return list(found or [])


async def set_opt_outs(session: AsyncSession, user_id: uuid.UUID, opt_outs: list[str]) -> None:
    await session.execute(
        pg_insert(NotificationPreference)
        .values(user_id=user_id, opt_outs=opt_outs)
        .on_conflict_do_update(
            index_elements=[NotificationPreference.user_id],
            set_={"opt_outs": opt_outs, "updated_at": func.now()},
        )
    )


# --- broadcast fan-out (see fanout.py) -----------------------------------------------------

_HOLD_BROADCAST_SQL = """
SELECT p.last_user_id, coalesce(p.recipients, 0) AS recipients
FROM messages m LEFT JOIN broadcast_progress p ON p.message_id = m.id
WHERE m.id = $1 AND m.lease_owner = $2 AND m.status = 'PROCESSING'
FOR UPDATE OF m
"""

# Players who should get this copy: not blocked, not opted out of its category on this
# channel, and for PUSH only those with a device that can receive it.
_BROADCAST_RECIPIENTS_SQL = """
SELECT u.id FROM users u
LEFT JOIN notification_preferences p ON p.user_id = u.id
WHERE u.id > $1 AND NOT u.is_blocked
  AND NOT (coalesce(p.opt_outs, ARRAY[]::text[]) && $2::text[])
  AND (NOT $3 OR EXISTS (
      SELECT 1 FROM push_subscriptions s JOIN sessions d ON d.id = s.session_id
      WHERE s.user_id = u.id AND d.revoked_at IS NULL AND d.expires_at > now()))
ORDER BY u.id
LIMIT $4
"""

_QUEUE_COPIES_SQL = f"""
INSERT INTO messages (id, type, recipient_user_id, payload, priority, max_attempts,
                      scheduled_at, dedupe_key)
SELECT t.id, $3, t.recipient, $4::jsonb, $5, $6, now(), 'broadcast:' || $7 || ':' || t.recipient
FROM unnest($1::uuid[], $2::uuid[]) AS t (id, recipient)
{_ON_OPEN_DEDUPE_KEY}
"""  # noqa: S608 - only module constants are interpolated

_BROADCAST_PROGRESS_SQL = """
INSERT INTO broadcast_progress (message_id, last_user_id, recipients)
VALUES ($1, $2, $3)
ON CONFLICT (message_id) DO UPDATE
SET last_user_id = excluded.last_user_id,
    recipients = broadcast_progress.recipients + excluded.recipients,
    updated_at = now()
"""


async def hold_broadcast(
    conn: asyncpg.Connection, message_id: uuid.UUID, owner: str
) -> tuple[bool, uuid.UUID | None]:
    """Whether `owner` still holds the broadcast (now locked until commit), and the last
    user its fan-out reached."""
    row = await conn.fetchrow(_HOLD_BROADCAST_SQL, message_id, owner)
    if row is None:
        return False, None
    last: uuid.UUID | None = row["last_user_id"]
    return True, last


async def broadcast_recipients(
    conn: asyncpg.Connection,
    *,
    after: uuid.UUID,
    opted_out: list[str],
    with_device_only: bool,
    limit: int,
) -> list[uuid.UUID]:
    rows = await conn.fetch(_BROADCAST_RECIPIENTS_SQL, after, opted_out, with_device_only, limit)
    return [r["id"] for r in rows]


async def queue_broadcast_copies(
    conn: asyncpg.Connection,
    broadcast: ClaimedMessage,
    *,
    ids: list[uuid.UUID],
    recipients: list[uuid.UUID],
    payload: dict[str, Any],
    priority: int,
) -> None:
    """One copy per recipient, the cursor moved to the last of them, workers woken: all in
    the caller's transaction."""
    await conn.execute(
        _QUEUE_COPIES_SQL,
        ids,
        recipients,
        broadcast.type,
        payload,
        priority,
        broadcast.max_attempts,
        str(broadcast.id),
    )
    await conn.execute(_BROADCAST_PROGRESS_SQL, broadcast.id, recipients[-1], len(recipients))
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, broadcast.type)
