"""Web Push subscriptions: one per device session, where the browser wants its pushes."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from gameportal.models.base import Base, CreatedAtMixin, IdMixin


class PushSubscription(IdMixin, CreatedAtMixin, Base):
    """A browser's push endpoint and keys (RFC 8030/8291), owned by the device session
    that registered it: pushes go only to sessions that are still live, and deleting
    the session (prune) deletes its subscription."""

    __tablename__ = "push_subscriptions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # One per device: a browser that re-subscribes replaces its old endpoint.
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), unique=True
    )
    # A push endpoint names one browser profile; if another account logs in there, the
    # subscription moves to it.
    endpoint: Mapped[str] = mapped_column(Text, unique=True)
    p256dh: Mapped[str] = mapped_column(String(100))
    auth: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[datetime | None]  # the browser's expirationTime, if it gave one
    last_success_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class PushDelivery(Base):
    """Which subscriptions already have a message, kept only when a retry is coming:
    the retry then skips them instead of pushing twice to the same device."""

    __tablename__ = "push_deliveries"

    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    subscription_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    delivered_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
