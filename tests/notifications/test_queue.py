"""The queue through its public pieces: enqueue in a transaction, real workers (in-process
and as `gameportal worker` processes) claiming from real PostgreSQL."""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.db import plain_url
from gameportal.notifications import repository as repo
from gameportal.notifications.fanout import LeaseLost, fan_out
from gameportal.notifications.registry import (
    ClaimedMessage,
    Delivery,
    PermanentError,
    register_handler,
    unregister_handler,
)
from gameportal.notifications.service import InvalidPayload, enqueue
from gameportal.notifications.worker import Worker, WorkerConfig
from tests.factories import register
from tests.notifications.support import running_workers, settled, wait_for

ROOT = Path(__file__).parent.parent.parent


async def _enqueue(app: FastAPI, count: int = 1, **kwargs: object) -> list[uuid.UUID]:
    ids = []
    async with app.state.db.sessionmaker() as session, session.begin():
        for n in range(count):
            values: dict[str, object] = {
                "message_type": "IN_APP",
                "payload": {"subject": f"hello {n}"},
            }
            values.update(kwargs)
            ids.append(await enqueue(session, **values))  # type: ignore[arg-type]
    return ids


@asynccontextmanager
async def _handler(
    fn: Callable[[ClaimedMessage, Delivery], Awaitable[None]], message_type: str = "IN_APP"
) -> AsyncIterator[None]:
    register_handler(message_type, fn)
    try:
        yield
    finally:
        unregister_handler(message_type)


async def _statuses(db: asyncpg.Pool) -> collections.Counter[str]:
    return collections.Counter(r["status"] for r in await db.fetch("SELECT status FROM messages"))


async def test_a_rolled_back_transaction_queues_nothing(app: FastAPI, db: asyncpg.Pool) -> None:
    async with app.state.db.sessionmaker() as session:
        await enqueue(session, message_type="IN_APP", payload={"subject": "never"})
        await session.rollback()
    assert await db.fetchval("SELECT count(*) FROM messages") == 0


async def test_payloads_are_validated_per_type(app: FastAPI, db: asyncpg.Pool) -> None:
    async with app.state.db.sessionmaker() as session:
        with pytest.raises(InvalidPayload) as caught:
            await enqueue(session, message_type="PUSH", payload={"body": "no title", "x": 1})
    fields = sorted(e.field for e in caught.value.errors or [])
    assert fields == ["payload.title", "payload.x"]
    assert await db.fetchval("SELECT count(*) FROM messages") == 0


async def test_dedupe_key_is_unique_while_unfinished(app: FastAPI, db: asyncpg.Pool) -> None:
    first = await _enqueue(app, dedupe_key="level-up:42")
    again = await _enqueue(app, dedupe_key="level-up:42")
    assert first == again
    await db.execute("UPDATE messages SET status = 'SENT'")
    later = await _enqueue(app, dedupe_key="level-up:42")
    assert later != first
    assert await db.fetchval("SELECT count(*) FROM messages") == 2


async def test_worker_delivers_and_marks_sent(
    app: FastAPI, database_url: str, db: asyncpg.Pool
) -> None:
    seen: list[uuid.UUID] = []

    async def handle(message: ClaimedMessage, _: Delivery) -> None:
        seen.append(message.id)

    async with _handler(handle), running_workers(app, database_url):
        ids = await _enqueue(app, 20)

        async def all_sent() -> bool:
            return (await _statuses(db))["SENT"] == 20

        await wait_for(all_sent)
    assert sorted(seen) == sorted(ids)
    sent_at = await db.fetchval("SELECT min(sent_at) FROM messages")
    assert sent_at is not None


async def test_two_workers_never_process_one_message_twice(
    app: FastAPI, database_url: str, db: asyncpg.Pool
) -> None:
    seen: collections.Counter[uuid.UUID] = collections.Counter()
    running: set[uuid.UUID] = set()
    overlap: list[uuid.UUID] = []

    async def handle(message: ClaimedMessage, _: Delivery) -> None:
        if message.id in running:
            overlap.append(message.id)
        running.add(message.id)
        await asyncio.sleep(0.002)
        running.discard(message.id)
        seen[message.id] += 1

    ids = await _enqueue(app, 300)
    async with _handler(handle), running_workers(app, database_url, n=2, concurrency=16):

        async def all_sent() -> bool:
            return (await _statuses(db))["SENT"] == 300

        await wait_for(all_sent, within=60)
    assert not overlap
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1


