"""Shapes of media in and out of the API."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from gameportal.kit.schemas import InputSchema, Schema, UtcDatetime

MediaStatus = Literal["UPLOADING", "PROCESSING", "READY", "REJECTED", "FAILED"]


class RenditionRead(Schema):
    name: str
    width: int
    height: int
    mime_type: str
    url: str


class PublicMedia(Schema):
    """What anyone may see of READY media: nothing about who uploaded it or for what."""

    id: uuid.UUID
    file_name: str
    url: str
    mime_type: str
    size_bytes: int
    width: int | None
    height: int | None
    renditions: list[RenditionRead]
    created_at: UtcDatetime


class MediaRead(PublicMedia):
    """What editors see."""

    uploaded_by: uuid.UUID | None
    related_content_id: uuid.UUID | None
    status: MediaStatus
    reject_reason: str | None
    sha256: str | None
    updated_at: UtcDatetime


class UploadRequest(InputSchema):
    file_name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    mime_type: Annotated[
        str,
        StringConstraints(min_length=3, max_length=127),
        Field(
            description="An image type, or one that `GAMEPORTAL_MEDIA_EXTRA_TYPES` adds; "
            "the bytes uploaded must be of this type"
        ),
    ]
    size_bytes: Annotated[
        int, Field(ge=1, description="At most `GAMEPORTAL_MEDIA_MAX_BYTES` (20 MiB by default)")
    ]
    related_content_id: uuid.UUID | None = None


class UploadTicket(Schema):
    media: MediaRead
    upload_url: str = Field(description="PUT the file's bytes here, with `uploadHeaders`")
    upload_method: Literal["PUT"] = "PUT"
    upload_headers: dict[str, str]
    expires_at: UtcDatetime
