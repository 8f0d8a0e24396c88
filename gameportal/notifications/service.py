"""Putting work on the queue: one function every domain uses, inside its own transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.errors import FieldProblem, PortalError
from gameportal.kit.ids import new_id
from gameportal.notifications import repository as repo
from gameportal.notifications.schemas import validate_payload

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


def _prepared(item: Outgoing, index: int | None = None) -> repo.NewMessage:
    try:
        stored = validate_payload(item.message_type, item.payload)
    except ValidationError as exc:
        prefix = ["payload"] if index is None else [str(index), "payload"]
        raise InvalidPayload(
            f"invalid {item.message_type} payload",
            errors=[
                FieldProblem(
                    field=".".join([*prefix, *(str(p) for p in err["loc"])]),
                    location="body",
                    message=err["msg"],
                    code=err["type"],
                )
                for err in exc.errors()
            ],
        ) from None
    return repo.NewMessage(
        id=new_id(),
        type=item.message_type,
        recipient_user_id=item.recipient_user_id,
        payload_json=orjson.dumps(stored).decode(),
        priority=item.priority,
        max_attempts=item.max_attempts,
        scheduled_at=item.scheduled_at,
        dedupe_key=item.dedupe_key,
    )


async def enqueue_many(session: AsyncSession, items: list[Outgoing]) -> list[uuid.UUID | None]:
    """Queue many messages in the caller's transaction with one statement (a broadcast's
    fan-out, a batch job). Per item, its new id, or None where its dedupe key is already
    on an unfinished message."""
    if not items:
        return []
    prepared = [_prepared(item, index) for index, item in enumerate(items)]
    inserted = await repo.insert_messages(session, prepared)
    return [m.id if m.id in inserted else None for m in prepared]


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
    prepared = _prepared(item)
    if prepared.id in await repo.insert_messages(session, [prepared]):
        return prepared.id
    assert dedupe_key is not None  # only a dedupe conflict inserts nothing
    existing = await repo.open_message_with_key(session, dedupe_key)
    if existing is None:  # finished between the two statements: queue it afresh
        return await enqueue(
            session,
            message_type=message_type,
            payload=payload,
            recipient_user_id=recipient_user_id,
            scheduled_at=scheduled_at,
            priority=priority,
            max_attempts=max_attempts,
            dedupe_key=dedupe_key,
        )
    return existing
