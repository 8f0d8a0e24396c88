from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gameportal.models.base import Base, CreatedAtMixin, IdMixin

ROLES = ("user", "editor", "marketer", "admin")


def normalize_email(email: str) -> str:
    """The one spelling an address is stored, looked up and throttled under: compatibility
    forms folded (NFKC: fullwidth U+FF41 is `a`), then lower case. Done in Python only:
    PostgreSQL's lower() folds some letters differently (`İ`), and two foldings of one
    address would make two throttle counters. Migration 0010 brought stored addresses to
    this form."""
    return unicodedata.normalize("NFKC", email.strip()).lower()


def normalize_roles(roles: set[str] | list[str]) -> list[str]:
    """Known roles, `user` always among them, in one canonical order."""
    wanted = set(roles) | {"user"}
    return [r for r in ROLES if r in wanted]


class User(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        # Stored normalised (normalize_email), so unique and found whatever their case;
        # text_pattern_ops serves the admin's prefix search.
        Index("uq_users_email", "email", unique=True),
        Index("ix_users_email_pattern", "email", postgresql_ops={"email": "text_pattern_ops"}),
        CheckConstraint(
            "roles <@ ARRAY['user','editor','marketer','admin']::text[]", name="roles_known"
        ),
        CheckConstraint("country ~ '^[A-Z]{2}$'", name="country_iso"),
    )

    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    last_login_at: Mapped[datetime | None]
    is_blocked: Mapped[bool] = mapped_column(server_default=text("false"), default=False)
    country: Mapped[str | None] = mapped_column(String(2))
    roles: Mapped[list[str]] = mapped_column(
        ARRAY(Text()), server_default=text("ARRAY['user']::text[]"), default=lambda: ["user"]
    )
    preferences: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"), default=dict
    )
    email_verified_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class AccountToken(Base):
    """A single-use mailed link (password reset, email verification): only its SHA-256 is
    stored."""

    __tablename__ = "account_tokens"
    __table_args__ = (
        CheckConstraint("purpose IN ('password_reset','verify_email')", name="purpose_known"),
    )

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
