"""Stream tickets: what a browser's EventSource, which cannot send an Authorization
header, shows instead to open the live notification stream. Not a seed collection."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from gameportal.models.base import Base, CreatedAtMixin


class StreamTicket(CreatedAtMixin, Base):
    """A short-lived, single-use ticket for one device session. Only its SHA-256 is
    kept: a copy of this table opens no stream. It ends with its session (the session's
    liveness is checked when it is used; deleting the session deletes it)."""

    __tablename__ = "stream_tickets"
    __table_args__ = (Index("ix_stream_tickets_session_id", "session_id", "expires_at"),)

    ticket_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID]
    expires_at: Mapped[datetime]
