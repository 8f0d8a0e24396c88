"""Static content (games, news, announcements, FAQ) and its revisions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REGCONFIG, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from gameportal.models.base import Base, CreatedAtMixin, IdMixin

CONTENT_TYPES = ("GAME", "NEWS", "ANNOUNCEMENT", "FAQ")
CONTENT_FORMATS = ("MARKDOWN", "HTML", "JSON")
CONTENT_STATUSES = ("DRAFT", "SCHEDULED", "PUBLISHED", "ARCHIVED")


class Content(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "content"
    __table_args__ = (
        UniqueConstraint("type", "locale", "slug", name="uq_content_type_locale_slug"),
        CheckConstraint("type IN ('GAME','NEWS','ANNOUNCEMENT','FAQ')", name="type_known"),
        CheckConstraint("format IN ('MARKDOWN','HTML','JSON')", name="format_known"),
        CheckConstraint(
            "status IN ('DRAFT','SCHEDULED','PUBLISHED','ARCHIVED')", name="status_known"
        ),
        # Public lists: newest published first, within a type.
        Index(
            "ix_content_published",
            "type",
            text("published_at DESC"),
            text("id DESC"),
            postgresql_where=text("status = 'PUBLISHED'"),
        ),
        Index("ix_content_tags", "tags", postgresql_using="gin"),
        Index("ix_content_media", "media", postgresql_using="gin"),
        Index("ix_content_search", "search", postgresql_using="gin"),
        # The scheduler's scan: only what is waiting.
        Index("ix_content_due", "publish_at", postgresql_where=text("status = 'SCHEDULED'")),
    )

    type: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    slug: Mapped[str] = mapped_column(String(120))
    locale: Mapped[str] = mapped_column(String(16), server_default=text("'en'"))
    format: Mapped[str] = mapped_column(String(10))
    content: Mapped[str] = mapped_column(Text)
    # The sanitised HTML, rendered once on save (null for JSON content).
    html: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(
        ARRAY(String(50)), server_default=text("ARRAY[]::varchar[]")
    )
    media: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(Uuid),
        server_default=text("ARRAY[]::uuid[]"),
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))
    status: Mapped[str] = mapped_column(String(10), server_default=text("'DRAFT'"))
    publish_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Bumped by every change: the ETag, and the If-Match check of concurrent edits.
    version: Mapped[int] = mapped_column(server_default=text("1"))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    # The text search configuration of the locale (english, german, ... or simple).
    search_config: Mapped[str] = mapped_column(REGCONFIG, server_default=text("'simple'"))
    search: Mapped[Any] = mapped_column(
        TSVECTOR,
        Computed(
            "setweight(to_tsvector(search_config, title), 'A') || "
            "setweight(to_tsvector(search_config, content), 'B')",
            persisted=True,
        ),
    )


class ContentRevision(Base):
    """Every save of a content item: what it said, who saved it, when."""

    __tablename__ = "content_revisions"

    content_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("content.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(primary_key=True)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB)
    editor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
