from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gameportal.models.base import Base, CreatedAtMixin, IdMixin

MESSAGE_TYPES = ("EMAIL", "PUSH", "IN_APP", "MEDIA_PROCESSING")
MESSAGE_STATUSES = ("PENDING", "PROCESSING", "SENT", "FAILED")


class Message(IdMixin, CreatedAtMixin, Base):
    """The seed's Notification/Message, and gameportal's one durable queue: workers claim
    due PENDING rows with FOR UPDATE SKIP LOCKED and hold them under a lease."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("type IN ('EMAIL','PUSH','IN_APP','MEDIA_PROCESSING')", name="type_known"),
        CheckConstraint("status IN ('PENDING','PROCESSING','SENT','FAILED')", name="status_known"),
        CheckConstraint("max_attempts >= 1", name="max_attempts_positive"),
        # What a claim scans: only rows still due, in claim order.
        Index(
            "ix_messages_due",
            text("priority DESC"),
            "scheduled_at",
            "id",
            postgresql_where=text("status = 'PENDING'"),
        ),
        # What the reaper scans: only leased rows.
        Index(
            "ix_messages_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'PROCESSING'"),
        ),
        # A dedupe key is unique while its message is not finished. Rows without one
        # (most) stay out: each claim and completion would otherwise add an entry.
        Index(
            "uq_messages_dedupe_key_open",
            "dedupe_key",
            unique=True,
            postgresql_where=text("dedupe_key IS NOT NULL AND status IN ('PENDING','PROCESSING')"),
        ),
        # A player's own messages; broadcasts (no recipient) are never looked up here.
        Index(
            "ix_messages_recipient",
            "recipient_user_id",
            "id",
            postgresql_where=text("recipient_user_id IS NOT NULL"),
        ),
        # A player's own in-app messages in order of delivery, which a live stream's
        # replay follows.
        Index(
            "ix_messages_inbox_recipient_delivered",
            "recipient_user_id",
            "sent_at",
            "id",
            postgresql_where=text(
                "type = 'IN_APP' AND recipient_user_id IS NOT NULL AND status = 'SENT'"
            ),
        ),
        # In-app broadcasts, which every inbox shows; and in order of delivery, for the
        # replay.
        Index(
            "ix_messages_inbox_broadcast",
            "id",
            postgresql_where=text(
                "type = 'IN_APP' AND recipient_user_id IS NULL AND status = 'SENT'"
            ),
        ),
        Index(
            "ix_messages_inbox_broadcast_delivered",
            "sent_at",
            "id",
            postgresql_where=text(
                "type = 'IN_APP' AND recipient_user_id IS NULL AND status = 'SENT'"
            ),
        ),
    )

    type: Mapped[str] = mapped_column(String(16))
    recipient_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(10), server_default=text("'PENDING'"))
    priority: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    retry_count: Mapped[int] = mapped_column(server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(server_default=text("5"))
    scheduled_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    sent_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # Set by a handler on success, e.g. where the development outbox put a mail.
    note: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class NotificationRead(Base):
    """When a user read an in-app message: theirs, or a broadcast (one row per reader)."""

    __tablename__ = "notification_reads"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    read_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class NotificationPreference(Base):
    """A player's opt-outs, as `CHANNEL:category` (e.g. `EMAIL:marketing`). Transactional
    and account mail ignore them: a password reset is never opted out of."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    opt_outs: Mapped[list[str]] = mapped_column(
        ARRAY(Text()), server_default=text("ARRAY[]::text[]")
    )
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class BroadcastProgress(Base):
    """How far an EMAIL or PUSH broadcast's fan-out got: the last user id queued, moved in
    the same transaction as each batch, so a crash resumes without gaps or repeats."""

    __tablename__ = "broadcast_progress"

    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    last_user_id: Mapped[uuid.UUID]
    recipients: Mapped[int] = mapped_column(server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
