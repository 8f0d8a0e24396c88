"""In-process workers and waiting for the queue to settle, shared by the queue tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI

from gameportal.db import plain_url
from gameportal.notifications.channels import register_builtin_handlers
from gameportal.notifications.registry import close_handlers, unregister_handler
from gameportal.notifications.sealed import FIELD, unseal
from gameportal.notifications.worker import Worker, WorkerConfig

BUILTIN_TYPES = ("IN_APP", "EMAIL", "PUSH")


@asynccontextmanager
async def running_workers(
    app: FastAPI, database_url: str, n: int = 1, *, builtins: bool = False, **config: object
) -> AsyncIterator[list[Worker]]:
    """`n` workers on the app's pool, tuned to react fast; `builtins` installs the
    channels gameportal ships (with the app's settings) for the duration."""
    values: dict[str, object] = {
        "types": ["IN_APP"],
        "concurrency": 8,
        "poll_interval": 0.2,
        "retry_base_seconds": 0.05,
        "reap_interval": 0.3,
    }
    values.update(config)
    if builtins:
        register_builtin_handlers(app.state.settings)
    workers = [
        Worker(app.state.db.pool, plain_url(database_url), WorkerConfig(**values))  # type: ignore[arg-type]
        for _ in range(n)
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        yield workers
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        if builtins:
            await close_handlers()
            for message_type in BUILTIN_TYPES:
                unregister_handler(message_type)


async def wait_for(condition: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def settled(db: asyncpg.Pool, status: str, count: int = 1) -> None:
    """At least `count` messages are in `status`."""

    async def reached() -> bool:
        found: int = await db.fetchval("SELECT count(*) FROM messages WHERE status = $1", status)
        return found >= count

    await wait_for(reached, within=10)


async def queued_link(db: asyncpg.Pool, secret_key: str, template: str) -> str:
    """The one-time link of the newest queued `template` mail (password_reset,
    verify_email), opened the way the worker opens it: the row holds it sealed."""
    row = await db.fetchrow(
        "SELECT recipient_user_id, payload FROM messages WHERE payload->>'template' = $1 "
        "ORDER BY id DESC LIMIT 1",
        template,
    )
    assert row is not None, f"no {template} mail is queued"
    link: str = unseal(secret_key, row["recipient_user_id"], row["payload"][FIELD])["link"]
    return link
