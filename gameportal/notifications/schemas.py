"""Payloads by message type: validated when a message is enqueued, not when it fails."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import Field, StrictBool, StringConstraints, TypeAdapter, field_validator

from gameportal.kit.schemas import (
    LANGUAGE_TAG_PATTERN,
    InputSchema,
    Schema,
    UtcDatetime,
    example,
)
from gameportal.notifications import sealed
from gameportal.notifications.vapid import b64url_decode

MessageType = Literal["EMAIL", "PUSH", "IN_APP", "MEDIA_PROCESSING"]

Text = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
Short = Annotated[str, StringConstraints(min_length=1, max_length=300)]


class EmailPayload(InputSchema):
    """Either a ready subject and body, or a template and its variables."""

    subject: Short | None = None
    body: Text | None = None
    template: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")] | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    # Variables only the worker may read (a one-time link), sealed by the server itself
    # (sealed.py); the admin routes refuse them and show `[sealed]`.
    sealed_variables: Annotated[str, StringConstraints(max_length=8000)] | None = None
    category: Literal["transactional", "account", "achievements", "marketing"] = "transactional"
    language: (
        Annotated[
            str,
            StringConstraints(pattern=LANGUAGE_TAG_PATTERN, max_length=35),
            Field(
                description="The language a ready `subject` and `body` are written in (BCP 47; "
                "default `en`): the mail's Content-Language, and the language of the "
                "unsubscribe note added to mail a player may opt out of. A template is in "
                "the recipient's language instead"
            ),
        ]
        | None
    ) = None


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


# Validated and dumped a batch at a time: one call per batch costs half as much as one per
# payload.
_PAYLOADS: dict[str, TypeAdapter[Any]] = {
    "EMAIL": TypeAdapter(list[EmailPayload]),
    "PUSH": TypeAdapter(list[PushPayload]),
    "IN_APP": TypeAdapter(list[InAppPayload]),
    "MEDIA_PROCESSING": TypeAdapter(list[MediaPayload]),
}


def validate_payloads(message_type: str, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The payloads as stored: validated for their type, camelCase like the API. A
    ValidationError's locations start with the payload's index in `payloads`."""
    adapter = _PAYLOADS[message_type]
    models = adapter.validate_python(payloads)
    dumped: list[dict[str, Any]] = adapter.dump_python(
        models, mode="json", by_alias=True, exclude_none=True
    )
    return dumped


MESSAGE_CREATE_EXAMPLE = {
    "type": "IN_APP",
    "recipientUserId": None,
    "payload": {
        "subject": "Season 3 is live",
        "body": "New maps and rewards.",
        "category": "marketing",
    },
    "priority": 0,
    "dedupeKey": "season-3-launch",
}


class MessageCreate(InputSchema):
    model_config = example(MESSAGE_CREATE_EXAMPLE)

    type: MessageType
    recipient_user_id: uuid.UUID | None = Field(
        default=None, description="Null: a broadcast to every user"
    )
    payload: dict[str, Any] = Field(
        description="Validated for the type: EMAIL {subject, body, language? | template, "
        "variables}, PUSH {title, body?, url?}, IN_APP {subject, body?}, MEDIA_PROCESSING "
        "{mediaId}",
        examples=[{"subject": "Season 3 is live", "body": "New maps and rewards."}],
    )
    scheduled_at: UtcDatetime | None = Field(default=None, description="Not before this time")
    # Strict: `true` is not a number (it was taken as 1), as the schema says.
    priority: Annotated[int, Field(ge=-100, le=100, strict=True)] = 0
    max_attempts: Annotated[int, Field(ge=1, le=50, strict=True)] = 5
    dedupe_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


MESSAGE_READ_EXAMPLE = {
    "id": "0195a3d3-5e6f-7061-9b8c-9d0e1f2a3b4c",
    "type": "EMAIL",
    "recipientUserId": "0195a3c2-5b1e-7c4d-8e9f-0a1b2c3d4e5f",
    "payload": {"template": "welcome", "variables": {"name": "Ada"}, "category": "account"},
    "status": "SENT",
    "priority": 0,
    "retryCount": 0,
    "maxAttempts": 5,
    "scheduledAt": "2026-03-14T09:26:53Z",
    "createdAt": "2026-03-14T09:26:53Z",
    "sentAt": "2026-03-14T09:26:55Z",
    "leaseOwner": None,
    "leaseExpiresAt": None,
    "lastError": None,
    "note": None,
    "dedupeKey": None,
}


