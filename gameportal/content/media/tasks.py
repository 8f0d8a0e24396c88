"""The worker's media jobs: MEDIA_PROCESSING (verify, strip EXIF, renditions; then tell
the uploader, also when the job gives up), and removing presigned uploads that were never
completed."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import asyncpg
import structlog

from gameportal.config import Settings
from gameportal.content.media import repository as repo
from gameportal.content.media.storage import Storage, media_key
from gameportal.notifications.registry import ClaimedMessage, Delivery

if TYPE_CHECKING:
    from gameportal.content.media.images import Processed

log = structlog.get_logger(__name__)

ABANDONED_BATCH = 100


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class MediaProcessor:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage

    async def __call__(self, message: ClaimedMessage, delivery: Delivery) -> None:
        media_id = uuid.UUID(str(message.payload["mediaId"]))
        row = await repo.to_process(delivery.pool, media_id)
        if row is None or row["status"] != "PROCESSING":
            return  # deleted meanwhile, or done by an earlier attempt
        # Imported on first use: every `gameportal worker` registers this handler, and
        # Pillow (and FastAPI, behind the queue service) would slow each one's start.
        from gameportal.content.media.images import Rejected, process

        data = await self.storage.read(row["storage_key"])
        try:
            # Pillow in a thread: the event loop keeps the leases of other jobs alive.
            result = await asyncio.to_thread(
                process,
                data,
                row["mime_type"],
                max_pixels=self.settings.media_max_pixels,
                widths=self.settings.media_rendition_widths,
            )
        except Rejected as exc:
            await self.storage.delete([row["storage_key"]])
            await self._settle(delivery.pool, media_id, rejected=str(exc))
            log.info("media_rejected", media_id=str(media_id), reason=str(exc))
            return
        await self._store(media_id, row["storage_key"], row["mime_type"], result)
        await self._settle(delivery.pool, media_id, result=result)
        log.info("media_ready", media_id=str(media_id), renditions=len(result.renditions))

    async def _store(self, media_id: uuid.UUID, key: str, mime: str, result: Processed) -> None:
        # Overwriting is safe to repeat: a retry writes the same names again.
        await self.storage.write(key, _once(result.original), mime)
        for rendition in result.renditions:
            await self.storage.write(
                media_key(media_id, rendition.name), _once(rendition.data), rendition.mime_type
            )

    async def _settle(
        self,
        pool: asyncpg.Pool,
        media_id: uuid.UUID,
        *,
        result: Processed | None = None,
        rejected: str | None = None,
    ) -> None:
        async with pool.acquire() as conn, conn.transaction():
            row = await repo.for_processing(conn, media_id)
            if row is None or row["status"] != "PROCESSING":
                return
            if result is not None:
                await repo.mark_ready(
                    conn,
                    media_id,
                    width=result.width,
                    height=result.height,
                    size_bytes=len(result.original),
                    sha256=hashlib.sha256(result.original).hexdigest(),
                    renditions=[
                        {
                            "name": r.name,
                            "width": r.width,
                            "height": r.height,
                            "mimeType": r.mime_type,
                            "url": self.storage.url(media_key(media_id, r.name)),
                        }
                        for r in result.renditions
                    ],
                )
                subject = f"{row['file_name']} is ready"
                body = None
            else:
                await repo.mark_rejected(conn, media_id, rejected or "rejected")
                subject = f"{row['file_name']} was rejected"
                body = rejected
            await _tell_uploader(conn, row, subject, body)

    async def on_final_failure(
        self, conn: asyncpg.Connection, message: ClaimedMessage, error: str
    ) -> None:
        """The job gave up (out of attempts, a permanent error, or its worker died each
        time): the asset ends FAILED with the reason, in the transaction that marks the
        message FAILED, and the uploader is told. Uploading the file again may work."""
        try:
            media_id = uuid.UUID(str(message.payload["mediaId"]))
        except (KeyError, ValueError):
            return
        row = await repo.for_processing(conn, media_id)
        if row is None or row["status"] != "PROCESSING":
            return
        reason = failure_reason(error)
        await repo.mark_failed(conn, media_id, reason)
        await _tell_uploader(conn, row, f"{row['file_name']} could not be processed", reason)
        log.warning("media_failed", media_id=str(media_id), reason=reason)


def failure_reason(error: str) -> str:
    """What the uploader is told, from the job's last error: a storage failure says what
    failed (StorageError messages name no path); other errors say only their kind, since
    their text may carry server detail."""
    kind, _, text = error.partition(": ")
    if kind == "StorageError":
        detail = text
    elif error.startswith("lease expired"):
        detail = "the worker processing it stopped each time"
    else:
        detail = f"an unexpected error ({kind})"
    return f"processing failed: {detail}; upload the file again to retry"[:500]


async def _tell_uploader(
    conn: asyncpg.Connection, row: asyncpg.Record, subject: str, body: str | None
) -> None:
    if row["uploaded_by"] is not None:
        from gameportal.notifications.service import enqueue_on

        await enqueue_on(
            conn,
            message_type="IN_APP",
            payload={"subject": subject[:300], "body": body, "category": "transactional"},
            recipient_user_id=row["uploaded_by"],
        )


class AbandonedUploads:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def __call__(self, pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn, conn.transaction():
            rows = await repo.take_abandoned_uploads(conn, ABANDONED_BATCH)
            if rows:
                await self.storage.delete([r["storage_key"] for r in rows])
        if rows:
            log.info("abandoned_uploads_removed", count=len(rows))
