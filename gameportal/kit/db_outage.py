"""The API during a database outage: which errors mean PostgreSQL is out of reach (answered
503 with Retry-After instead of 500), and one log line when an outage starts and one when
it ends, with the number of requests refused in between, instead of a traceback per
request (25 MB of log for two 20-second outages)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import socket
import time
from collections.abc import Iterator

import asyncpg
import structlog
from sqlalchemy import exc as sa_exc

log = structlog.get_logger("gameportal.database")

# What a client is told to wait before trying again; the probe below looks as often.
RETRY_AFTER_SECONDS = 5
PROBE_EVERY_SECONDS = 1.0

# A socket-level failure the database driver raised (a refused, reset or timed-out
# connection, a name that does not resolve, several addresses that all failed). Raised
# through asyncpg's or SQLAlchemy's own code, which tells it from our other sockets and
# files: a full disk under local media storage is an OSError too, and is no outage.
_DRIVER_MODULES = ("asyncpg.", "sqlalchemy.")
_SOCKET_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EADDRNOTAVAIL,
    }
)


def _raised_by_driver(error: BaseException) -> bool:
    tb = error.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.startswith(_DRIVER_MODULES):
            return True
        tb = tb.tb_next
    return False


def _connection_level(error: BaseException) -> bool:
    if isinstance(error, asyncpg.PostgresConnectionError):  # SQLSTATE class 08
        return True
    if isinstance(error, asyncpg.exceptions.OperatorInterventionError):  # class 57
        # Shutting down, starting up, terminated by an administrator or a crash; a
        # statement cancelled by its own timeout (57014) is the request's, not an outage.
        return not isinstance(error, asyncpg.QueryCanceledError)
    if isinstance(error, asyncpg.TooManyConnectionsError):
        return True
    if isinstance(error, asyncpg.InterfaceError):
        # Only a connection the driver found closed; other InterfaceErrors are misuse.
        return "closed" in str(error) or "pool is closing" in str(error)
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came in time
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, ConnectionError | TimeoutError):
        return _raised_by_driver(error)
    if isinstance(error, OSError):
        # asyncio's "Multiple exceptions: ..." (every address of a host refused) has no
        # errno; a resolver failure is a gaierror. A missing certificate file is no outage.
        socket_level = (
            error.errno is None
            or error.errno in _SOCKET_ERRNOS
            or isinstance(error, socket.gaierror)
        )
        return socket_level and _raised_by_driver(error)
    return False


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and those behind it: causes, contexts, SQLAlchemy's wrapped `orig`."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for behind in (current.__cause__, current.__context__, getattr(current, "orig", None)):
            if isinstance(behind, BaseException):
                pending.append(behind)


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database is out of reach (down, restarting, refusing
    connections, or the pool has none to give), rather than a fault of this request."""
    return any(_connection_level(e) for e in _chain(error))


class DatabaseOutage:
    """This process's view of an outage, from the requests it had to refuse: the first
    refusal logs the start and starts a probe that connects every second; the probe's
    first success logs the end, with how long it lasted and how many requests were
    refused."""

    def __init__(self, dsn: str | None) -> None:
        self.dsn = dsn
        self.since: float | None = None
        self.refused = 0
        self._probe: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.since is not None

    def refuse(self, error: BaseException) -> None:
        """A request was answered 503 because of `error`."""
        self.refused += 1
        if self.since is not None:
            return
        self.since = time.monotonic()
        log.warning(
            "database_unavailable",
            error=f"{type(error).__name__}: {error}"[:300],
            action=f"answering 503 with Retry-After: {RETRY_AFTER_SECONDS} until it is back",
        )
        if self.dsn is not None:
            # In a context of its own: not the request's (its request id is no outage's).
            self._probe = asyncio.get_running_loop().create_task(
                self._wait_until_back(), context=contextvars.Context()
            )

    async def _wait_until_back(self) -> None:
        assert self.dsn is not None
        while True:
            await asyncio.sleep(PROBE_EVERY_SECONDS)
            try:
                conn = await asyncpg.connect(self.dsn, timeout=2 * PROBE_EVERY_SECONDS)
            except Exception as exc:  # still away, or away in another way: keep looking
                log.debug("database_probe_failed", error=type(exc).__name__)
                continue
            with contextlib.suppress(Exception):
                await conn.close(timeout=PROBE_EVERY_SECONDS)
            break
        self.ended()

    def ended(self) -> None:
        if self.since is None:
            return
        log.warning(
            "database_available",
            outage_s=round(time.monotonic() - self.since, 2),
            refused_requests=self.refused,
        )
        self.since = None
        self.refused = 0
        self._probe = None

    async def close(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