class MessageRead(Schema):
    model_config = example(MESSAGE_READ_EXAMPLE)

    id: uuid.UUID
    type: MessageType
    recipient_user_id: uuid.UUID | None
    payload: dict[str, Any] = Field(
        description="As queued, except secrets: `sealedVariables` (a one-time link in an "
        "account mail) reads `[sealed]`, and `[erased]` once the message is finished"
    )
    status: Literal["PENDING", "PROCESSING", "SENT", "FAILED"]
    priority: int
    retry_count: int
    max_attempts: int = Field(
        description="Attempts allowed; grows by one with each temporary SMTP failure, which "
        "the SMTP retry schedule governs instead"
    )
    scheduled_at: UtcDatetime
    created_at: UtcDatetime
    sent_at: UtcDatetime | None
    lease_owner: str | None
    lease_expires_at: UtcDatetime | None
    last_error: str | None
    note: str | None = Field(
        description="What a successful delivery reported, e.g. where the development "
        "outbox put a mail"
    )
    dedupe_key: str | None

    @field_validator("payload")
    @classmethod
    def _without_secrets(cls, payload: dict[str, Any]) -> dict[str, Any]:
        return sealed.redacted(payload)


class QueueCount(Schema):
    type: MessageType
    status: Literal["PENDING", "PROCESSING", "SENT", "FAILED"]
    count: int


QUEUE_STATS_EXAMPLE = {
    "counts": [
        {"type": "EMAIL", "status": "PENDING", "count": 12},
        {"type": "EMAIL", "status": "SENT", "count": 48210},
        {"type": "PUSH", "status": "FAILED", "count": 3},
    ],
    "oldestDueSeconds": 1.8,
    "sentLastMinute": 240,
    "failedLastMinute": 0,
}


class QueueStats(Schema):
    model_config = example(QUEUE_STATS_EXAMPLE)

    counts: list[QueueCount]
    oldest_due_seconds: float | None = Field(
        description="Age of the oldest PENDING message that is due; null when none is"
    )
    sent_last_minute: int
    failed_last_minute: int


INBOX_ITEM_EXAMPLE = {
    "id": "0195a3d3-5e6f-7061-9b8c-9d0e1f2a3b4c",
    "subject": "Achievement unlocked: First Blood",
    "body": "You won your first match. +50 points.",
    "category": "achievements",
    "broadcast": False,
    "createdAt": "2026-03-20T18:41:02Z",
    "sentAt": "2026-03-20T18:41:02Z",
    "readAt": None,
}


class InboxItem(Schema):
    model_config = example(INBOX_ITEM_EXAMPLE)

    id: uuid.UUID
    subject: str
    body: str | None = None
    category: str
    broadcast: bool = Field(description="Sent to every player, not only to you")
    created_at: UtcDatetime
    sent_at: UtcDatetime | None
    read_at: UtcDatetime | None


UNREAD_COUNT_EXAMPLE = {"unread": 3}


class UnreadCount(Schema):
    model_config = example(UNREAD_COUNT_EXAMPLE)

    unread: int


MARKED_READ_EXAMPLE = {"marked": 3}


class MarkedRead(Schema):
    model_config = example(MARKED_READ_EXAMPLE)

    marked: int


OPTIONAL_CATEGORIES = ("achievements", "marketing")
CHANNEL_FIELDS = {"EMAIL": "email", "PUSH": "push", "IN_APP": "in_app"}


class ChannelPreferences(InputSchema):
    """Categories a player may turn off; transactional and account messages always go."""

    # Strict: `0` or `"yes"` is a client's bug, not a choice (the schema says boolean).
    achievements: StrictBool = True
    marketing: StrictBool = True


NOTIFICATION_PREFERENCES_EXAMPLE = {
    "email": {"achievements": True, "marketing": False},
    "push": {"achievements": True, "marketing": False},
    "inApp": {"achievements": True, "marketing": True},
}


class NotificationPreferences(InputSchema):
    model_config = example(NOTIFICATION_PREFERENCES_EXAMPLE)

    email: ChannelPreferences = Field(default_factory=ChannelPreferences)
    push: ChannelPreferences = Field(default_factory=ChannelPreferences)
    in_app: ChannelPreferences = Field(default_factory=ChannelPreferences)

    def opt_outs(self) -> list[str]:
        return sorted(
            f"{channel}:{category}"
            for channel, field in CHANNEL_FIELDS.items()
            for category in OPTIONAL_CATEGORIES
            if not getattr(getattr(self, field), category)
        )

    @classmethod
    def from_opt_outs(cls, opt_outs: list[str]) -> NotificationPreferences:
        off = set(opt_outs)
        return cls(
            **{
                field: ChannelPreferences(
                    **{c: f"{channel}:{c}" not in off for c in OPTIONAL_CATEGORIES}
                )
                for channel, field in CHANNEL_FIELDS.items()
            }
        )


