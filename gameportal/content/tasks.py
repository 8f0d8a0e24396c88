"""What `gameportal worker` does for content: publish scheduled items when they fall due,
process uploaded media, and remove uploads that were never completed."""

from __future__ import annotations

import asyncpg
import structlog

from gameportal.config import Settings
from gameportal.content import repository as repo
from gameportal.content.media.storage import storage_from
from gameportal.content.media.tasks import AbandonedUploads, MediaProcessor
from gameportal.notifications.registry import register_handler, register_periodic

log = structlog.get_logger(__name__)

PUBLISH_EVERY_SECONDS = 5.0
ABANDONED_EVERY_SECONDS = 60.0


async def publish_due_content(pool: asyncpg.Pool) -> None:
    for content_id in await repo.publish_due(pool):
        log.info("content_published_on_schedule", content_id=str(content_id))


def register_content_tasks(settings: Settings) -> None:
    storage = storage_from(settings)
    register_periodic("content.publish_due", PUBLISH_EVERY_SECONDS, publish_due_content)
    register_periodic("media.abandoned_uploads", ABANDONED_EVERY_SECONDS, AbandonedUploads(storage))
    register_handler("MEDIA_PROCESSING", MediaProcessor(settings, storage))
