"""Shapes of media in and out of the API."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from gameportal.kit.schemas import InputSchema, Schema, UtcDatetime, example

MediaStatus = Literal["UPLOADING", "PROCESSING", "READY", "REJECTED", "FAILED"]


class RenditionRead(Schema):
    name: str
    width: int
    height: int
    mime_type: str
    url: str


PUBLIC_MEDIA_EXAMPLE = {
    "id": "0195a3d1-3c4d-7e5f-9a6b-7c8d9e0f1a2b",
    "fileName": "season-3-banner.png",
    "url": "https://portal.example.com/api/v1/media/0195a3d1-3c4d-7e5f-9a6b-7c8d9e0f1a2b/file",
    "mimeType": "image/png",
    "sizeBytes": 482133,
    "width": 1920,
    "height": 1080,
    "renditions": [
        {
            "name": "w320",
            "width": 320,
            "height": 180,
            "mimeType": "image/webp",
            "url": "https://portal.example.com/api/v1/media/0195a3d1-3c4d-7e5f-9a6b-7c8d9e0f1a2b/renditions/w320",
        }
    ],
    "createdAt": "2026-03-14T09:40:00Z",
}


class PublicMedia(Schema):
    """What anyone may see of READY media: nothing about who uploaded it or for what."""

    model_config = example(PUBLIC_MEDIA_EXAMPLE)

    id: uuid.UUID
    file_name: str
    url: str
    mime_type: str
    size_bytes: int
    width: int | None
    height: int | None
    renditions: list[RenditionRead]
    created_at: UtcDatetime


MEDIA_EXAMPLE = {
    **PUBLIC_MEDIA_EXAMPLE,
    "uploadedBy": "0195a3c2-5b1e-7c4d-8e9f-0a1b2c3d4e5f",
    "relatedContentId": "0195a3d0-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
    "status": "READY",
    "rejectReason": None,
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "updatedAt": "2026-03-14T09:40:02Z",
}


class MediaRead(PublicMedia):
    """What editors see."""

    model_config = example(MEDIA_EXAMPLE)

    uploaded_by: uuid.UUID | None
    related_content_id: uuid.UUID | None
    status: MediaStatus
    reject_reason: str | None
    sha256: str | None
    updated_at: UtcDatetime


UPLOAD_REQUEST_EXAMPLE = {
    "fileName": "season-3-trailer.png",
    "mimeType": "image/png",
    "sizeBytes": 482133,
}


class UploadRequest(InputSchema):
    model_config = example(UPLOAD_REQUEST_EXAMPLE)

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


UPLOAD_TICKET_EXAMPLE = {
    "media": {
        **MEDIA_EXAMPLE,
        "status": "UPLOADING",
        "width": None,
        "height": None,
        "renditions": [],
        "sha256": None,
    },
    "uploadUrl": "https://media.example.com/portal/0195a3d1-3c4d-7e5f-9a6b-7c8d9e0f1a2b?X-Amz-Signature=5d1f",
    "uploadMethod": "PUT",
    "uploadHeaders": {"Content-Type": "image/png"},
    "expiresAt": "2026-03-14T09:55:00Z",
}


class UploadTicket(Schema):
    model_config = example(UPLOAD_TICKET_EXAMPLE)

    media: MediaRead
    upload_url: str = Field(description="PUT the file's bytes here, with `uploadHeaders`")
    upload_method: Literal["PUT"] = "PUT"
    upload_headers: dict[str, str]
    expires_at: UtcDatetime