def opted_out(opt_outs: list[str], channel: str, category: str | None) -> bool:
    return category in OPTIONAL_CATEGORIES and f"{channel}:{category}" in opt_outs


class PushKeys(InputSchema):
    """The browser's keys from `PushSubscription.toJSON()`, base64url (RFC 8291)."""

    # As browsers name it (the alias generator would say `p256Dh`).
    p256dh: Annotated[str, StringConstraints(min_length=80, max_length=100)] = Field(alias="p256dh")
    auth: Annotated[str, StringConstraints(min_length=16, max_length=40)]

    @field_validator("p256dh")
    @classmethod
    def _p256_point(cls, value: str) -> str:
        try:
            point = b64url_decode(value)
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except ValueError:
            raise ValueError("must be a base64url P-256 public key (65 bytes)") from None
        if len(point) != 65:
            raise ValueError("must be an uncompressed P-256 public key (65 bytes)")
        return value

    @field_validator("auth")
    @classmethod
    def _auth_secret(cls, value: str) -> str:
        try:
            secret = b64url_decode(value)
        except ValueError:
            secret = b""
        if len(secret) != 16:
            raise ValueError("must be a base64url 16-byte authentication secret")
        return value


PUSH_SUBSCRIPTION_CREATE_EXAMPLE = {
    "endpoint": "https://fcm.googleapis.com/fcm/send/c1KrmpTuRm0:APA91bGxL2",
    "keys": {
        "p256dh": (
            "BGcG-TsyBqIbtv_4tptuYJFDgJUNZoRrySME5q_Ugmt3NICO"
            "1BM9Kse4PzClsp1sbGt2tgkd_qrxnyaS8-5EjbE"
        ),
        "auth": "4JmLuBoriMY-oKXF7TtYAA",
    },
    "expirationTime": None,
}


class PushSubscriptionCreate(InputSchema):
    """Exactly what the browser's `JSON.stringify(pushSubscription)` gives."""

    model_config = example(PUSH_SUBSCRIPTION_CREATE_EXAMPLE)

    endpoint: Annotated[str, StringConstraints(min_length=10, max_length=2000)]
    keys: PushKeys
    # Up to the end of year 9999, the last instant a datetime can hold.
    expiration_time: Annotated[int, Field(ge=0, le=253_402_300_799_999)] | None = Field(
        default=None, description="Milliseconds since the epoch, as the browser reports it"
    )


PUSH_SUBSCRIPTION_EXAMPLE = {
    "id": "0195a3d6-8192-7364-8ebf-2a3b4c5d6e7f",
    "endpoint": "https://fcm.googleapis.com/fcm/send/c1KrmpTuRm0:APA91bGxL2",
    "sessionId": "0195a3c2-6d2f-7a10-9b3c-4d5e6f708192",
    "current": True,
    "createdAt": "2026-03-20T18:45:30Z",
    "lastSuccessAt": "2026-03-21T08:00:12Z",
    "expiresAt": None,
}


class PushSubscriptionRead(Schema):
    model_config = example(PUSH_SUBSCRIPTION_EXAMPLE)

    id: uuid.UUID
    endpoint: str
    session_id: uuid.UUID = Field(description="The device session this subscription belongs to")
    current: bool = Field(description="True for the session making this request")
    created_at: UtcDatetime
    last_success_at: UtcDatetime | None
    expires_at: UtcDatetime | None


VAPID_PUBLIC_KEY_EXAMPLE = {
    "publicKey": (
        "BGcG-TsyBqIbtv_4tptuYJFDgJUNZoRrySME5q_Ugmt3NICO1BM9Kse4PzClsp1sbGt2tgkd_qrxnyaS8-5EjbE"
    )
}


class VapidPublicKey(Schema):
    model_config = example(VAPID_PUBLIC_KEY_EXAMPLE)

    public_key: str = Field(description="Pass as `applicationServerKey` to `pushManager.subscribe`")


STREAM_TICKET_EXAMPLE = {
    "ticket": "hY3kq0Gc9vQW1mXz5aB7uJ2nLr8tPdEf4sKiVo6yC1w",
    "expiresAt": "2026-03-20T18:41:32Z",
}


class StreamTicket(Schema):
    model_config = example(STREAM_TICKET_EXAMPLE)

    ticket: str = Field(
        description="Open the stream with `GET /api/v1/me/notifications/stream?ticket=…` "
        "(a browser's EventSource cannot send Authorization). Works once, before "
        "`expiresAt`, while this session lasts; never logged",
        examples=["hY3kq0Gc9vQW1mXz5aB7uJ2nLr8tPdEf4sKiVo6yC1w"],
    )
    expires_at: UtcDatetime
