"""One PostgreSQL LISTEN connection per process, shared by everything that reacts to
NOTIFY (live inboxes, ended sessions, the public content cache), reconnecting at once.

While it is down every NOTIFY sent is lost to this process, so whoever relies on it must
catch up from the tables when it is back (state callbacks say when): the reconnect
backoff stays short (RECONNECT_MAX_SECONDS), an outage is logged once when it starts and
once when it ends, and a connection that stops answering (a half-open TCP connection
after a network fault sends no error) is noticed by a periodic ping."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger(__name__)

Callback = Callable[[str], None]  # called with the NOTIFY payload
StateCallback = Callable[[bool], None]  # called with True on (re)connect, False on loss

RECONNECT_FIRST_SECONDS = 0.1
# Each second without LISTEN is a second in which NOTIFYs go nowhere and readiness is
# withheld; a connection attempt to a server that is away costs next to nothing.
RECONNECT_MAX_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 5.0
PING_INTERVAL_SECONDS = 10.0
PING_TIMEOUT_SECONDS = 5.0


def _set_event(event: asyncio.Event, *_: object) -> None:
    event.set()


class PgListener:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._channels: dict[str, list[Callback]] = {}
        self._state_callbacks: list[StateCallback] = []
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    def on(self, channel: str, callback: Callback) -> None:
        """Register before `start()`."""
        self._channels.setdefault(channel, []).append(callback)

    def on_state(self, callback: StateCallback) -> None:
        self._state_callbacks.append(callback)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_connected(self, within: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), within)
        except TimeoutError:
            return False
        return True

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        for callback in self._channels.get(channel, ()):
            try:
                callback(str(payload))
            except Exception:  # one bad callback must not silence the others
                log.exception("notify_callback_failed", channel=channel)

    def _set_state(self, connected: bool) -> None:
        if connected:
            self._connected.set()
        else:
            self._connected.clear()
        for callback in self._state_callbacks:
            try:
                callback(connected)
            except Exception:
                log.exception("listen_state_callback_failed")

    async def _listen_forever(self) -> None:
        delay = RECONNECT_FIRST_SECONDS
        lost_at: float | None = None  # when this outage began (monotonic), if in one
        attempts = 0
        while True:
            try:
                conn = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT_SECONDS)
                try:
                    closed = asyncio.Event()
                    conn.add_termination_listener(functools.partial(_set_event, closed))
                    for channel in self._channels:
                        await conn.add_listener(channel, self._dispatch)
                    if lost_at is not None:
                        log.warning(
                            "listen_restored",
                            down_seconds=round(time.monotonic() - lost_at, 2),
                            attempts=attempts,
                        )
                    lost_at, attempts, delay = None, 0, RECONNECT_FIRST_SECONDS
                    self._set_state(True)
                    await self._until_lost(conn, closed)
                finally:
                    if self._connected.is_set():
                        self._set_state(False)
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), PING_TIMEOUT_SECONDS)
                reason = "connection lost"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever breaks, LISTEN must come back
                reason = f"{type(exc).__name__}: {exc}"
            attempts += 1
            if lost_at is None:
                lost_at = time.monotonic()
                log.warning("listen_lost", error=reason[:300])
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    @staticmethod
    async def _until_lost(conn: asyncpg.Connection, closed: asyncio.Event) -> None:
        """Returns when the connection closes or stops answering."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), PING_INTERVAL_SECONDS)
                return
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), PING_TIMEOUT_SECONDS)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                return
