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
from gameportal.notifications import repository as repo
from gameportal.notifications.registry import ClaimedMessage, Delivery
from gameportal.notifications.schemas import OPTIONAL_CATEGORIES

log = structlog.get_logger(__name__)

BATCH = 1000
_BEFORE_EVERY_ID = uuid.UUID(int=0)


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
            held, last_user = await repo.hold_broadcast(conn, message.id, delivery.worker)
            if not held:
                raise LeaseLost(f"broadcast {message.id} is no longer held by this worker")
            # A plain `id > $1` (never NULL) keeps every batch an index range scan, even
            # once PostgreSQL switches the prepared statement to a generic plan.
            ids = await repo.broadcast_recipients(
                conn,
                after=last_user or _BEFORE_EVERY_ID,
                opted_out=opt_out,
                with_device_only=message.type == "PUSH",
                limit=batch,
            )
            if not ids:
                break
            await repo.queue_broadcast_copies(
                conn,
                message,
                ids=[new_id() for _ in ids],
                recipients=ids,
                payload=payload,
                # One step below the broadcast: a password reset queued after a
                # million copies must not wait behind them.
                priority=message.priority - 1,
            )
        queued += len(ids)
        if len(ids) < batch:
            break
    log.info("broadcast_fanned_out", message_id=str(message.id), queued=queued)
    return queued
