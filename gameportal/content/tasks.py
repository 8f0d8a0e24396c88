"""What `gameportal worker` does for content: publish scheduled items when they fall due."""

from __future__ import annotations

import asyncpg
import structlog

from gameportal.content import repository as repo
from gameportal.notifications.registry import register_periodic

log = structlog.get_logger(__name__)

PUBLISH_EVERY_SECONDS = 5.0


async def publish_due_content(pool: asyncpg.Pool) -> None:
    for content_id in await repo.publish_due(pool):
        log.info("content_published_on_schedule", content_id=str(content_id))


def register_content_tasks() -> None:
    register_periodic("content.publish_due", PUBLISH_EVERY_SECONDS, publish_due_content)
