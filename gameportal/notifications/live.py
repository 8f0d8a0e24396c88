"""Live in-app notifications: one LISTEN connection per API process fans deliveries out to
the Server-Sent-Event streams connected to it, so a message delivered by any worker
reaches a player connected to any API instance.

A NOTIFY reaches only the processes listening at that moment, so the table stays the
truth: a stream replays from it what it has not sent whenever it may have missed an
announcement (LISTEN was down, or the stream fell too far behind), and a client that
reconnects with `Last-Event-ID` gets everything delivered after that event. Both replays
go in order of delivery, not creation: a scheduled or retried message is delivered after
messages created after it. Ending a session is announced the same way
(SESSIONS_ENDED_CHANNEL), so its streams end at once in every process."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
import orjson
import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gameportal.errors import PortalError
from gameportal.identity import repository as identity_repo
from gameportal.identity.repository.sessions import SESSIONS_ENDED_CHANNEL
from gameportal.kit.db_outage import database_unavailable
from gameportal.kit.ids import id_time
from gameportal.kit.listener import PgListener
from gameportal.notifications import service
from gameportal.notifications.channels.in_app import INBOX_CHANNEL
from gameportal.notifications.schemas import InboxItem

log = structlog.get_logger(__name__)

# Announcements a stream holds before it gives up on them and catches up from the table.
QUEUE_LIMIT = 1000
HEARTBEAT_SECONDS = 15.0  # a keep-alive, and the session checked again (expiry, idling)
REPLAY_PAGE = 500
# How far before its floor a replay starts: a fresh stream's floor is the API's clock,
# which may run behind the database's (sent_at).
REPLAY_MARGIN = timedelta(seconds=5)
# A new stream's answer while this process cannot promise it every message.
RETRY_AFTER_SECONDS = 2

# What a stream's database call raises when the server is away or the connection breaks.
DATABASE_ERRORS: Final = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    DBAPIError,
    PoolTimeout,
    TimeoutError,
)


class LiveUnavailable(PortalError):
    status = 503
    slug = "live-unavailable"
    title = "Live notifications are unavailable for a moment"


@dataclass(frozen=True)
class Ending:
    """Why the server ends a stream, and the `retry:` hint (ms) its last line carries."""

    reason: str
    retry_ms: int | None


def _ending(reason: str) -> Ending:
    # Jittered, so that thousands of clients cut at once do not come back at once.
    if reason == "shutdown":  # another instance, or this one restarted, takes them soon
        return Ending(reason, random.randint(500, 3000))  # noqa: S311 - jitter
    if reason == "database":  # the server is away: give it a moment
        return Ending(reason, random.randint(2000, 5000))  # noqa: S311 - jitter
    return Ending(reason, None)  # the session ended: a reconnect gets 401


class Heartbeat:
    """Nothing to send for a while: a comment keeps proxies from closing the stream."""


HEARTBEAT: Final = Heartbeat()

Event = InboxItem | Heartbeat | Ending


class Subscription:
    """One open stream as the hub sees it: what it must still send or check."""

    __slots__ = ("ending", "pending", "recheck", "resync", "session_id", "user_id", "wake")

    def __init__(self, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.pending: collections.deque[uuid.UUID] = collections.deque()
        self.resync = False  # replay from the table: announcements may have been missed
        self.recheck = False  # a session of this user ended: is this one still live?
        self.ending: Ending | None = None
        self.wake = asyncio.Event()

    def announce(self, message_id: uuid.UUID) -> None:
        if len(self.pending) >= QUEUE_LIMIT:
            self.resync = True  # far behind: it catches up from the table instead
        else:
            self.pending.append(message_id)
        self.wake.set()

    def end(self, ending: Ending) -> None:
        if self.ending is None:
            self.ending = ending
        self.wake.set()


class InboxHub:
    """Fans inbox and ended-session NOTIFYs out to the streams connected to this process."""

    def __init__(self, listener: PgListener) -> None:
        self.listener = listener
        self.shutting_down = False
        self._streams: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        listener.on(INBOX_CHANNEL, self._deliver)
        listener.on(SESSIONS_ENDED_CHANNEL, self._sessions_ended)
        listener.on_state(self._listening)

    @property
    def available(self) -> bool:
        """Whether a new stream would hear every delivery: LISTEN is up (so is the
        database) and the server is not stopping."""
        return self.listener.connected and not self.shutting_down

    def check_available(self) -> None:
        if self.shutting_down:
            detail = "this server is shutting down; connect again"
        elif not self.listener.connected:
            detail = "the server is reconnecting to its database; connect again shortly"
        else:
            return
        raise LiveUnavailable(detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    def shut_down(self) -> None:
        """The server is stopping: end every stream now, each with a hint to reconnect
        (elsewhere), and accept no new ones, so that nothing holds the shutdown up."""
        self.shutting_down = True
        for subscription in self._all():
            subscription.end(_ending("shutdown"))

    close = shut_down

    async def wait_connected(self, within: float) -> bool:
        return await self.listener.wait_connected(within)

    def subscribe(self, user_id: uuid.UUID, session_id: uuid.UUID) -> Subscription:
        subscription = Subscription(user_id, session_id)
        if self.shutting_down:
            subscription.end(_ending("shutdown"))
        self._streams[user_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscriptions = self._streams.get(subscription.user_id)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._streams[subscription.user_id]

    @property
    def open_streams(self) -> int:
        return sum(len(s) for s in self._streams.values())

    def _all(self) -> Iterator[Subscription]:
        return (s for subscriptions in list(self._streams.values()) for s in list(subscriptions))

    def _listening(self, connected: bool) -> None:
        if not connected:
            return
        # Back after a gap: whatever was announced meanwhile went nowhere, and a session
        # may have ended unheard. Every stream catches up from the tables.
        for subscription in self._all():
            subscription.resync = subscription.recheck = True
            subscription.wake.set()

    def _deliver(self, payload: str) -> None:
        try:
            event = orjson.loads(payload)
            message_id = uuid.UUID(event["id"])
            to = uuid.UUID(event["to"]) if event.get("to") else None
        except (ValueError, KeyError, TypeError):
            log.warning("inbox_notify_unreadable", payload=payload[:200])
            return
        targets = self._all() if to is None else iter(list(self._streams.get(to, ())))
        for subscription in targets:
            subscription.announce(message_id)

    def _sessions_ended(self, payload: str) -> None:
        try:
            user_id = uuid.UUID(payload)
        except ValueError:
            log.warning("sessions_ended_notify_unreadable", payload=payload[:200])
            return
        for subscription in self._streams.get(user_id, ()):
            subscription.recheck = True
            subscription.wake.set()


class _Sent:
    """What a stream sent, by id, with when each was delivered; and the floor: a replay
    looks at what was delivered after it. Bounded: past SEEN_LIMIT the earliest delivered
    are forgotten and the floor rises over them."""

    SEEN_LIMIT = 2 * QUEUE_LIMIT
    _NIL = uuid.UUID(int=0)

    def __init__(self, floor: datetime) -> None:
        self.floor = floor
        self._delivered: dict[uuid.UUID, datetime] = {}

    def __contains__(self, message_id: uuid.UUID) -> bool:
        return message_id in self._delivered

    @property
    def replay_from(self) -> tuple[datetime, uuid.UUID]:
        return self.floor - REPLAY_MARGIN, self._NIL

    def add(self, message_id: uuid.UUID, delivered: datetime | None) -> None:
        # One still being delivered has no sent_at yet: it is being delivered now.
        self._delivered[message_id] = delivered or datetime.now(UTC)
        if len(self._delivered) > self.SEEN_LIMIT:
            ordered = sorted(self._delivered.items(), key=lambda entry: entry[1])
            self.floor = max(self.floor, ordered[-QUEUE_LIMIT - 1][1])
            self._delivered = dict(ordered[-QUEUE_LIMIT:])


class _Failures:
    """A lasting fault of this server's (a broken statement after a bad deploy) fails
    every stream at each of its clients' reconnects, every few seconds: one line with the
    traceback per kind of error and minute, saying how many were left out since."""

    EVERY_SECONDS = 60.0

    def __init__(self) -> None:
        self._logged_at: dict[str, float] = {}
        self._left_out: dict[str, int] = defaultdict(int)

    def failed(self, exc: BaseException, user_id: uuid.UUID) -> None:
        kind = type(exc).__name__
        now = time.monotonic()
        logged_at = self._logged_at.get(kind)
        if logged_at is not None and now - logged_at < self.EVERY_SECONDS:
            self._left_out[kind] += 1
            return
        self._logged_at[kind] = now
        log.error(
            "inbox_stream_failed",
            user_id=str(user_id),
            left_out=self._left_out.pop(kind, 0),
            exc_info=exc,
        )


_failures = _Failures()


async def _resume_floor(pool: asyncpg.Pool, user_id: uuid.UUID, after: uuid.UUID) -> datetime:
    """Where a reconnecting client's replay starts: when the event it names became due.

    Not when it was recorded as delivered (sent_at): a worker records deliveries a moment
    after announcing them, not in the order it announced them, and during a database
    outage minutes late, so a message the client never saw may have been recorded before
    the one it names. Whatever it missed was announced after it got that one, which was
    claimed after it became due; its sent_at is later still. So a replay may repeat what
    was delivered between the two (its `id` tells them apart), and misses nothing.

    For an id not (or no longer) in its inbox: when that id was made, if it says (a
    message is due no earlier); else now."""
    due = await service.due_at(pool, user_id, after)
    if due is not None:
        return due
    now = time.time()
    made = id_time(after)
    return datetime.fromtimestamp(min(made, now) if made is not None else now, UTC)


async def inbox_events(
    hub: InboxHub,
    pool: asyncpg.Pool,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    idle: timedelta,
    after: uuid.UUID | None,
) -> AsyncIterator[Event]:
    """What one player's stream carries: missed notifications first (after `after`), then
    each new one as it is delivered; a Heartbeat when there is nothing to say; and last,
    an Ending when the server ends it (its session ended, the database went away, the
    server is stopping). A client that goes away just stops iterating."""
    subscription = hub.subscribe(user_id, session_id)  # before the replay: nothing between
    # A replay sends what was delivered after the client's last event, or after the
    # stream opened.
    sent = _Sent(datetime.now(UTC))
    loop = asyncio.get_running_loop()
    try:
        try:
            if after is not None:
                sent.floor = await _resume_floor(pool, user_id, after)
                sent.add(after, sent.floor)  # the client has that one
                async for item in _replay(pool, subscription, sent):
                    yield item
            next_check = loop.time() + HEARTBEAT_SECONDS
            while True:
                if subscription.ending is not None:
                    yield subscription.ending
                    return
                if not subscription.wake.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            subscription.wake.wait(), max(next_check - loop.time(), 0)
                        )
                subscription.wake.clear()
                if subscription.ending is not None:
                    continue
                heartbeat = loop.time() >= next_check
                if subscription.recheck or heartbeat:
                    subscription.recheck = False
                    live = await identity_repo.live_session_roles(
                        pool, session_id=session_id, user_id=user_id, idle=idle
                    )
                    if live is None:
                        yield _ending("session")
                        return
                    if heartbeat:
                        next_check = loop.time() + HEARTBEAT_SECONDS
                        yield HEARTBEAT
                if subscription.resync:
                    subscription.resync = False
                    subscription.pending.clear()  # the replay covers them
                    async for item in _replay(pool, subscription, sent):
                        yield item
                if subscription.pending:
                    wanted = [i for i in subscription.pending if i not in sent]
                    subscription.pending.clear()
                    if wanted:
                        for item in await service.stream_items(pool, user_id, wanted):
                            if item.id not in sent:
                                sent.add(item.id, item.sent_at)
                                yield item
        except DATABASE_ERRORS as exc:
            # The database went away under this stream: end it cleanly; the client comes
            # back with Last-Event-ID and is answered 503 until the server can promise it
            # every message again, then replayed what it missed. Any other database error
            # ends it the same way, but is this server's fault and must not look like an
            # outage: a client would come back to it again and again, unseen.
            if not database_unavailable(exc):
                _failures.failed(exc, user_id)
            yield _ending("database")
    finally:
        hub.unsubscribe(subscription)


async def _replay(
    pool: asyncpg.Pool, subscription: Subscription, sent: _Sent
) -> AsyncIterator[InboxItem]:
    """What the stream has not sent of what was delivered after its floor, in order of
    delivery, a page at a time (so that a long replay still stops promptly at a shutdown);
    then what was being delivered when it started.

    Those are read first: one being delivered then and recorded while the pages are read
    would otherwise be in neither. One claimed after that is announced after the stream
    subscribed (or cleared what it had heard), so it is heard."""
    in_delivery = await service.stream_in_delivery(pool, subscription.user_id, limit=REPLAY_PAGE)
    after = sent.replay_from
    while subscription.ending is None:
        page = await service.stream_delivered(
            pool, subscription.user_id, after=after, limit=REPLAY_PAGE
        )
        for item in page:
            if item.id not in sent:
                sent.add(item.id, item.sent_at)
                yield item
        if len(page) < REPLAY_PAGE:
            break
        last = page[-1]
        if last.sent_at is None:  # never: the page holds SENT messages only
            break
        after = last.sent_at, last.id
    if subscription.ending is None:
        for item in in_delivery:
            if item.id not in sent:
                sent.add(item.id, item.sent_at)
                yield item
