"""The HTTP server's own limits on slow and numerous clients, which uvicorn lacks.

uvicorn keeps a connection for as long as its client trickles bytes: a request line and
headers sent one byte a second, or a body the app already answered without reading, hold
a file descriptor for good (1,000 such clients locked every new client out of a server
with a 1,024-descriptor limit). `GuardedHttpToolsProtocol` is uvicorn's httptools protocol
with three bounds, from the settings (`gameportal serve` passes it to uvicorn):

- headers: a connection has `header_timeout_seconds` from its first byte (or from being
  accepted) to the end of a request's headers; then it gets 408 and is closed;
- a body the app did not read (it answered first, e.g. 401): reading it on to the next
  request may take `body_timeout_seconds`; then the connection is closed. A body the app
  reads is bounded in the request middleware (observability.RequestContextMiddleware);
- connections: past `max_connections` open in this process, a request is answered 503
  with `Connection: close` as soon as its headers are in, and a connection past the limit
  has one second, not the whole header timeout, to send them.

Deadlines are checked by one timer per process that runs every fraction of a second, not
by a timer per request: a request costs a few attribute writes.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any, ClassVar

import orjson
import structlog
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from gameportal.config import Settings, get_settings
from gameportal.errors import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_PREFIX
from gameportal.kit.headers import BASE_HEADERS

log = structlog.get_logger("gameportal.serving")

PROTOCOL = "gameportal.serving:GuardedHttpToolsProtocol"  # uvicorn's `http=` option

OVER_LIMIT_HEADER_SECONDS = 1.0
RETRY_AFTER_SECONDS = 1


def _problem(
    status: int, slug: str, title: str, detail: str, *extra: tuple[bytes, bytes]
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of a problem document answered by the server itself."""
    body = orjson.dumps(
        {"type": PROBLEM_TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}
    )
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"cache-control", b"no-store"),
        *BASE_HEADERS,
        *extra,
    ]
    return headers, body


