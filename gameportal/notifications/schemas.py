"""Payloads by message type: validated when a message is enqueued, not when it fails."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, TypeAdapter

from gameportal.kit.schemas import InputSchema

MessageType = Literal["EMAIL", "PUSH", "IN_APP", "MEDIA_PROCESSING"]

Text = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
Short = Annotated[str, StringConstraints(min_length=1, max_length=300)]


class EmailPayload(InputSchema):
    """Either a ready subject and body, or a template and its variables."""

    subject: Short | None = None
    body: Text | None = None
    template: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")] | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    category: Literal["transactional", "account", "achievements", "marketing"] = "transactional"


class PushPayload(InputSchema):
    title: Short
    body: Short | None = None
    url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    category: Literal["transactional", "account", "achievements", "marketing"] = "achievements"


class InAppPayload(InputSchema):
    subject: Short
    body: Text | None = None
    category: Literal["transactional", "account", "achievements", "marketing"] = "achievements"


class MediaPayload(InputSchema):
    media_id: uuid.UUID
    renditions: list[Annotated[str, StringConstraints(max_length=32)]] = Field(default_factory=list)


_PAYLOADS: dict[str, TypeAdapter[Any]] = {
    "EMAIL": TypeAdapter(EmailPayload),
    "PUSH": TypeAdapter(PushPayload),
    "IN_APP": TypeAdapter(InAppPayload),
    "MEDIA_PROCESSING": TypeAdapter(MediaPayload),
}


def validate_payload(message_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as stored: validated for its type, camelCase like the API."""
    adapter = _PAYLOADS[message_type]
    model = adapter.validate_python(payload)
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped
