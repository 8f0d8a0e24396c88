"""Putting work on the queue: one function every domain uses, inside its own transaction."""

from __future__ import annotations

import contextlib
import gc
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
import structlog
from pydantic import ValidationError
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.errors import Conflict, FieldProblem, InvalidField, NotFound, PortalError
from gameportal.kit.ids import new_id
from gameportal.models import Message
from gameportal.notifications import inbox_repository as inbox_repo
from gameportal.notifications import repository as repo
from gameportal.notifications import sealed
from gameportal.notifications import unsubscribe as unsubscribe_links
from gameportal.notifications.schemas import (
    OPTIONAL_CATEGORIES,
    InboxItem,
    MessageCreate,
    NotificationPreferences,
    QueueCount,
    QueueStats,
    validate_payloads,
)

log = structlog.get_logger(__name__)

DEFAULT_MAX_ATTEMPTS = 5


class InvalidPayload(PortalError):
    status = 422
    slug = "validation-error"
    title = "Request validation failed"


@dataclass(frozen=True)
class Outgoing:
    """One message to queue; see `enqueue` for the fields."""

    message_type: str
    payload: dict[str, Any]
    recipient_user_id: uuid.UUID | None = None
    scheduled_at: datetime | None = None
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    dedupe_key: str | None = None


# Below this, a batch is too small for pausing the collector to matter.
_PAUSE_GC_FROM = 64


@contextlib.contextmanager
def _collector_paused(items: int) -> Iterator[None]:
    """Building a batch allocates a few objects per message, all freed by reference
    counting, none in a cycle. In a process holding a large heap (SQLAlchemy, pydantic,
    FastAPI loaded) the collections they trigger cost far more than the work itself:
    7.8 ms against 2.1 ms for 1,000 messages, measured."""
    if items < _PAUSE_GC_FROM or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _prepared(items: list[Outgoing], *, indexed: bool) -> repo.NewMessages:
    """Validated, stored-form columns of `items`; an InvalidPayload names every invalid
    field of every item (prefixed by its index when `indexed`)."""
    with _collector_paused(len(items)):
        return _columns(items, indexed=indexed)


def _columns(items: list[Outgoing], *, indexed: bool) -> repo.NewMessages:
    by_type: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_type.setdefault(item.message_type, []).append(index)
    stored = [""] * len(items)
    problems: list[tuple[int, FieldProblem]] = []
    for message_type, indexes in by_type.items():
        try:
            payloads = validate_payloads(message_type, [items[i].payload for i in indexes])
        except ValidationError as exc:
            for err in exc.errors():
                index = indexes[int(err["loc"][0])]
                prefix = [str(index), "payload"] if indexed else ["payload"]
                problems.append(
                    (
                        index,
                        FieldProblem(
                            field=".".join([*prefix, *(str(p) for p in err["loc"][1:])]),
                            location="body",
                            message=err["msg"],
                            code=err["type"],
                        ),
                    )
                )
            continue
        for index, payload in zip(indexes, payloads, strict=True):
            stored[index] = orjson.dumps(payload).decode()
    if problems:
        problems.sort(key=lambda p: p[0])
        first = items[problems[0][0]].message_type
        raise InvalidPayload(f"invalid {first} payload", errors=[p for _, p in problems])
    return repo.NewMessages(
        ids=[new_id() for _ in items],
        types=[item.message_type for item in items],
        recipients=[item.recipient_user_id for item in items],
        payloads_json=stored,
        priorities=[item.priority for item in items],
        max_attempts=[item.max_attempts for item in items],
        scheduled=[item.scheduled_at for item in items],
        dedupe_keys=[item.dedupe_key for item in items],
    )


async def enqueue_many(session: AsyncSession, items: list[Outgoing]) -> list[uuid.UUID | None]:
    """Queue many messages in the caller's transaction with one statement (a broadcast's
    fan-out, a batch job). Per item, its new id, or None where its dedupe key is already
    on an unfinished message."""
    if not items:
        return []
    batch = _prepared(items, indexed=True)
    inserted = await repo.insert_messages(session, batch)
    if inserted is None:
        every: list[uuid.UUID | None] = list(batch.ids)
        return every
    return [i if i in inserted else None for i in batch.ids]


