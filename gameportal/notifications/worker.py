"""The queue worker: claims due messages under a lease, runs their handlers, and settles
each one exactly as the handler's outcome says, only while it still holds the lease.

Many workers on many machines may run at once: claims use FOR UPDATE SKIP LOCKED, and a
lease that runs out (a crashed or hung worker) is taken back by any worker's reaper.

A database outage never stops the worker: every statement that fails is retried with
backoff, outcomes of deliveries already made are kept in memory and written before any new
claim once the database is back, and nothing new is started while it is away.
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
from gameportal.notifications.outage import CONNECTION_ERRORS, DATABASE_ERRORS, Outage
from gameportal.notifications.registry import (
    ClaimedMessage,
    Delivery,
    PermanentError,
    RetryLater,
    final_failure_hook,
    handler_for,
    periodic_tasks,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    types: list[str]
    # Handlers running at once.
    concurrency: int = 8
    # Messages held at once (claimed, waiting or running): claims and completions go to
    # PostgreSQL in batches of up to this many.
    batch: int = 100
    lease: timedelta = timedelta(seconds=30)
    poll_interval: float = 1.0
    # How long a stopping worker lets running handlers finish, give back what is left and
    # exit (GAMEPORTAL_WORKER_SHUTDOWN_GRACE_SECONDS): a handler still running when it ends
    # is cancelled, and its message given back for a later try.
    shutdown_grace: float = 10.0
    # First retry delay; each later one doubles (capped, jittered).
    retry_base_seconds: float = 5.0
    # Completed messages are marked SENT together, at most this long after finishing.
    flush_interval: float = 0.01
    # How often this worker looks for leases that ran out (any worker's, crashed ones').
    reap_interval: float = 5.0


@dataclass(frozen=True)
class _Failure:
    """A failed attempt whose outcome is not written yet."""

    message: ClaimedMessage
    error: str
    permanent: bool
    retry_in: timedelta
    # False for a RetryLater: the handler's own schedule, not max_attempts, decides.
    uses_attempt: bool = True


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(self, pool: asyncpg.Pool, dsn: str, config: WorkerConfig) -> None:
        self.pool = pool
        self.dsn = dsn
        self.config = config
        self.owner = new_owner()
        # Claimed and not finished (waiting or running): the leases the keeper extends,
        # and the slots in use.
        self._held: dict[uuid.UUID, ClaimedMessage] = {}
        # When the lease of each held message, or of one whose outcome is not written yet,
        # runs out at the latest (monotonic): the time the statement that set it was sent,
        # plus the lease. Nothing starts on a lease about to end.
        self._lease_until: dict[uuid.UUID, float] = {}
        # Claimed and not started. `concurrency` runner tasks take from here: a task per
        # message cost more than a no-op handler itself.
        self._ready: collections.deque[ClaimedMessage] = collections.deque()
        self._has_ready = asyncio.Event()
        self._running: set[uuid.UUID] = set()
        # Outcomes not yet written: delivered (to be marked SENT) and failed attempts.
        # They hold no slot, and their leases are no longer extended, so that one whose
        # outcome cannot be written is taken back by a reaper when its lease ends.
        self._finished: list[ClaimedMessage] = []
        self._failed: dict[uuid.UUID, _Failure] = {}
        # Set when a handler leaves an outcome: the flush loop sleeps on it while there is
        # nothing to write, instead of waking every flush_interval (100 times a second).
        self._outcome_left = asyncio.Event()
        self._settle_again_at = 0.0
        self._stopping = False
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._listen_failing = False
        self._next_listen = 0.0
        self._next_reap = 0.0
        self._next_run: dict[str, float] = {}
        self._outage = Outage()
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
                try:
                    claimed = await self._round()
                except DATABASE_ERRORS as exc:
                    self._outage.failed(exc)
                    await self._outage.pause(stop)
                    continue
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
                    await asyncio.wait_for(self._listener.close(), 1)
            log.info("worker_stopped", owner=self.owner)

    async def _round(self) -> int:
        """One turn of the main loop; the number of messages claimed."""
        if self._outage.down:
            await self._recover()
        await self._ensure_listener()
        await self._reap_now_and_then()
        await self._housekeeping()
        if self._failed:
            await self._settle_pending()  # outcomes first, then new work
        return await self._claim()

    async def _recover(self) -> None:
        """After an outage, before anything else: write the outcomes held in memory, then
        extend the leases of what is held (those that ran out and nobody took back are
        still ours) and give up those lost, then start handlers again."""
        await self._settle_pending()
        await self._extend_leases()
        self._outage.recovered()
        if self._ready:
            self._has_ready.set()

    async def _claim(self) -> int:
        """Mark what is finished SENT and claim as many as there is room for, in one
        statement."""
        if time.monotonic() < self._settle_again_at:
            done = []  # a statement refused outcomes lately: the flush loop retries those
        else:
            done, self._finished = self._finished, []
        free = self.config.batch - len(self._held)
        if free <= 0 and not done:
            return 0
        sent_at = time.monotonic()
        try:
            sent, rows = await repo.complete_and_claim(
                self.pool,
                done=[m.id for m in done],
                types=self.config.types,
                limit=max(free, 0),
                owner=self.owner,
                lease=self.config.lease,
            )
        except CONNECTION_ERRORS:
            self._finished = done + self._finished
            raise
        except DATABASE_ERRORS:
            if not done:
                raise
            # Refused, not out of reach: the outcomes are written (or let go) on their
            # own, and the claim is tried again without them.
            self._finished = done + self._finished
            await self._settle_pending()
            return 0
        except BaseException:
            self._finished = done + self._finished
            raise
        if done:
            self._settled(done, sent)
        until = sent_at + self.config.lease.total_seconds()
        for row in rows:
            message = ClaimedMessage(*row)
            self._held[message.id] = message
            self._lease_until[message.id] = until
            self._ready.append(message)
        if rows:
            self._has_ready.set()
        return len(rows)

    async def _run_handlers(self) -> None:
        """One of `concurrency` runners: take the next claimed message and handle it.
        While the database is away, none starts: its outcome could not be written, and its
        lease not kept."""
        margin = min(1.0, self.config.lease.total_seconds() / 10)
        while not self._stopping:
            if self._outage.down or not self._ready:
                if not self._ready:
                    self._wake.set()  # nothing left to start: room to claim more
                self._has_ready.clear()
                await self._has_ready.wait()
                continue
            message = self._ready.popleft()
            if message.id not in self._held:
                continue  # its lease was lost meanwhile
            if self._lease_until.get(message.id, 0.0) < time.monotonic() + margin:
                # Not extended in time: another worker may have it by now.
                self._release_slot(message.id, outcome=False)
                PROCESSED.labels(message.type, "lease_lost").inc()
                log.warning("lease_lost", message_id=str(message.id), type=message.type)
                continue
            self._running.add(message.id)
            try:
                await self._process(message)
            finally:
                self._running.discard(message.id)

    async def _process(self, message: ClaimedMessage) -> None:
        handler = handler_for(message.type)
        try:
            if handler is None:
                raise PermanentError(f"no handler is registered for {message.type} messages")
            await handler(message, self._delivery)
        except asyncio.CancelledError:
            raise  # shutting down: _shutdown gives the message back
        except PermanentError as exc:
            self._failed[message.id] = self._failure(message, exc, permanent=True)
        except Exception as exc:  # any other error is worth another try
            self._failed[message.id] = self._failure(message, exc, permanent=False)
        else:
            self._finished.append(message)  # marked SENT by the next claim or flush
        self._outcome_left.set()
        self._release_slot(message.id, outcome=True)

    def _release_slot(self, message_id: uuid.UUID, *, outcome: bool) -> None:
        """The message no longer takes a slot, nor has its lease extended; `outcome`: its
        outcome is still to be written (while the lease lasts, see _keep)."""
        self._held.pop(message_id, None)
        if not outcome:
            self._lease_until.pop(message_id, None)
            self._wake.set()  # room to claim more
        # Otherwise the main loop is woken once the outcome is written, a batch at a
        # time, as before: a wake per message would make claims smaller and more.

    def _failure(self, message: ClaimedMessage, exc: Exception, *, permanent: bool) -> _Failure:
        # PostgreSQL text holds neither NUL nor lone surrogates, and an exception's
        # message may carry either (bytes from a remote server): without this the
        # failure could not be written.
        error = (
            f"{type(exc).__name__}: {exc}".replace("\x00", "\ufffd")
            .encode("utf-8", "replace")
            .decode("utf-8")
        )
        if isinstance(exc, RetryLater):
            return _Failure(message, error, permanent, exc.delay, uses_attempt=False)
        retry_in = retry_delay(message.retry_count, base=self.config.retry_base_seconds)
        return _Failure(message, error, permanent, retry_in)

    async def _flush_loop(self) -> None:
        while not self._stopping:
            if not (self._finished or self._failed):
                # Outcomes put back after a failed write set nothing: a look each
                # poll_interval finds them.
                self._outcome_left.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._outcome_left.wait(), self.config.poll_interval)
                continue
            await asyncio.sleep(self.config.flush_interval)
            if self._outage.down or time.monotonic() < self._settle_again_at:
                continue  # the main loop writes them first thing when the database is back
            if self._finished or self._failed:
                try:
                    await self._settle_pending()
                except CONNECTION_ERRORS as exc:
                    self._outage.failed(exc)  # kept in memory for the next try

    async def _settle_pending(self) -> None:
        """Write the outcomes held in memory: failures one by one, SENT in one statement.
        Each writer takes what is there at once, so no outcome is written twice.

        While the database is away (CONNECTION_ERRORS, raised) every outcome is kept for
        the next try. A statement that fails otherwise keeps its outcomes while their
        leases last, then lets them go: the message is then taken back by a reaper."""
        if self._failed:
            batch, self._failed = self._failed, {}
            failures = list(batch.values())
            for n, failure in enumerate(failures):
                try:
                    status = await self._write_failure(failure)
                except CONNECTION_ERRORS:
                    for left in failures[n:]:
                        self._failed.setdefault(left.message.id, left)
                    raise
                except DATABASE_ERRORS as exc:
                    if self._keep(failure.message, exc):
                        self._failed.setdefault(failure.message.id, failure)
                    continue
                except BaseException:
                    for left in failures[n:]:
                        self._failed.setdefault(left.message.id, left)
                    raise
                self._lease_until.pop(failure.message.id, None)
                self._failure_written(failure, status)
        if self._finished:
            done, self._finished = self._finished, []
            try:
                sent = await repo.complete_many(
                    self.pool, ids=[m.id for m in done], owner=self.owner
                )
            except CONNECTION_ERRORS:
                self._finished = done + self._finished
                raise
            except DATABASE_ERRORS as exc:
                if len(done) == 1:
                    self._finished = [m for m in done if self._keep(m, exc)] + self._finished
                else:
                    await self._complete_each(done)
                return
            except BaseException:
                self._finished = done + self._finished
                raise
            self._settled(done, sent)

    async def _complete_each(self, done: list[ClaimedMessage]) -> None:
        """After the statement marking `done` SENT was refused: each on its own, so that
        the one the database refuses does not hold back the rest (kept with it, they would
        run out their leases and be delivered again)."""
        written: list[ClaimedMessage] = []
        sent: set[uuid.UUID] = set()
        left = collections.deque(done)
        try:
            while left:
                message = left[0]
                try:
                    sent |= await repo.complete_many(self.pool, ids=[message.id], owner=self.owner)
                except CONNECTION_ERRORS:
                    raise
                except DATABASE_ERRORS as exc:
                    if self._keep(message, exc):
                        self._finished.append(message)
                else:
                    written.append(message)
                left.popleft()
        except BaseException:
            self._finished = [*left, *self._finished]
            raise
        finally:
            if written:
                self._settled(written, sent)

    def _keep(self, message: ClaimedMessage, exc: BaseException) -> bool:
        """Whether to try writing the outcome of `message` again after `exc`: yes while
        its lease lasts (a second from now); else it is let go."""
        now = time.monotonic()
        if now < self._lease_until.get(message.id, 0.0):
            self._settle_again_at = now + 1.0
            return True
        self._lease_until.pop(message.id, None)
        PROCESSED.labels(message.type, "not_recorded").inc()
        log.warning(
            "outcome_not_recorded",
            message_id=str(message.id),
            type=message.type,
            error=f"{type(exc).__name__}: {exc}"[:300],
            then="its lease has ended: a reaper takes the message back",
        )
        return False

    def _settled(self, batch: list[ClaimedMessage], sent: set[uuid.UUID]) -> None:
        """Account for finished messages after the statement that marked `sent` SENT."""
        now = datetime.now(UTC)
        # Metrics per type, not per message: a labelled child costs a lock and a dict
        # lookup each time it is fetched, and a batch holds hundreds of messages.
        done: dict[str, list[ClaimedMessage]] = {}
        lease_until = self._lease_until
        for message in batch:
            lease_until.pop(message.id, None)
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

    async def _write_failure(self, failure: _Failure) -> str | None:
        """Record a failed attempt; the message's new status, None if its lease was lost.
        Its type's final-failure hook runs in the same transaction when it ends FAILED."""

        async def fail(on: asyncpg.Pool | asyncpg.Connection) -> str | None:
            return await repo.fail(
                on,
                message_id=failure.message.id,
                owner=self.owner,
                error=failure.error,
                permanent=failure.permanent,
                retry_in=failure.retry_in,
                uses_attempt=failure.uses_attempt,
            )

        if final_failure_hook(failure.message.type) is None:
            return await fail(self.pool)
        async with self.pool.acquire() as conn, conn.transaction():
            status = await fail(conn)
            if status == "FAILED":
                await self._final_failure(conn, failure.message, failure.error)
            return status

    def _failure_written(self, failure: _Failure, status: str | None) -> None:
        message = failure.message
        self._wake.set()
        outcome = {"FAILED": "failed", "PENDING": "retry"}.get(status or "", "lease_lost")
        PROCESSED.labels(message.type, outcome).inc()
        log.warning(
            "message_failed",
            message_id=str(message.id),
            type=message.type,
            error=failure.error,
            outcome=outcome,
            attempt=message.retry_count + 1,
        )

    async def _final_failure(
        self, conn: asyncpg.Connection, message: ClaimedMessage, error: str
    ) -> None:
        hook = final_failure_hook(message.type)
        if hook is None:
            return
        try:
            # A savepoint: a hook that fails undoes its own writes, not the FAILED one.
            async with conn.transaction():
                await hook(conn, message, error)
        except CONNECTION_ERRORS:
            raise  # the whole transaction is lost: written again later, hook included
        except Exception:
            log.exception("final_failure_hook_failed", message_id=str(message.id))

    async def _keep_leases(self) -> None:
        """Extend the lease of every held message well before it runs out, so a long job
        (or a long wait for a free slot) is not mistaken for a dead worker."""
        period = self.config.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            if self._held and not self._outage.down:
                try:
                    await self._extend_leases()
                except DATABASE_ERRORS as exc:
                    self._outage.failed(exc)

    async def _extend_leases(self) -> None:
        ids = list(self._held)
        if not ids:
            return
        sent_at = time.monotonic()
        kept = await repo.extend_leases(
            self.pool, ids=ids, owner=self.owner, lease=self.config.lease
        )
        until = sent_at + self.config.lease.total_seconds()
        for message_id in ids:
            if message_id not in self._held:
                continue  # finished meanwhile
            if message_id in kept:
                self._lease_until[message_id] = until
            else:  # taken back by a reaper: never start it (a running one is not SENT)
                message = self._held[message_id]
                self._release_slot(message_id, outcome=False)
                PROCESSED.labels(message.type, "lease_lost").inc()
                log.warning("lease_lost", message_id=str(message_id), type=message.type)

    async def _reap_now_and_then(self) -> None:
        now = time.monotonic()
        if now < self._next_reap:
            return
        self._next_reap = now + self.config.reap_interval
        async with self.pool.acquire() as conn, conn.transaction():
            for row in await repo.reap_expired(conn):
                log.warning("lease_expired", message_id=str(row["id"]), status=row["status"])
                PROCESSED.labels(row["type"], "reaped").inc()
                if row["status"] == "FAILED":
                    message = ClaimedMessage(*list(row.values())[:9])
                    await self._final_failure(conn, message, row["last_error"])

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        for task in periodic_tasks():
            if now < self._next_run.get(task.name, 0.0):
                continue
            self._next_run[task.name] = now + task.every_seconds
            try:
                await task.run(self.pool)
            except CONNECTION_ERRORS:
                raise  # an outage, not the task's fault: logged once, by the main loop
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
        """LISTEN on a connection of its own, connected again after an outage. Without it
        the worker still polls, so a LISTEN refused while the database answers (too many
        connections, say) is logged once and tried again now and then, and does not stop
        delivery."""
        if self._listener is not None and not self._listener.is_closed():
            return
        now = time.monotonic()
        if now < self._next_listen:
            return
        try:
            listener = await asyncpg.connect(self.dsn, timeout=10)
            try:
                await listener.add_listener(repo.CHANNEL, self._notified)
            except BaseException:
                listener.terminate()
                raise
        except CONNECTION_ERRORS:
            raise  # the database is away: an outage, logged once by the main loop
        except DATABASE_ERRORS as exc:
            self._next_listen = now + 5.0
            if not self._listen_failing:
                self._listen_failing = True
                log.warning("listen_failed", error=str(exc), fallback="polling")
            return
        self._listener = listener
        self._next_listen = 0.0
        if self._listen_failing:
            self._listen_failing = False
            log.warning("listen_restored")
        self._wake.set()  # a NOTIFY may have been missed while it was down: look now

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _shutdown(
        self, runners: list[asyncio.Task[None]], flusher: asyncio.Task[None]
    ) -> None:
        """Start nothing more; let running handlers finish within the grace period, then
        cancel them; write the outcomes and give back the rest, all within the grace."""
        loop = asyncio.get_running_loop()
        grace = self.config.shutdown_grace
        end = loop.time() + grace
        # Kept back from the handlers, to write outcomes and give messages back.
        reserve = min(1.0, grace / 4)
        self._stopping = True
        self._has_ready.set()  # idle runners see that they are to stop
        self._outcome_left.set()  # and so does an idle flush loop
        if runners:
            await asyncio.wait(runners, timeout=max(0.0, end - reserve - loop.time()))
        late = [t for t in runners if not t.done()]
        if late:
            log.warning("deliveries_cancelled", count=len(late), grace_s=grace)
        # Again and again: a cancelled SMTP client, say, waits for its QUIT to be
        # answered (up to its timeout) unless it is cancelled once more.
        while late and loop.time() < end - reserve / 2:
            for task in late:
                task.cancel()
            await asyncio.wait(late, timeout=0.05)
            late = [t for t in late if not t.done()]
        # The flush loop ends after the flush it may be in: giving messages back while
        # one of its statements was marking them SENT could undo that, and one message
        # would then be delivered twice.
        await asyncio.wait([flusher], timeout=max(0.01, end - loop.time()))
        try:
            async with asyncio.timeout(max(0.05, end - loop.time())):
                await self._settle_pending()
                # Not one still running (a handler that ignored cancellation): its lease
                # runs out instead, so it is not delivered twice at once.
                unfinished = [mid for mid in self._held if mid not in self._running]
                if unfinished:
                    released = await repo.release(self.pool, ids=unfinished, owner=self.owner)
                    log.info("messages_released", count=released)
        except DATABASE_ERRORS as exc:  # TimeoutError among them: the grace ran out
            log.warning(
                "messages_not_settled",
                error=f"{type(exc).__name__}: {exc}"[:300],
                delivered=len(self._finished),
                failed=len(self._failed),
                held=len(self._held),
                note="their leases run out, then any worker takes them back",
            )
