"""The queue worker: claims due messages under a lease, runs their handlers, and settles
each one exactly as the handler's outcome says, only while it still holds the lease.

Many workers on many machines may run at once: claims use FOR UPDATE SKIP LOCKED, and a
lease that runs out (a crashed or hung worker) is taken back by any worker's reaper.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from gameportal.notifications import repository as repo
from gameportal.notifications.backoff import retry_delay
from gameportal.notifications.metrics import END_TO_END, LATENCY, PROCESSED
from gameportal.notifications.registry import (
    ClaimedMessage,
    Delivery,
    PermanentError,
    handler_for,
    periodic_tasks,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    types: list[str]
    # Handlers running at once.
    concurrency: int = 8
    # Messages held at once (claimed, running, or done and awaiting their SENT write):
    # claims and completions go to PostgreSQL in batches of up to this many.
    batch: int = 100
    lease: timedelta = timedelta(seconds=30)
    poll_interval: float = 1.0
    # How long a stopping worker lets running handlers finish before giving them back.
    shutdown_grace: float = 10.0
    # First retry delay; each later one doubles (capped, jittered).
    retry_base_seconds: float = 5.0
    # Completed messages are marked SENT together, at most this long after finishing.
    flush_interval: float = 0.01
    # How often this worker looks for leases that ran out (any worker's, crashed ones').
    reap_interval: float = 5.0


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(self, pool: asyncpg.Pool, dsn: str, config: WorkerConfig) -> None:
        self.pool = pool
        self.dsn = dsn
        self.config = config
        self.owner = new_owner()
        # Claimed and not yet settled (waiting, running, or done and awaiting SENT): the
        # leases the keeper extends.
        self._held: dict[uuid.UUID, ClaimedMessage] = {}
        # Claimed and not started. `concurrency` runner tasks take from here: a task per
        # message cost more than a no-op handler itself.
        self._ready: collections.deque[ClaimedMessage] = collections.deque()
        self._has_ready = asyncio.Event()
        self._finished: list[ClaimedMessage] = []
        self._stopping = False
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._next_reap = 0.0
        self._next_run: dict[str, float] = {}
        self._delivery = Delivery(pool=pool, worker=self.owner)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then stop claiming, let running handlers finish
        within the grace period, and give back what is still unfinished."""
        log.info(
            "worker_started",
            owner=self.owner,
            types=self.config.types,
            concurrency=self.config.concurrency,
        )
        runners = [
            asyncio.create_task(self._run_handlers()) for _ in range(self.config.concurrency)
        ]
        lease_keeper = asyncio.create_task(self._keep_leases())
        flusher = asyncio.create_task(self._flush_loop())
        try:
            while not stop.is_set():
                await self._ensure_listener()
                await self._reap_now_and_then()
                await self._housekeeping()
                claimed = await self._claim()
                if claimed and len(self._held) < self.config.batch:
                    continue  # there may be more due right now
                await self._idle(stop)
        finally:
            try:
                await self._shutdown(runners, flusher)
            finally:
                # Leases are kept until everything is settled or given back.
                lease_keeper.cancel()
                await asyncio.gather(lease_keeper, return_exceptions=True)
            if self._listener is not None:
                with contextlib.suppress(Exception):
                    await self._listener.close()
            log.info("worker_stopped", owner=self.owner)

    async def _claim(self) -> int:
        """Mark what is finished SENT and claim as many as there is room for, in one
        statement."""
        done, self._finished = self._finished, []
        free = self.config.batch - len(self._held) + len(done)
        if free <= 0 and not done:
            return 0
        try:
            sent, rows = await repo.complete_and_claim(
                self.pool,
                done=[m.id for m in done],
                types=self.config.types,
                limit=max(free, 0),
                owner=self.owner,
                lease=self.config.lease,
            )
        except BaseException:
            self._finished = done + self._finished
            raise
        if done:
            self._settled(done, sent)
        for row in rows:
            message = ClaimedMessage(*row)
            self._held[message.id] = message
            self._ready.append(message)
        if rows:
            self._has_ready.set()
        return len(rows)

    async def _run_handlers(self) -> None:
        """One of `concurrency` runners: take the next claimed message and handle it."""
        while not self._stopping:
            if not self._ready:
                self._wake.set()  # nothing left to start: room to claim more
                self._has_ready.clear()
                await self._has_ready.wait()
                continue
            await self._process(self._ready.popleft())

    async def _process(self, message: ClaimedMessage) -> None:
        handler = handler_for(message.type)
        try:
            if handler is None:
                raise PermanentError(f"no handler is registered for {message.type} messages")
            await handler(message, self._delivery)
        except asyncio.CancelledError:
            raise  # shutting down: _shutdown gives the message back
        except PermanentError as exc:
            await self._settle_failure(message, exc, permanent=True)
        except Exception as exc:  # any other error is worth another try
            await self._settle_failure(message, exc, permanent=False)
        else:
            self._finished.append(message)  # marked SENT by the next claim or flush

    async def _flush_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.config.flush_interval)
            if self._finished:
                try:
                    await self._flush()
                except (OSError, asyncpg.PostgresError) as exc:
                    # Kept for the next flush; the lease keeper holds the rows meanwhile.
                    log.warning("flush_failed", error=str(exc))

    async def _flush(self) -> None:
        """Mark every finished message SENT in one statement, where the lease holds."""
        if not self._finished:
            return
        batch, self._finished = self._finished, []
        try:
            sent = await repo.complete_many(self.pool, ids=[m.id for m in batch], owner=self.owner)
        except BaseException:
            self._finished = batch + self._finished
            raise
        self._settled(batch, sent)

    def _settled(self, batch: list[ClaimedMessage], sent: set[uuid.UUID]) -> None:
        """Account for finished messages after the statement that marked `sent` SENT."""
        now = datetime.now(UTC)
        # Metrics per type, not per message: a labelled child costs a lock and a dict
        # lookup each time it is fetched, and a batch holds hundreds of messages.
        done: dict[str, list[ClaimedMessage]] = {}
        held = self._held
        for message in batch:
            held.pop(message.id, None)
            if message.id in sent:
                done.setdefault(message.type, []).append(message)
            else:
                PROCESSED.labels(message.type, "lease_lost").inc()
                log.warning("lease_lost", message_id=str(message.id), type=message.type)
        self._wake.set()  # room to claim more
        for message_type, messages in done.items():
            PROCESSED.labels(message_type, "sent").inc(len(messages))
            waited, queued = LATENCY.labels(message_type), END_TO_END.labels(message_type)
            for message in messages:
                waited.observe(max(0.0, (now - message.scheduled_at).total_seconds()))
                queued.observe(max(0.0, (now - message.created_at).total_seconds()))

    async def _settle_failure(
        self, message: ClaimedMessage, exc: Exception, *, permanent: bool
    ) -> None:
        # PostgreSQL text holds neither NUL nor lone surrogates, and an exception's
        # message may carry either (bytes from a remote server): without this the
        # failure could not be written.
        error = (
            f"{type(exc).__name__}: {exc}".replace("\x00", "\ufffd")
            .encode("utf-8", "replace")
            .decode("utf-8")
        )
        try:
            status = await repo.fail(
                self.pool,
                message_id=message.id,
                owner=self.owner,
                error=error,
                permanent=permanent,
                retry_in=retry_delay(message.retry_count, base=self.config.retry_base_seconds),
            )
        except Exception:
            # The attempt is not recorded: stop extending its lease, so that it runs out
            # and the reaper records it (this runner goes on with the next message).
            self._held.pop(message.id, None)
            log.exception("failure_not_recorded", message_id=str(message.id))
            return
        self._held.pop(message.id, None)
        self._wake.set()
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

    async def _keep_leases(self) -> None:
        """Extend the lease of every held message well before it runs out, so a long job
        (or a long wait for a free slot) is not mistaken for a dead worker."""
        period = self.config.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            ids = list(self._held)
            if ids:
                try:
                    await repo.extend_leases(
                        self.pool, ids=ids, owner=self.owner, lease=self.config.lease
                    )
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("lease_extension_failed", error=str(exc))

    async def _reap_now_and_then(self) -> None:
        now = time.monotonic()
        if now < self._next_reap:
            return
        self._next_reap = now + self.config.reap_interval
        for row in await repo.reap_expired(self.pool):
            log.warning("lease_expired", message_id=str(row["id"]), status=row["status"])
            PROCESSED.labels("unknown", "reaped").inc()

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        for task in periodic_tasks():
            if now < self._next_run.get(task.name, 0.0):
                continue
            self._next_run[task.name] = now + task.every_seconds
            try:
                await task.run(self.pool)
            except Exception:  # housekeeping must never stop delivery
                log.exception("periodic_task_failed", task=task.name)

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

    async def _shutdown(
        self, runners: list[asyncio.Task[None]], flusher: asyncio.Task[None]
    ) -> None:
        """Start nothing more; let running handlers finish within the grace period; give
        back what did not finish."""
        self._stopping = True
        self._has_ready.set()  # idle runners see that they are to stop
        if runners:
            await asyncio.wait(runners, timeout=self.config.shutdown_grace)
        late = [t for t in runners if not t.done()]
        for task in late:
            task.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
        # The flush loop ends after the flush it may be in: giving messages back while
        # one of its statements was marking them SENT could undo that, and one message
        # would then be delivered twice.
        await asyncio.gather(flusher, return_exceptions=True)
        await self._flush()
        finished = {m.id for m in self._finished}
        unfinished = [mid for mid in self._held if mid not in finished]
        if unfinished:
            released = await repo.release(self.pool, ids=unfinished, owner=self.owner)
            log.info("messages_released", count=released)