async def test_transient_errors_retry_with_backoff_then_fail(
    app: FastAPI, database_url: str, db: asyncpg.Pool
) -> None:
    attempts: list[datetime] = []

    async def flaky(message: ClaimedMessage, _: Delivery) -> None:
        attempts.append(datetime.now(UTC))
        raise ConnectionError("smtp down")

    await _enqueue(app, max_attempts=3)
    async with _handler(flaky), running_workers(app, database_url):

        async def failed() -> bool:
            return (await _statuses(db))["FAILED"] == 1

        await wait_for(failed)
    row = await db.fetchrow("SELECT retry_count, last_error, sent_at FROM messages")
    assert row["retry_count"] == 3
    assert row["last_error"] == "ConnectionError: smtp down"
    assert row["sent_at"] is None
    assert len(attempts) == 3
    # Backoff: base 0.05 s, so at least 0.025 s then 0.05 s between attempts.
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.025 and gaps[1] >= 0.05


async def test_a_poison_message_fails_alone(
    app: FastAPI, database_url: str, db: asyncpg.Pool
) -> None:
    async def picky(message: ClaimedMessage, _: Delivery) -> None:
        if message.payload["subject"] == "hello 3":
            raise PermanentError("cannot ever deliver this")

    await _enqueue(app, 10)
    async with _handler(picky), running_workers(app, database_url):

        async def settled() -> bool:
            counts = await _statuses(db)
            return counts["SENT"] == 9 and counts["FAILED"] == 1

        await wait_for(settled)
    failed = await db.fetchrow("SELECT retry_count, last_error FROM messages WHERE status='FAILED'")
    assert failed["retry_count"] == 1  # permanent: no second attempt
    assert "cannot ever deliver this" in failed["last_error"]


async def test_a_future_message_is_not_delivered_early(
    app: FastAPI, database_url: str, db: asyncpg.Pool
) -> None:
    delivered: list[datetime] = []

    async def handle(message: ClaimedMessage, _: Delivery) -> None:
        delivered.append(datetime.now(UTC))

    due = datetime.now(UTC) + timedelta(seconds=1.5)
    await _enqueue(app, scheduled_at=due)
    async with _handler(handle), running_workers(app, database_url):
        await asyncio.sleep(0.8)
        assert delivered == []

        async def sent() -> bool:
            return (await _statuses(db))["SENT"] == 1

        await wait_for(sent)
    assert delivered[0] >= due - timedelta(milliseconds=50)


async def test_an_expired_lease_is_taken_back_and_counted(app: FastAPI, db: asyncpg.Pool) -> None:
    [message_id] = await _enqueue(app, max_attempts=2)
    pool = app.state.db.pool
    claimed = await repo.claim(
        pool, types=["IN_APP"], limit=10, owner="dead-worker", lease=timedelta(milliseconds=50)
    )
    assert [r["id"] for r in claimed] == [message_id]
    await asyncio.sleep(0.1)
    reaped = await repo.reap_expired(pool)
    assert [(r["id"], r["status"]) for r in reaped] == [(message_id, "PENDING")]
    # The dead worker's late completion must not count: the lease is gone.
    assert await repo.complete_many(pool, ids=[message_id], owner="dead-worker") == set()
    # A message that kills every worker that takes it ends FAILED, not in a loop.
    await repo.claim(
        pool, types=["IN_APP"], limit=10, owner="dead-again", lease=timedelta(milliseconds=50)
    )
    await asyncio.sleep(0.1)
    assert [r["status"] for r in await repo.reap_expired(pool)] == ["FAILED"]


