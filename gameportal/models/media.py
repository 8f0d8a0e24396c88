"""Media assets: uploaded files, where they are stored, and their image renditions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gameportal.models.base import Base, CreatedAtMixin, IdMixin

MEDIA_STATUSES = ("UPLOADING", "PROCESSING", "READY", "REJECTED", "FAILED")


class MediaAsset(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "media_assets"
    __table_args__ = (
        CheckConstraint(
            "status IN ('UPLOADING','PROCESSING','READY','REJECTED','FAILED')",
            name="status_known",
        ),
        Index("ix_media_assets_uploaded_by", "uploaded_by", "id"),
        Index("ix_media_assets_related_content_id", "related_content_id", "id"),
        # The janitor's scan for presigned uploads that never completed.
        Index(
            "ix_media_assets_uploading",
            "upload_expires_at",
            postgresql_where=text("status = 'UPLOADING'"),
        ),
    )

    # What the uploader called it: shown and offered as the download name, never used
    # as a storage path.
    file_name: Mapped[str] = mapped_column(String(255))
    # The public address of the original; renditions carry their own.
    url: Mapped[str] = mapped_column(String(2048))
    mime_type: Mapped[str] = mapped_column(String(127))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    related_content_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("content.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(10), server_default=text("'UPLOADING'"))
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    sha256: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int | None]
    height: Mapped[int | None]
    renditions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'"))
    # Server-generated; the backend ("local" or "s3") it lives on.
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    storage_backend: Mapped[str] = mapped_column(String(8))
    upload_expires_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