def _raw_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [STATUS_LINE[status].rstrip(b"\r\n")] + [
        name + b": " + value for name, value in headers
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _CoalescingTransport:
    """A connection's transport whose writes of one turn of the event loop go out as one.

    uvicorn writes a response's status line and headers, then its body, in two writes:
    two system calls (and, with Nagle off, often two packets) for every small answer.
    Held until the end of the turn (Starlette sends both in the same turn), they are one;
    a stream that sends its headers and then waits still has them sent at the end of the
    turn. Everything else is the real transport's."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(bytes(data))

    def _flush(self) -> None:
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    # Per process, from the settings, when the first connection comes.
    header_timeout: float
    body_timeout: float
    max_connections: int
    _timeout_answer: bytes

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        cls = type(self)
        if not hasattr(cls, "_timeout_answer"):
            cls._configure()
        # Seconds on the loop's clock by which the headers must be in, or the body the app
        # left unread must have arrived; None when nothing is awaited.
        self.header_deadline: float | None = None
        self.drain_deadline: float | None = None
        self.message_complete = True
        _Sweeper.of(self.loop, server_state)

    @classmethod
    def _configure(cls) -> None:
        settings = get_settings()
        cls.header_timeout = settings.header_timeout_seconds
        cls.body_timeout = settings.body_timeout_seconds
        cls.max_connections = settings.max_connections
        cls._timeout_answer = _raw_response(
            408,
            *_problem(
                408,
                "request-timeout",
                "Request timeout",
                f"the request headers did not arrive within {cls.header_timeout:g} s",
            ),
        )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        wait = self.header_timeout
        if len(self.connections) > self.max_connections:
            wait = min(wait, OVER_LIMIT_HEADER_SECONDS)
        self.header_deadline = self.loop.time() + wait

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.message_complete = False
        self.drain_deadline = None
        if self.header_deadline is None:  # a later request on a kept-alive connection
            self.header_deadline = self.loop.time() + self.header_timeout

    def on_headers_complete(self) -> None:
        self.header_deadline = None
        if len(self.connections) <= self.max_connections:
            super().on_headers_complete()
            return
        # Over the limit: the app never sees this request (uvicorn's own limit_concurrency
        # answers alike, but logs a line per refused request).
        self.app = _refuse
        try:
            super().on_headers_complete()
        finally:
            self.app = self.config.loaded_app
        _Sweeper.of(self.loop, self.server_state).refused_one()

    def on_message_complete(self) -> None:
        self.message_complete = True
        self.drain_deadline = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.message_complete and not self.transport.is_closing():
            # Answered before its body was read: uvicorn reads the rest to find the next
            # request, for at most the body timeout.
            self.drain_deadline = self.loop.time() + self.body_timeout

    def expire(self, now: float) -> None:
        """Closes the connection if a deadline has passed (called by _Sweeper)."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.header_deadline is not None and now >= self.header_deadline:
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(self._timeout_answer)
            self.transport.close()
        elif self.drain_deadline is not None and now >= self.drain_deadline:
            self.transport.close()


_REFUSED_HEADERS, _REFUSED_BODY = _problem(
    503,
    "too-many-connections",
    "Too many connections",
    "the server has as many connections as it takes; try again shortly",
    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
)


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": _REFUSED_HEADERS})
    await send({"type": "http.response.body", "body": _REFUSED_BODY})


class _Sweeper:
    """One timer per event loop that checks every connection's deadlines, and logs the
    connections refused over the limit once a minute at most, not once each."""

    _by_loop: ClassVar[dict[asyncio.AbstractEventLoop, _Sweeper]] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop, state: ServerState) -> None:
        self.loop = loop
        self.state = state
        shortest = min(
            GuardedHttpToolsProtocol.header_timeout,
            GuardedHttpToolsProtocol.body_timeout,
            OVER_LIMIT_HEADER_SECONDS,
        )
        self.every = max(0.05, min(1.0, shortest / 4))
        self.refused = 0
        self._reported_at: float | None = None
        loop.call_later(self.every, self._sweep)

    def refused_one(self) -> None:
        self.refused += 1
        if self._reported_at is None:  # the first refusal is told at once, later ones summed
            self._report()

    def _report(self) -> None:
        log.warning(
            "connections_refused",
            refused=self.refused,
            max_connections=GuardedHttpToolsProtocol.max_connections,
            detail="over GAMEPORTAL_MAX_CONNECTIONS: answered 503; told at most once a minute",
        )
        self.refused = 0
        self._reported_at = time.monotonic()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, state: ServerState) -> _Sweeper:
        sweeper = cls._by_loop.get(loop)
        if sweeper is None:
            sweeper = cls._by_loop[loop] = cls(loop, state)
        return sweeper

    def _sweep(self) -> None:
        if self.loop.is_closed():
            return
        now = self.loop.time()
        for connection in list(self.state.connections):
            if isinstance(connection, GuardedHttpToolsProtocol):
                connection.expire(now)
        if self._reported_at is not None and time.monotonic() - self._reported_at >= 60:
            if self.refused:
                self._report()
            else:
                self._reported_at = None
        self.loop.call_later(self.every, self._sweep)


def connection_limit(settings: Settings) -> tuple[int, str | None]:
    """The connection limit a process can keep, and a note when it is less than asked.

    Raises this process's soft file-descriptor limit to its hard limit (children inherit
    it), then keeps room under it for what else needs descriptors: the database pools and
    files, and the over-limit connections that are accepted only to be answered 503 (when
    accept() itself fails for want of descriptors, the client hears nothing)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return settings.max_connections, None
    reserve = 2 * settings.db_pool_size + settings.db_max_overflow + max(100, soft // 10)
    room = max(1, soft - reserve)
    if settings.max_connections <= room:
        return settings.max_connections, None
    return room, (
        f"GAMEPORTAL_MAX_CONNECTIONS={settings.max_connections} does not fit the limit of "
        f"{soft} open files (ulimit -n); using {room}"
    )
