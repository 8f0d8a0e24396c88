"""Broadcast fan-out: an EMAIL or PUSH message with no recipient becomes one message per
player, queued in batches by whichever worker holds the broadcast.

Each batch is one transaction that checks the worker still holds the broadcast's lease,
queues the batch and moves a cursor (the last user id done). A crash between batches
resumes after the cursor: nobody is skipped, nobody gets it twice. Each copy also carries
a dedupe key naming the broadcast and the player, a second guard while it is unfinished.
"""

from __future__ import annotations

import uuid

import structlog

from gameportal.kit.ids import new_id
from gameportal.notifications.registry import ClaimedMessage, Delivery
from gameportal.notifications.repository import CHANNEL
from gameportal.notifications.schemas import OPTIONAL_CATEGORIES

log = structlog.get_logger(__name__)

BATCH = 1000
_BEFORE_EVERY_ID = uuid.UUID(int=0)

_HOLD_SQL = """
SELECT p.last_user_id, coalesce(p.recipients, 0) AS recipients
FROM messages m LEFT JOIN broadcast_progress p ON p.message_id = m.id
WHERE m.id = $1 AND m.lease_owner = $2 AND m.status = 'PROCESSING'
FOR UPDATE OF m
"""

# Players who should get this copy: not blocked, not opted out of its category on this
# channel, and for PUSH only those with a device that can receive it.
_RECIPIENTS_SQL = """
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

_QUEUE_SQL = """
INSERT INTO messages (id, type, recipient_user_id, payload, priority, max_attempts,
                      scheduled_at, dedupe_key)
SELECT t.id, $3, t.recipient, $4::jsonb, $5, $6, now(), 'broadcast:' || $7 || ':' || t.recipient
FROM unnest($1::uuid[], $2::uuid[]) AS t (id, recipient)
ON CONFLICT (dedupe_key) WHERE status IN ('PENDING', 'PROCESSING') DO NOTHING
"""

_PROGRESS_SQL = """
INSERT INTO broadcast_progress (message_id, last_user_id, recipients)
VALUES ($1, $2, $3)
ON CONFLICT (message_id) DO UPDATE
SET last_user_id = excluded.last_user_id,
    recipients = broadcast_progress.recipients + excluded.recipients,
    updated_at = now()
"""


class LeaseLost(Exception):
    """Another worker holds the broadcast now (this one's lease ran out): stop here and
    let it carry on from the cursor."""


async def fan_out(message: ClaimedMessage, delivery: Delivery, *, batch: int = BATCH) -> int:
    """Queue one copy per recipient; returns how many this run queued."""
    category = message.payload.get("category")
    opt_out = [f"{message.type}:{category}"] if category in OPTIONAL_CATEGORIES else []
    payload = dict(message.payload)
    queued = 0
    while True:
        async with delivery.pool.acquire() as conn, conn.transaction():
            held = await conn.fetchrow(_HOLD_SQL, message.id, delivery.worker)
            if held is None:
                raise LeaseLost(f"broadcast {message.id} is no longer held by this worker")
            # A plain `id > $1` (never NULL) keeps every batch an index range scan, even
            # once PostgreSQL switches the prepared statement to a generic plan.
            after = held["last_user_id"] or _BEFORE_EVERY_ID
            recipients = await conn.fetch(
                _RECIPIENTS_SQL, after, opt_out, message.type == "PUSH", batch
            )
            if not recipients:
                break
            ids = [r["id"] for r in recipients]
            await conn.execute(
                _QUEUE_SQL,
                [new_id() for _ in ids],
                ids,
                message.type,
                payload,
                # One step below the broadcast: a password reset queued after a
                # million copies must not wait behind them.
                message.priority - 1,
                message.max_attempts,
                str(message.id),
            )
            await conn.execute(_PROGRESS_SQL, message.id, ids[-1], len(ids))
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, message.type)
        queued += len(ids)
        if len(ids) < batch:
            break
    log.info("broadcast_fanned_out", message_id=str(message.id), queued=queued)
    return queued
