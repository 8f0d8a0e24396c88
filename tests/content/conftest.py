from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from gameportal.content.tasks import register_content_tasks
from gameportal.notifications.registry import unregister_handler, unregister_periodic
from tests.notifications.support import running_workers


@contextlib.asynccontextmanager
async def content_worker_running(app: FastAPI, database_url: str) -> AsyncIterator[None]:
    """A worker doing what `gameportal worker` does for content: scheduled publishing,
    media processing, and the uploader's IN_APP notices."""
    register_content_tasks(app.state.settings)
    try:
        async with running_workers(
            app, database_url, builtins=True, types=["MEDIA_PROCESSING", "IN_APP"]
        ):
            yield
    finally:
        unregister_handler("MEDIA_PROCESSING")
        unregister_periodic("content.publish_due")
        unregister_periodic("media.abandoned_uploads")


@pytest.fixture
async def content_worker(app: FastAPI, database_url: str) -> AsyncIterator[None]:
    async with content_worker_running(app, database_url):
        yield
