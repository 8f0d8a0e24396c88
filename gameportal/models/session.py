from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gameportal.models.base import Base, CreatedAtMixin, IdMixin

DEVICE_TYPES = ("MOBILE", "DESKTOP", "OTHER")


class Session(IdMixin, CreatedAtMixin, Base):
    """A device session: one login on one device, holding the current refresh token's hash."""

    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint("device_type IN ('MOBILE','DESKTOP','OTHER')", name="device_type_known"),
        Index("ix_sessions_user_live", "user_id", postgresql_where=text("revoked_at IS NULL")),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    device_type: Mapped[str] = mapped_column(String(8))
    fingerprint: Mapped[str | None] = mapped_column(String(128))
    country: Mapped[str | None] = mapped_column(String(2))
    # SHA-256 hex of the current refresh token; the token itself is never stored.
    refresh_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class SpentRefreshToken(Base):
    """Refresh tokens already rotated away: presenting one again is a replay."""

    __tablename__ = "spent_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    spent_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class SecurityEvent(IdMixin, CreatedAtMixin, Base):
    """What an operator needs to see after the fact: replays, lockouts, blocks."""

    __tablename__ = "security_events"

    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    session_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(String(48))
    ip: Mapped[str | None] = mapped_column(INET)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class LoginThrottle(Base):
    """Failed-login counters per account and per IP, shared by every API instance."""

    __tablename__ = "login_throttle"

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)  # "account" | "ip"
    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int]
    window_started_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
