"""Putting work on the queue: one function every domain uses, inside its own transaction."""

from __future__ import annotations

import uuid
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
    try:
        stored = validate_payload(message_type, payload)
    except ValidationError as exc:
        raise InvalidPayload(
            f"invalid {message_type} payload",
            errors=[
                FieldProblem(
                    field=".".join(["payload", *(str(p) for p in err["loc"])]),
                    location="body",
                    message=err["msg"],
                    code=err["type"],
                )
                for err in exc.errors()
            ],
        ) from None
    inserted = await repo.insert_message(
        session,
        message_id=new_id(),
        message_type=message_type,
        recipient_user_id=recipient_user_id,
        payload_json=orjson.dumps(stored).decode(),
        priority=priority,
        max_attempts=max_attempts,
        scheduled_at=scheduled_at,
        dedupe_key=dedupe_key,
    )
    if inserted is not None:
        return inserted
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
