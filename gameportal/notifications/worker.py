"""The queue worker: claims due messages under a lease, runs their handlers, and settles
each one exactly as the handler's outcome says, only while it still holds the lease.

Many workers on many machines may run at once: claims use FOR UPDATE SKIP LOCKED, and a
lease that runs out (a crashed or hung worker) is taken back by any worker's reaper.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from prometheus_client import Counter, Histogram

from gameportal.notifications import repository as repo
from gameportal.notifications.backoff import retry_delay
from gameportal.notifications.registry import ClaimedMessage, PermanentError, handler_for

log = structlog.get_logger(__name__)

PROCESSED = Counter(
    "gameportal_queue_processed_total", "Messages settled by a worker", ["type", "outcome"]
)
LATENCY = Histogram(
    "gameportal_queue_latency_seconds",
    "From due (scheduledAt) to sent",
    ["type"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)


@dataclass(frozen=True)
class WorkerConfig:
    types: list[str]
    concurrency: int = 8
    lease: timedelta = timedelta(seconds=30)
    poll_interval: float = 1.0
    # How long a stopping worker lets running handlers finish before giving them back.
    shutdown_grace: float = 10.0
    # First retry delay; each later one doubles (capped, jittered).
    retry_base_seconds: float = 5.0


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(self, pool: asyncpg.Pool, dsn: str, config: WorkerConfig) -> None:
        self.pool = pool
        self.dsn = dsn
        self.config = config
        self.owner = new_owner()
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then stop claiming, let running handlers finish
        within the grace period, and give back what is still unfinished."""
        log.info(
            "worker_started",
            owner=self.owner,
            types=self.config.types,
            concurrency=self.config.concurrency,
        )
        keeper = asyncio.create_task(self._keep_leases(stop))
        try:
            while not stop.is_set():
                await self._ensure_listener()
                await self._reap()
                claimed = await self._claim()
                if claimed and len(self._running) < self.config.concurrency:
                    continue  # there may be more due right now
                await self._idle(stop)
        finally:
            await self._shutdown()
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            if self._listener is not None:
                with contextlib.suppress(Exception):
                    await self._listener.close()
            log.info("worker_stopped", owner=self.owner)

    async def _claim(self) -> int:
        free = self.config.concurrency - len(self._running)
        if free <= 0:
            return 0
        rows = await repo.claim(
            self.pool,
            types=self.config.types,
            limit=free,
            owner=self.owner,
            lease=self.config.lease,
        )
        for row in rows:
            message = ClaimedMessage(**dict(row))
            task = asyncio.create_task(self._process(message))
            self._running[message.id] = task
            task.add_done_callback(functools.partial(self._done, message.id))
        return len(rows)

    def _done(self, message_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self._running.pop(message_id, None)
        self._wake.set()  # a slot is free

    async def _process(self, message: ClaimedMessage) -> None:
        handler = handler_for(message.type)
        started = time.perf_counter()
        try:
            if handler is None:
                raise PermanentError(f"no handler is registered for {message.type} messages")
            await handler(message)
        except asyncio.CancelledError:
            raise  # shutting down: _shutdown gives the message back
        except PermanentError as exc:
            await self._settle_failure(message, exc, permanent=True)
        except Exception as exc:  # any other error is worth another try
            await self._settle_failure(message, exc, permanent=False)
        else:
            if await repo.complete(self.pool, message_id=message.id, owner=self.owner):
                PROCESSED.labels(message.type, "sent").inc()
                due = message.scheduled_at
                LATENCY.labels(message.type).observe(
                    max(0.0, (datetime.now(UTC) - due).total_seconds())
                )
            else:
                PROCESSED.labels(message.type, "lease_lost").inc()
                log.warning(
                    "lease_lost",
                    message_id=str(message.id),
                    type=message.type,
                    seconds=round(time.perf_counter() - started, 3),
                )

    async def _settle_failure(
        self, message: ClaimedMessage, exc: Exception, *, permanent: bool
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"
        status = await repo.fail(
            self.pool,
            message_id=message.id,
            owner=self.owner,
            error=error,
            permanent=permanent,
            retry_in=retry_delay(message.retry_count, base=self.config.retry_base_seconds),
        )
        outcome = {"FAILED": "failed", "PENDING": "retry"}.get(status or "", "lease_lost")
        PROCESSED.labels(message.type, outcome).inc()
        log.warning(
            "message_failed",
            message_id=str(message.id),
            type=message.type,
            error=error,
            outcome=outcome,
            attempt=message.retry_count + 1,
        )

    async def _keep_leases(self, stop: asyncio.Event) -> None:
        """Extend the lease of every running message well before it runs out, so a long
        job is not mistaken for a dead worker."""
        period = self.config.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            ids = list(self._running)
            if ids:
                try:
                    await repo.extend_leases(
                        self.pool, ids=ids, owner=self.owner, lease=self.config.lease
                    )
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("lease_extension_failed", error=str(exc))

    async def _reap(self) -> None:
        for row in await repo.reap_expired(self.pool):
            log.warning("lease_expired", message_id=str(row["id"]), status=row["status"])
            PROCESSED.labels("unknown", "reaped").inc()

    async def _idle(self, stop: asyncio.Event) -> None:
        """Until a NOTIFY, a freed slot, a stop, or the polling fallback."""
        self._wake.clear()
        stopper = asyncio.create_task(stop.wait())
        waker = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait(
                {stopper, waker},
                timeout=self.config.poll_interval,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stopper.cancel()
            waker.cancel()

    async def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            self._listener = await asyncpg.connect(self.dsn)
            await self._listener.add_listener(repo.CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError) as exc:
            # Polling still works; try LISTEN again next round.
            log.warning("listen_failed", error=str(exc))
            self._listener = None

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _shutdown(self) -> None:
        if not self._running:
            return
        tasks = list(self._running.values())
        _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
        unfinished = [mid for mid, task in self._running.items() if task in pending]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if unfinished:
            released = await repo.release(self.pool, ids=unfinished, owner=self.owner)
            log.info("messages_released", count=released)
