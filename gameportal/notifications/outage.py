"""How the worker tells a database outage: which errors mean PostgreSQL is out of reach,
the wait between attempts to reach it again, and one log line when an outage starts and
one when it ends (however many attempts failed in between)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import asyncpg
import structlog

log = structlog.get_logger(__name__)

# What a statement raises while the server is stopping, down, restarting or unreachable:
# a refused or reset connection (OSError), a connection the server ended (asyncpg's
# PostgresConnectionError, AdminShutdownError, CannotConnectNowError), a connection the
# driver already knows is closed (InterfaceError), a connect that timed out. Any other
# PostgresError is treated alike: a worker waits and tries again, and never exits on one.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)

# The subset that means the server is out of reach (not a statement's own error): what
# the worker's housekeeping tasks raise during an outage, told apart from their failures.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    # "cannot switch to state ...": a connection that broke in the middle of a statement.
    asyncpg.exceptions.InternalClientError,
)

# Between attempts: doubling from 0.1 s up to 2 s, jittered. A refused connection costs
# the server nothing, and the sooner a worker is back the sooner the outcomes it holds are
# recorded (before another worker's reaper takes those messages back).
BASE_SECONDS = 0.1
CAP_SECONDS = 2.0


class Outage:
    """The database as this process's own statements find it. Every loop of the worker
    reports here, so an outage is logged once, not once per loop and attempt."""

    def __init__(self, *, base: float = BASE_SECONDS, cap: float = CAP_SECONDS) -> None:
        self.base = base
        self.cap = cap
        self.since: float | None = None
        self.failures = 0
        self._up = asyncio.Event()
        self._up.set()

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException, *, starting: bool = False) -> None:
        """A statement or connect failed with one of DATABASE_ERRORS."""
        self.failures += 1
        if self.since is not None:
            return
        self.since = time.monotonic()
        self._up.clear()
        log.warning(
            "database_unavailable",
            error=f"{type(exc).__name__}: {exc}"[:300],
            action="waiting for it" if starting else "retrying with backoff; holding outcomes",
        )

    def recovered(self) -> None:
        """A statement went through."""
        if self.since is None:
            return
        log.warning(
            "database_available",
            outage_s=round(time.monotonic() - self.since, 2),
            failed_attempts=self.failures,
        )
        self.since = None
        self.failures = 0
        self._up.set()

    def delay(self) -> float:
        """The wait before the next attempt: capped exponential, "equal jitter" (half of
        each step fixed, half random), so many workers do not retry in step."""
        step = min(self.cap, self.base * 2.0 ** min(max(self.failures - 1, 0), 16))
        return step / 2 + random.random() * step / 2  # noqa: S311 - jitter, not a secret

    async def pause(self, stop: asyncio.Event) -> None:
        """Wait `delay()`, or less if `stop` is set meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.delay())


# Errors that only an operator can fix (a wrong password, a database that does not exist):
# a worker that is only starting says so and exits, instead of waiting for nothing.
CONFIGURATION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)


async def wait_for_database(dsn: str, stop: asyncio.Event) -> bool:
    """Until PostgreSQL at `dsn` takes a connection (True) or `stop` is set (False). While
    it is away, one line says so and another when it is there."""
    outage = Outage()
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
        except CONFIGURATION_ERRORS:
            raise
        except DATABASE_ERRORS as exc:
            outage.failed(exc, starting=True)
            await outage.pause(stop)
            continue
        await conn.close()
        outage.recovered()
        return True
    return False


class _NoFloorRetries(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to restore the pool connection floor")


def quiet_pool_reconnects() -> None:
    """asyncpg's pool reconnects its idle floor in the background and logs each failed try
    with a traceback; the worker logs the outage itself, once (see Outage)."""
    logging.getLogger("asyncpg.pool").addFilter(_NoFloorRetries())
