"""One PostgreSQL LISTEN connection per process, shared by everything that reacts to
NOTIFY (live inboxes, the public content cache), reconnecting with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger(__name__)

Callback = Callable[[str], None]  # called with the NOTIFY payload
StateCallback = Callable[[bool], None]  # called with True on (re)connect, False on loss


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
            callback(connected)

    async def _listen_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                conn = await asyncpg.connect(self.dsn)
                try:
                    closed = asyncio.Event()
                    conn.add_termination_listener(functools.partial(_set_event, closed))
                    for channel in self._channels:
                        await conn.add_listener(channel, self._dispatch)
                    self._set_state(True)
                    delay = 0.5
                    await closed.wait()
                finally:
                    if self._connected.is_set():
                        self._set_state(False)
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("listen_failed", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)
