"""The rules of media: what may be uploaded (judged by its bytes), where it goes, and
what is queued for processing. A refused upload leaves nothing behind, neither a row nor
bytes in storage."""

from __future__ import annotations

import contextlib
import hashlib
import unicodedata
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.config import Settings
from gameportal.content.media import repository as repo
from gameportal.content.media.images import IMAGE_FORMATS, SNIFF_BYTES, Rejected, check_type
from gameportal.content.media.schemas import UploadRequest
from gameportal.content.media.storage import CHUNK, Storage, StorageError, media_key
from gameportal.errors import (
    Conflict,
    FieldProblem,
    InvalidField,
    NotFound,
    PayloadTooLarge,
    PortalError,
    Unavailable,
)
from gameportal.kit.ids import new_id
from gameportal.kit.time import utcnow
from gameportal.models import MediaAsset
from gameportal.notifications.service import enqueue

GENERIC_TYPES = {"application/octet-stream", "binary/octet-stream", ""}


class MediaInUse(Conflict):
    slug = "media-in-use"
    title = "Published content shows this media"


class UploadNotReady(Conflict):
    slug = "upload-not-ready"
    title = "The upload cannot be completed"


class StorageUnavailable(Unavailable):
    slug = "storage-unavailable"
    title = "The media storage is not available"


class StorageFull(PortalError):
    status = 507
    slug = "insufficient-storage"
    title = "The media storage is full"


# How soon a client may try again after a storage failure (a folder fixed, S3 back).
STORAGE_RETRY_AFTER_SECONDS = 30


@contextlib.contextmanager
def _storage_errors() -> Iterator[None]:
    """The storage failing is the server's trouble, not the client's: 503 (507 when out
    of space) instead of a 500."""
    try:
        yield
    except StorageError as exc:
        if exc.full:
            raise StorageFull(str(exc)) from None
        raise StorageUnavailable(
            str(exc), headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)}
        ) from None


def unknown_media(ids: list[uuid.UUID], missing: list[uuid.UUID]) -> InvalidField:
    """The error for a request's `media` list (`ids`) naming assets that do not exist:
    one problem per missing id, at its place in the list."""
    return InvalidField.many(
        [
            FieldProblem(
                field=f"media.{ids.index(m)}",
                location="body",
                message=f"no media asset has id {m}",
                code="not_found",
            )
            for m in missing
        ]
    )


def allowed_types(settings: Settings) -> set[str]:
    return set(IMAGE_FORMATS) | set(settings.media_extra_types)


