"""Live in-app notifications: one LISTEN connection per API process fans deliveries out to
the Server-Sent-Event streams connected to it, so a message delivered by any worker
reaches a player connected to any API instance."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gameportal.identity import repository as identity_repo
from gameportal.kit.listener import PgListener
from gameportal.notifications import service
from gameportal.notifications.channels.in_app import INBOX_CHANNEL
from gameportal.notifications.schemas import InboxItem

log = structlog.get_logger(__name__)

QUEUE_LIMIT = 1000  # per stream; a client this far behind resumes with Last-Event-ID


class InboxHub:
    """Fans inbox NOTIFYs out to the streams connected to this process."""

    def __init__(self, listener: PgListener) -> None:
        self.listener = listener
        self._streams: dict[uuid.UUID, set[asyncio.Queue[uuid.UUID | None]]] = defaultdict(set)
        listener.on(INBOX_CHANNEL, self._deliver)

    def close(self) -> None:
        for queues in self._streams.values():
            for queue in queues:
                queue.put_nowait(None)  # ends the stream

    async def wait_connected(self, within: float) -> bool:
        return await self.listener.wait_connected(within)

    def subscribe(self, user_id: uuid.UUID) -> asyncio.Queue[uuid.UUID | None]:
        queue: asyncio.Queue[uuid.UUID | None] = asyncio.Queue(QUEUE_LIMIT)
        self._streams[user_id].add(queue)
        return queue

    def unsubscribe(self, user_id: uuid.UUID, queue: asyncio.Queue[uuid.UUID | None]) -> None:
        queues = self._streams.get(user_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._streams[user_id]

    def _deliver(self, payload: str) -> None:
        try:
            event = orjson.loads(payload)
            message_id = uuid.UUID(event["id"])
            to = uuid.UUID(event["to"]) if event.get("to") else None
        except (ValueError, KeyError, TypeError):
            log.warning("inbox_notify_unreadable", payload=payload[:200])
            return
        targets = (
            [q for queues in self._streams.values() for q in queues]
            if to is None
            else list(self._streams.get(to, ()))
        )
        for queue in targets:
            with contextlib.suppress(asyncio.QueueFull):  # it will resume from the database
                queue.put_nowait(message_id)


HEARTBEAT_SECONDS = 15.0


async def inbox_events(
    hub: InboxHub,
    sessionmaker: async_sessionmaker[AsyncSession],
    pool: asyncpg.Pool,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    idle: timedelta,
    after: uuid.UUID | None,
) -> AsyncIterator[InboxItem | None]:
    """What one player's stream carries: missed notifications first (after `after`), then
    each new one as it is delivered; None for a heartbeat. Ends when the player's session
    does (checked at each heartbeat) or the hub stops."""
    queue = hub.subscribe(user_id)  # before the replay, so nothing falls in between
    try:
        sent: set[uuid.UUID] = set()
        if after is not None:
            async with sessionmaker() as session:
                missed = await service.inbox_after(session, user_id, after=after)
            for item in missed:
                sent.add(item.id)
                yield item
        while True:
            try:
                message_id = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                live = await identity_repo.live_session_user(
                    pool, session_id=session_id, user_id=user_id, idle=idle
                )
                if live is None:
                    return
                yield None
                continue
            if message_id is None:
                return
            if message_id in sent:
                continue
            async with sessionmaker() as session:
                found = await service.inbox_after(session, user_id, only=message_id)
            for item in found:
                sent.add(item.id)
                yield item
    finally:
        hub.unsubscribe(user_id, queue)