def _worker_process(database_url: str, *args: str, seconds: str = "30") -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEPORTAL_")}
    env.update(
        {
            "GAMEPORTAL_DATABASE_URL": database_url,
            "GAMEPORTAL_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            "TEST_HANDLER_SECONDS": seconds,
        }
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gameportal.cli",
            "worker",
            "--import",
            "tests.notifications.handlers",
            "--types",
            "MEDIA_PROCESSING",
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def _enqueue_media(app: FastAPI, count: int) -> list[uuid.UUID]:
    return await _enqueue(
        app, count, message_type="MEDIA_PROCESSING", payload={"mediaId": str(uuid.uuid4())}
    )


async def test_kill_9_mid_batch_loses_nothing(
    app: FastAPI, database_url: str, db: asyncpg.Pool
) -> None:
    ids = await _enqueue_media(app, 5)
    proc = _worker_process(database_url, "--lease-seconds", "2", "--concurrency", "5")
    try:

        async def all_claimed() -> bool:
            return (await _statuses(db))["PROCESSING"] == 5

        await wait_for(all_claimed, within=30)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    seen: list[uuid.UUID] = []

    async def handle(message: ClaimedMessage, _: Delivery) -> None:
        seen.append(message.id)

    async with (
        _handler(handle, "MEDIA_PROCESSING"),
        running_workers(app, database_url, types=["MEDIA_PROCESSING"]),
    ):

        async def all_sent() -> bool:
            return (await _statuses(db))["SENT"] == 5

        await wait_for(all_sent, within=30)
    assert sorted(seen) == sorted(ids)
    assert await db.fetchval("SELECT max(retry_count) FROM messages") == 1  # the crash counted


async def test_sigterm_finishes_or_gives_back_everything(
    app: FastAPI, database_url: str, db: asyncpg.Pool
) -> None:
    await _enqueue_media(app, 6)
    proc = _worker_process(database_url, "--concurrency", "3", seconds="0.3")
    try:

        async def some_sent() -> bool:
            return (await _statuses(db))["SENT"] >= 3

        await wait_for(some_sent, within=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    counts = await _statuses(db)
    assert counts["PROCESSING"] == 0  # nothing left leased to a gone worker
    assert counts["SENT"] + counts["PENDING"] == 6


def test_worker_refuses_types_without_a_handler(database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEPORTAL_")}
    env["GAMEPORTAL_DATABASE_URL"] = database_url
    result = subprocess.run(
        [sys.executable, "-m", "gameportal.cli", "worker", "--types", "PUSH"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert b"no handler is installed" in result.stderr


async def test_enqueue_many_is_one_batch_with_dedupe(app: FastAPI, db: asyncpg.Pool) -> None:
    from gameportal.notifications.service import Outgoing, enqueue_many

    await _enqueue(app, dedupe_key="already")
    items = [
        Outgoing(message_type="IN_APP", payload={"subject": f"s{n}"}, dedupe_key=f"k{n}")
        for n in range(5)
    ] + [Outgoing(message_type="IN_APP", payload={"subject": "dup"}, dedupe_key="already")]
    async with app.state.db.sessionmaker() as session, session.begin():
        ids = await enqueue_many(session, items)
    assert [i is not None for i in ids] == [True] * 5 + [False]
    assert await db.fetchval("SELECT count(*) FROM messages") == 6
    async with app.state.db.sessionmaker() as session:
        with pytest.raises(InvalidPayload) as caught:
            await enqueue_many(
                session,
                [
                    Outgoing(message_type="IN_APP", payload={"subject": "ok"}),
                    Outgoing(message_type="IN_APP", payload={}),
                ],
            )
    assert [e.field for e in caught.value.errors or []] == ["1.payload.subject"]


async def test_enqueue_wakes_a_listening_worker_only_on_commit(
    app: FastAPI, database_url: str
) -> None:
    heard: list[str] = []
    listener = await asyncpg.connect(plain_url(database_url))
    await listener.add_listener(repo.CHANNEL, lambda *args: heard.append(args[-1]))
    try:
        async with app.state.db.sessionmaker() as session:
            await enqueue(session, message_type="IN_APP", payload={"subject": "x"})
            await session.rollback()
        await asyncio.sleep(0.2)
        assert heard == []
        await _enqueue(app)
        await wait_for(lambda: _truthy(heard), within=5)
        assert heard == ["IN_APP"]
    finally:
        await listener.close()


async def _truthy(value: object) -> bool:
    return bool(value)


class _DiesOnSecondBatch:
    """A pool that fails the worker's second transaction: a crash between batches."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool, self.calls = pool, 0

    def acquire(self) -> object:
        self.calls += 1
        if self.calls == 2:
            raise ConnectionResetError("the worker died")
        return self.pool.acquire()


async def test_a_broadcast_fan_out_resumes_after_a_crash_without_gaps_or_repeats(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    players = {uuid.UUID((await register(client))["user"]["id"]) for _ in range(7)}
    [broadcast_id] = await _enqueue(
        app, message_type="EMAIL", payload={"subject": "Season 3", "body": "New maps."}
    )
    row = await db.fetchrow(
        "UPDATE messages SET status = 'PROCESSING', lease_owner = 'A', "
        "lease_expires_at = now() + interval '1 minute' WHERE id = $1 "
        "RETURNING id, type, recipient_user_id, payload, priority, retry_count, max_attempts, "
        "scheduled_at, created_at",
        broadcast_id,
    )
    broadcast = ClaimedMessage(**dict(row))

    async def copies() -> collections.Counter[uuid.UUID]:
        rows = await db.fetch(
            "SELECT recipient_user_id FROM messages WHERE dedupe_key LIKE 'broadcast:%'"
        )
        return collections.Counter(r["recipient_user_id"] for r in rows)

    with pytest.raises(ConnectionResetError):
        await fan_out(broadcast, Delivery(_DiesOnSecondBatch(db), "A"), batch=3)  # type: ignore[arg-type]
    assert sum((await copies()).values()) == 3

    # A's lease ran out and B took the broadcast over; A, if it still ran, must stop.
    await db.execute("UPDATE messages SET lease_owner = 'B' WHERE id = $1", broadcast_id)
    with pytest.raises(LeaseLost):
        await fan_out(broadcast, Delivery(db, "A"), batch=3)
    assert await fan_out(broadcast, Delivery(db, "B"), batch=3) == 4
    assert await copies() == collections.Counter(players)
    progress = await db.fetchrow("SELECT recipients FROM broadcast_progress")
    assert progress["recipients"] == 7


async def test_a_failure_whose_text_postgresql_cannot_hold_is_still_recorded(
    app: FastAPI, database_url: str, db: asyncpg.Pool
) -> None:
    # An error message may carry a NUL or a lone surrogate (bytes from a remote server);
    # writing it as is failed, and the message stayed PROCESSING while its worker lived.
    async def garbled(message: ClaimedMessage, _: Delivery) -> None:
        raise PermanentError("bad\x00byte \ud800")

    await _enqueue(app)
    async with _handler(garbled), running_workers(app, database_url):

        async def failed() -> bool:
            return (await _statuses(db))["FAILED"] == 1

        await wait_for(failed)
    error = await db.fetchval("SELECT last_error FROM messages")
    assert error == "PermanentError: bad\ufffdbyte ?"


async def test_enqueue_many_names_every_invalid_item(app: FastAPI, db: asyncpg.Pool) -> None:
    from gameportal.notifications.service import Outgoing, enqueue_many

    items = [
        Outgoing(message_type="IN_APP", payload={"subject": "ok"}),
        Outgoing(message_type="PUSH", payload={"body": "no title"}),
        Outgoing(message_type="IN_APP", payload={}),
        Outgoing(message_type="IN_APP", payload={"subject": "ok", "extra": 1}),
    ]
    async with app.state.db.sessionmaker() as session:
        with pytest.raises(InvalidPayload) as caught:
            await enqueue_many(session, items)
    assert [e.field for e in caught.value.errors or []] == [
        "1.payload.title",
        "2.payload.subject",
        "3.payload.extra",
    ]
    assert await db.fetchval("SELECT count(*) FROM messages") == 0


async def test_enqueue_many_as_a_transactions_first_statement_is_part_of_it(
    app: FastAPI, database_url: str, db: asyncpg.Pool
) -> None:
    from gameportal.notifications.service import Outgoing, enqueue_many

    heard: list[str] = []
    listener = await asyncpg.connect(plain_url(database_url))
    await listener.add_listener(repo.CHANNEL, lambda *args: heard.append(args[-1]))
    items = [Outgoing(message_type="IN_APP", payload={"subject": f"s{n}"}) for n in range(3)]
    try:
        async with app.state.db.sessionmaker() as session:
            await enqueue_many(session, items)
            await session.rollback()
        assert await db.fetchval("SELECT count(*) FROM messages") == 0
        async with app.state.db.sessionmaker() as session, session.begin():
            ids = await enqueue_many(session, items)
            # Still uncommitted: another connection sees nothing yet.
            assert await db.fetchval("SELECT count(*) FROM messages") == 0
        assert sorted(r["id"] for r in await db.fetch("SELECT id FROM messages")) == sorted(
            i for i in ids if i is not None
        )
        assert len(ids) == 3
        await wait_for(lambda: _truthy(heard), within=5)
        assert heard == ["IN_APP"]
    finally:
        await listener.close()


async def test_completing_and_claiming_in_one_statement_settles_only_held_leases(
    app: FastAPI, db: asyncpg.Pool
) -> None:
    first, second, third = await _enqueue(app, 3)
    pool = app.state.db.pool
    lease = timedelta(minutes=1)
    [held] = await repo.claim(pool, types=["IN_APP"], limit=1, owner="w1", lease=lease)
    assert held["id"] == first
    [other] = await repo.claim(pool, types=["IN_APP"], limit=1, owner="w2", lease=lease)
    sent, claimed = await repo.complete_and_claim(
        pool, done=[first, other["id"]], types=["IN_APP"], limit=5, owner="w1", lease=lease
    )
    assert sent == {first}  # w2's message is not w1's to settle
    assert [r["id"] for r in claimed] == [third]
    assert claimed[0]["payload"] == {"subject": "hello 2", "category": "achievements"}
    rows = {r["id"]: r for r in await db.fetch("SELECT id, status, lease_owner FROM messages")}
    assert (rows[first]["status"], rows[first]["lease_owner"]) == ("SENT", None)
    assert (rows[second]["status"], rows[second]["lease_owner"]) == ("PROCESSING", "w2")
    assert (rows[third]["status"], rows[third]["lease_owner"]) == ("PROCESSING", "w1")


class _SlowToMarkSent:
    """A pool whose statements marking messages SENT reach the server late (a slow
    network), everything else as usual."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        if "status = 'SENT'" in sql:
            await asyncio.sleep(0.5)
        rows: list[asyncpg.Record] = await self.pool.fetch(sql, *args)
        return rows

    def __getattr__(self, name: str) -> object:
        return getattr(self.pool, name)


async def test_stopping_while_a_completion_is_in_flight_does_not_give_the_message_back(
    app: FastAPI, database_url: str, db: asyncpg.Pool
) -> None:
    # The worker used to give back every message not yet marked SENT, including one whose
    # SENT statement was still on its way: back to PENDING, then delivered again.
    handled = asyncio.Event()
    runs: list[uuid.UUID] = []

    async def handle(message: ClaimedMessage, _: Delivery) -> None:
        runs.append(message.id)
        handled.set()

    worker = Worker(
        _SlowToMarkSent(app.state.db.pool),  # type: ignore[arg-type]
        plain_url(database_url),
        WorkerConfig(types=["IN_APP"], poll_interval=0.2, reap_interval=0.3),
    )
    stop = asyncio.Event()
    [message_id] = await _enqueue(app)
    async with _handler(handle):
        running = asyncio.create_task(worker.run(stop))
        await asyncio.wait_for(handled.wait(), 20)
        await asyncio.sleep(0.1)  # the SENT statement is on its way
        stop.set()
        await running
    assert runs == [message_id]
    assert await db.fetchval("SELECT status FROM messages") == "SENT"


async def test_enqueue_many_stores_every_column_whether_shared_or_not(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    from gameportal.notifications.service import Outgoing, enqueue_many

    player = uuid.UUID((await register(client))["user"]["id"])
    later = datetime.now(UTC) + timedelta(hours=1)
    shared = [Outgoing(message_type="IN_APP", payload={"subject": f"s{n}"}) for n in range(3)]
    varied = [
        Outgoing(message_type="IN_APP", payload={"subject": "a"}, priority=5, max_attempts=2),
        Outgoing(
            message_type="PUSH",
            payload={"title": "b"},
            recipient_user_id=player,
            scheduled_at=later,
        ),
    ]
    async with app.state.db.sessionmaker() as session, session.begin():
        ids = await enqueue_many(session, shared) + await enqueue_many(session, varied)
    rows = await db.fetch(
        "SELECT id, type, recipient_user_id, payload, priority, max_attempts, "
        "scheduled_at > now() + interval '30 minutes' AS later, dedupe_key, status "
        "FROM messages WHERE id = ANY($1::uuid[]) ORDER BY id",
        ids,
    )
    assert [r["id"] for r in rows] == ids
    assert [
        (r["type"], r["recipient_user_id"], r["priority"], r["max_attempts"], r["later"])
        for r in rows
    ] == [("IN_APP", None, 0, 5, False)] * 3 + [
        ("IN_APP", None, 5, 2, False),
        ("PUSH", player, 0, 5, True),
    ]
    assert [r["payload"]["subject"] for r in rows[:3]] == ["s0", "s1", "s2"]
    assert rows[4]["payload"]["title"] == "b"
    assert {(r["dedupe_key"], r["status"]) for r in rows} == {(None, "PENDING")}


async def test_an_idle_worker_does_not_wake_to_flush_nothing(
    app: FastAPI, database_url: str, db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The flush loop used to sleep flush_interval (10 ms) and look again, forever: an idle
    # worker woke 100 times a second. It now waits for an outcome to write.
    flush_interval = 0.0123  # told apart from every other sleep by its value
    flush_sleeps = 0
    sleep = asyncio.sleep

    async def counting_sleep(delay: float) -> None:
        nonlocal flush_sleeps
        flush_sleeps += delay == flush_interval
        await sleep(delay)

    monkeypatch.setattr(asyncio, "sleep", counting_sleep)

    async def handle(message: ClaimedMessage, _: Delivery) -> None:
        pass

    async with _handler(handle), running_workers(app, database_url, flush_interval=flush_interval):
        await sleep(0.5)
        assert flush_sleeps == 0
        await _enqueue(app)
        await settled(db, "SENT")
        idle_from = flush_sleeps
        await sleep(0.5)
        assert flush_sleeps - idle_from <= 1