def safe_file_name(name: str | None) -> str:
    """A display name only: no folders, no control characters, bounded."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip(" .")
    return cleaned[:255] or "upload"


async def _check_related(session: AsyncSession, content_id: uuid.UUID | None) -> None:
    if content_id is not None and not await repo.content_exists(session, content_id):
        raise InvalidField("relatedContentId", "no content has this id", "not_found")


async def _queue_processing(session: AsyncSession, item: MediaAsset) -> None:
    if item.mime_type in IMAGE_FORMATS:
        item.status = "PROCESSING"
        await session.flush()
        await enqueue(
            session,
            message_type="MEDIA_PROCESSING",
            payload={"mediaId": str(item.id)},
            dedupe_key=f"media:{item.id}",
        )
    else:
        item.status = "READY"  # an allowed non-image: nothing to do to it


async def upload(
    session: AsyncSession,
    storage: Storage,
    settings: Settings,
    *,
    uploader: uuid.UUID,
    file_name: str | None,
    declared_type: str | None,
    read: Callable[[int], Awaitable[bytes]],
    related_content_id: uuid.UUID | None,
) -> MediaAsset:
    """Stream the file to storage while hashing it, then judge it by its first bytes."""
    await _check_related(session, related_content_id)
    media_id = new_id()
    key = media_key(media_id)
    digest = hashlib.sha256()
    head = bytearray()

    async def chunks() -> AsyncIterator[bytes]:
        total = 0
        while chunk := await read(CHUNK):
            total += len(chunk)
            if total > settings.media_max_bytes:
                raise PayloadTooLarge(f"files are at most {settings.media_max_bytes} bytes")
            digest.update(chunk)
            if len(head) < SNIFF_BYTES:
                head.extend(chunk[: SNIFF_BYTES - len(head)])
            yield chunk

    with _storage_errors():
        size = await storage.write(key, chunks(), declared_type or "application/octet-stream")
    try:
        if size == 0:
            raise InvalidField("file", "the file is empty", "empty")
        # MIME types are case-insensitive and may carry parameters (`; charset=...`).
        declared = (declared_type or "").split(";", 1)[0].strip().lower()
        claimed = None if declared in GENERIC_TYPES else declared
        try:
            real_type = check_type(bytes(head), claimed, allowed_types(settings))
        except Rejected as exc:
            raise InvalidField("file", str(exc), "unsupported_type") from None
        item = MediaAsset(
            id=media_id,
            file_name=safe_file_name(file_name),
            url=storage.url(key),
            mime_type=real_type,
            size_bytes=size,
            uploaded_by=uploader,
            related_content_id=related_content_id,
            status="PROCESSING",
            sha256=digest.hexdigest(),
            renditions=[],
            storage_key=key,
            storage_backend=storage.name,
        )
        session.add(item)
        await _queue_processing(session, item)
        await session.flush()
    except BaseException:
        # Nothing half-written; a storage that cannot delete either must not hide why.
        with contextlib.suppress(StorageError):
            await storage.delete([key])
        raise
    return item


async def start_presigned(
    session: AsyncSession,
    storage: Storage,
    settings: Settings,
    uploader: uuid.UUID,
    body: UploadRequest,
) -> tuple[MediaAsset, str]:
    presign = getattr(storage, "presign_put", None)
    if presign is None:
        raise Unavailable("direct uploads need the S3 storage backend; POST the file instead")
    body.mime_type = body.mime_type.split(";", 1)[0].strip().lower()
    if body.mime_type not in allowed_types(settings):
        raise InvalidField("mimeType", f"{body.mime_type} is not accepted", "unsupported_type")
    if body.size_bytes > settings.media_max_bytes:
        raise InvalidField(
            "sizeBytes", f"files are at most {settings.media_max_bytes} bytes", "too_large"
        )
    await _check_related(session, body.related_content_id)
    media_id = new_id()
    key = media_key(media_id)
    item = MediaAsset(
        id=media_id,
        file_name=safe_file_name(body.file_name),
        url=storage.url(key),
        mime_type=body.mime_type,
        size_bytes=body.size_bytes,
        uploaded_by=uploader,
        related_content_id=body.related_content_id,
        status="UPLOADING",
        renditions=[],
        storage_key=key,
        storage_backend=storage.name,
        upload_expires_at=utcnow() + timedelta(seconds=settings.media_upload_ttl_seconds),
    )
    session.add(item)
    await session.flush()
    url: str = presign(key, body.mime_type, settings.media_upload_ttl_seconds)
    return item, url


async def _owned(
    session: AsyncSession, media_id: uuid.UUID, user: uuid.UUID, is_admin: bool
) -> MediaAsset:
    item = await session.get(MediaAsset, media_id, with_for_update=True)
    if item is None or (item.uploaded_by != user and not is_admin):
        raise NotFound("no such media")
    return item


async def complete(
    session: AsyncSession,
    storage: Storage,
    settings: Settings,
    media_id: uuid.UUID,
    *,
    user: uuid.UUID,
    is_admin: bool,
) -> MediaAsset:
    """Check what arrived (there, the size announced, the type announced) before taking
    it; wrong bytes are deleted at once."""
    item = await _owned(session, media_id, user, is_admin)
    if item.status != "UPLOADING":
        raise UploadNotReady(f"the media is {item.status}, not waiting for an upload")
    if item.upload_expires_at is not None and item.upload_expires_at < utcnow():
        raise UploadNotReady("the upload URL has expired; start a new upload")
    with _storage_errors():
        size = await storage.head(item.storage_key)
        if size is None:
            raise UploadNotReady("nothing has been uploaded yet; PUT the file to the upload URL")
        try:
            if size != item.size_bytes:
                raise InvalidField(
                    "sizeBytes",
                    f"{size} bytes arrived, {item.size_bytes} were announced",
                    "mismatch",
                )
            head = await storage.read_start(item.storage_key, SNIFF_BYTES)
            try:
                check_type(head, item.mime_type, allowed_types(settings))
            except Rejected as exc:
                raise InvalidField("file", str(exc), "unsupported_type") from None
        except InvalidField:
            # The wrong bytes go; the upload stays open until it expires, so the client
            # can PUT the right file to the same URL (the janitor removes it after that).
            await storage.delete([item.storage_key])
            raise
        if item.mime_type not in IMAGE_FORMATS:  # images get theirs from processing
            item.sha256 = hashlib.sha256(await storage.read(item.storage_key)).hexdigest()
    item.upload_expires_at = None
    await _queue_processing(session, item)
    await session.flush()
    return item


async def get(session: AsyncSession, media_id: uuid.UUID) -> MediaAsset:
    item = await session.get(MediaAsset, media_id)
    if item is None:
        raise NotFound("no such media")
    return item


async def delete(session: AsyncSession, storage: Storage, media_id: uuid.UUID) -> None:
    item = await session.get(MediaAsset, media_id, with_for_update=True)
    if item is None:
        raise NotFound("no such media")
    shown_on = await repo.referenced_by_published(session, media_id)
    if shown_on:
        raise MediaInUse(f"unpublish or change {', '.join(shown_on)} first")
    keys = [item.storage_key, *(media_key(item.id, r["name"]) for r in item.renditions)]
    await repo.forget_in_content(session, media_id)
    await session.delete(item)
    await session.flush()
    # After the row is gone from this transaction; if the commit then failed, the row
    # would remain without its bytes, which a retried DELETE cleans up.
    with _storage_errors():
        await storage.delete(keys)