async def enqueue(
    session: AsyncSession,
    *,
    message_type: str,
    payload: dict[str, Any],
    recipient_user_id: uuid.UUID | None = None,
    scheduled_at: datetime | None = None,
    priority: int = 0,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    dedupe_key: str | None = None,
) -> uuid.UUID:
    """Write a message in the caller's transaction: it exists (and workers hear of it)
    only if that transaction commits. With a `dedupe_key` already on an unfinished
    message, that message's id is returned and nothing new is queued."""
    item = Outgoing(
        message_type=message_type,
        payload=payload,
        recipient_user_id=recipient_user_id,
        scheduled_at=scheduled_at,
        priority=priority,
        max_attempts=max_attempts,
        dedupe_key=dedupe_key,
    )
    while True:
        batch = _prepared([item], indexed=False)
        inserted = await repo.insert_messages(session, batch)
        if inserted is None or batch.ids[0] in inserted:
            return batch.ids[0]
        assert dedupe_key is not None  # only a dedupe conflict inserts nothing
        existing = await repo.open_message_with_key(session, dedupe_key)
        if existing is not None:
            return existing
        # The holder of the key finished between the two statements: queue afresh.


async def enqueue_on(
    conn: asyncpg.Connection,
    *,
    message_type: str,
    payload: dict[str, Any],
    recipient_user_id: uuid.UUID | None = None,
    dedupe_key: str | None = None,
) -> bool:
    """`enqueue` for code that runs on a raw connection (queue handlers): the message is
    written in that connection's transaction. False when the dedupe key is taken."""
    batch = _prepared(
        [
            Outgoing(
                message_type=message_type,
                payload=payload,
                recipient_user_id=recipient_user_id,
                dedupe_key=dedupe_key,
            )
        ],
        indexed=False,
    )
    return await repo.insert_message_on(conn, batch)


# --- operators ---------------------------------------------------------------------------


class MessageNotFound(NotFound):
    slug = "message-not-found"
    title = "Message not found"


class MessageStateConflict(Conflict):
    slug = "message-state-conflict"
    title = "The message is not in a state that allows this"


async def admin_create(session: AsyncSession, admin_id: uuid.UUID, body: MessageCreate) -> Message:
    if body.recipient_user_id is None and body.type == "MEDIA_PROCESSING":
        raise InvalidField(
            "recipientUserId", "media processing is not something to broadcast", "required"
        )
    if body.recipient_user_id is not None and not await repo.user_exists(
        session, body.recipient_user_id
    ):
        raise InvalidField("recipientUserId", "no user has this id", "not_found")
    if sealed.FIELD in body.payload:
        # Sealed by the server for the worker alone; an admin has nothing to seal.
        raise InvalidField(f"payload.{sealed.FIELD}", "is set by the server only", "forbidden")
    message_id = await enqueue(
        session,
        message_type=body.type,
        payload=body.payload,
        recipient_user_id=body.recipient_user_id,
        scheduled_at=body.scheduled_at,
        priority=body.priority,
        max_attempts=body.max_attempts,
        dedupe_key=body.dedupe_key,
    )
    log.info("message_created_by_admin", message_id=str(message_id), admin=str(admin_id))
    return await admin_get(session, message_id)


async def admin_list(
    session: AsyncSession,
    *,
    status: str | None,
    message_type: str | None,
    recipient_user_id: uuid.UUID | None,
    before: uuid.UUID | None,
    limit: int,
) -> list[Message]:
    return await repo.list_messages(
        session,
        status=status,
        message_type=message_type,
        recipient_user_id=recipient_user_id,
        before=before,
        limit=limit,
    )


async def admin_get(session: AsyncSession, message_id: uuid.UUID) -> Message:
    found = await repo.get_message(session, message_id)
    if found is None:
        raise MessageNotFound(f"no message {message_id}")
    return found


async def admin_retry(session: AsyncSession, message_id: uuid.UUID) -> Message:
    """A FAILED message gets a fresh set of attempts; its last error stays for the record.
    (One whose one-time link was erased when it failed fails again, saying so.)"""
    await admin_get(session, message_id)
    row = await repo.set_status_if(
        session,
        message_id,
        expected="FAILED",
        values={"status": "PENDING", "retry_count": 0, "scheduled_at": func.now()},
    )
    if row is None:
        raise MessageStateConflict("only a FAILED message can be retried")
    return row


async def admin_cancel(
    session: AsyncSession, admin_id: uuid.UUID, message_id: uuid.UUID
) -> Message:
    """A PENDING message is cancelled, not deleted: it ends FAILED and says why."""
    await admin_get(session, message_id)
    row = await repo.set_status_if(
        session,
        message_id,
        expected="PENDING",
        values={"status": "FAILED", "last_error": f"cancelled by administrator {admin_id}"},
    )
    if row is None:
        raise MessageStateConflict("only a PENDING message can be cancelled")
    return row


async def stats(pool: asyncpg.Pool) -> QueueStats:
    counts, extra = await repo.queue_stats(pool)
    return QueueStats(
        counts=[QueueCount(type=r["type"], status=r["status"], count=r["n"]) for r in counts],
        oldest_due_seconds=float(extra["oldest_due"]) if extra["oldest_due"] is not None else None,
        sent_last_minute=extra["sent_last_minute"],
        failed_last_minute=extra["failed_last_minute"],
    )


@dataclass(frozen=True)
class MinuteCount:
    minute: datetime  # its start, UTC
    sent: int
    failed: int

    @property
    def processed(self) -> int:
        return self.sent + self.failed


async def settled_per_minute(pool: asyncpg.Pool, minutes: int = 60) -> list[MinuteCount]:
    """Messages sent and failed in each of the last `minutes` minutes (the current one
    last, still filling), every minute present: what the console's queue chart shows."""
    since, rows = await repo.settled_per_minute(pool, minutes)
    found = {r["minute"]: (r["sent"], r["failed"]) for r in rows}
    return [
        MinuteCount(minute, *found.get(minute, (0, 0)))
        for minute in (since + timedelta(minutes=i) for i in range(minutes))
    ]


# --- the player's inbox ----------------------------------------------------------------------


class InboxMessageNotFound(NotFound):
    slug = "notification-not-found"
    title = "Notification not found"


async def inbox(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    before: uuid.UUID | None,
    limit: int,
    unread_only: bool,
) -> list[InboxItem]:
    rows = await inbox_repo.list_inbox(
        session, user_id, before=before, limit=limit, unread_only=unread_only
    )
    return _inbox_items(row._mapping for row in rows)


async def stream_items(
    pool: asyncpg.Pool, user_id: uuid.UUID, ids: list[uuid.UUID]
) -> list[InboxItem]:
    """For a live stream, oldest first: those of `ids` that are in this user's inbox."""
    return _inbox_items(await inbox_repo.stream_ids(pool, user_id, ids))


async def stream_delivered(
    pool: asyncpg.Pool,
    user_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID],
    limit: int,
) -> list[InboxItem]:
    """For a live stream's replay, in order of delivery: what was delivered after `after`
    (sent_at, id)."""
    rows = await inbox_repo.stream_delivered(pool, user_id, after=after, limit=limit)
    return _inbox_items(rows)


async def stream_in_delivery(
    pool: asyncpg.Pool, user_id: uuid.UUID, *, limit: int
) -> list[InboxItem]:
    """For a live stream's replay: what is being delivered at this moment."""
    return _inbox_items(await inbox_repo.stream_in_delivery(pool, user_id, limit=limit))


async def due_at(pool: asyncpg.Pool, user_id: uuid.UUID, message_id: uuid.UUID) -> datetime | None:
    return await inbox_repo.due_at(pool, user_id, message_id)


def _inbox_items(rows: Iterable[Mapping[Any, Any]]) -> list[InboxItem]:
    return [
        InboxItem(
            id=row["id"],
            subject=row["payload"].get("subject", ""),
            body=row["payload"].get("body"),
            category=row["payload"].get("category", "achievements"),
            broadcast=row["broadcast"],
            created_at=row["created_at"],
            sent_at=row["sent_at"],
            read_at=row["read_at"],
        )
        for row in rows
    ]


async def unread_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    return await inbox_repo.unread_count(session, user_id)


async def mark_read(session: AsyncSession, user_id: uuid.UUID, message_id: uuid.UUID) -> None:
    if not await inbox_repo.mark_read(session, user_id, message_id):
        # Another user's message and an unknown id look the same.
        raise InboxMessageNotFound(f"no notification {message_id} in your inbox")


async def mark_all_read(session: AsyncSession, user_id: uuid.UUID) -> int:
    return await inbox_repo.mark_all_read(session, user_id)


# --- preferences ---------------------------------------------------------------------------


async def preferences(session: AsyncSession, user_id: uuid.UUID) -> NotificationPreferences:
    return NotificationPreferences.from_opt_outs(await repo.opt_outs_of(session, user_id))


async def set_preferences(
    session: AsyncSession, user_id: uuid.UUID, wanted: NotificationPreferences
) -> NotificationPreferences:
    await repo.set_opt_outs(session, user_id, wanted.opt_outs())
    return wanted


class InvalidUnsubscribeLink(PortalError):
    status = 400
    slug = "invalid-unsubscribe-link"
    title = "This unsubscribe link is not valid"


async def unsubscribe(session: AsyncSession, secret_key: str, token: str) -> None:
    """Apply a signed one-click opt-out; applying it twice is harmless."""
    target = unsubscribe_links.verify(secret_key, token)
    if target is None or target.category not in OPTIONAL_CATEGORIES:
        raise InvalidUnsubscribeLink("the link was changed or is not one we sent")
    if not await repo.user_exists(session, target.user_id):
        return  # the account is gone: nothing left to send to
    current = await repo.opt_outs_of(session, target.user_id)
    wanted = f"{target.channel}:{target.category}"
    if wanted not in current:
        await repo.set_opt_outs(session, target.user_id, sorted([*current, wanted]))
    log.info("unsubscribed", user_id=str(target.user_id), opt_out=wanted)
