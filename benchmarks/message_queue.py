"""The message queue beside pgqueuer, on the same PostgreSQL, in one run.

    .venv/bin/pip install -e '.[bench]'    # pgqueuer, the reference; not used by gameportal
    .venv/bin/python benchmarks/message_queue.py [--messages 100000] [--workers 2]

Both sides: N messages enqueued in batches of 1,000 per transaction, then drained by
`--workers` processes with a no-op handler. Also: what one enqueue adds to a request's
transaction. Starts its own embedded PostgreSQL in a temporary folder unless
GAMEPORTAL_DATABASE_URL names a server (two scratch databases are created there).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gameportal.config import Settings
from gameportal.db import Database, EmbeddedPostgres, plain_url
from gameportal.migrations import upgrade
from gameportal.notifications.service import Outgoing, enqueue, enqueue_many

ROOT = Path(__file__).parent.parent
BATCH = 1000


def with_database(url: str, name: str) -> str:
    return make_url(plain_url(url)).set(database=name).render_as_string(hide_password=False)


async def fresh_database(server: str, name: str) -> str:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server, name)


async def gameportal_enqueue(url: str, n: int) -> tuple[float, float]:
    """(messages/s enqueued in batches, microseconds one enqueue adds to a transaction)."""
    db = await Database.connect(Settings(database_url=url, db_pool_size=4))
    try:
        started = time.perf_counter()
        for first in range(0, n, BATCH):
            batch = [
                Outgoing(message_type="IN_APP", payload={"subject": f"m{i}"})
                for i in range(first, min(n, first + BATCH))
            ]
            async with db.sessionmaker() as session, session.begin():
                await enqueue_many(session, batch)
        rate = n / (time.perf_counter() - started)

        # A request that writes something anyway (so both sides pay the commit's WAL
        # flush), with and without one enqueue.
        async def transactions(with_enqueue: bool, count: int = 500) -> float:
            t0 = time.perf_counter()
            for _ in range(count):
                async with db.sessionmaker() as session, session.begin():
                    await session.execute(
                        text(
                            "UPDATE messages SET updated_at = now() "
                            "WHERE id = (SELECT id FROM messages ORDER BY id LIMIT 1)"
                        )
                    )
                    if with_enqueue:
                        await enqueue(
                            session, message_type="IN_APP", payload={"subject": "overhead"}
                        )
            return (time.perf_counter() - t0) / count

        base = await transactions(False)
        with_one = await transactions(True)
        await db.engine.dispose()
        async with db.sessionmaker() as session, session.begin():
            await session.execute(
                text("DELETE FROM messages WHERE payload->>'subject' = 'overhead'")
            )
        return rate, (with_one - base) * 1e6
    finally:
        await db.close()


async def count_sent(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        sent: int = await conn.fetchval("SELECT count(*) FROM messages WHERE status = 'SENT'")
        return sent
    finally:
        await conn.close()


def gameportal_drain(url: str, n: int, workers: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEPORTAL_")}
    env.update(
        {"GAMEPORTAL_DATABASE_URL": url, "GAMEPORTAL_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    )
    cmd = [
        sys.executable,
        "-m",
        "gameportal.cli",
        "worker",
        "--import",
        "benchmarks.noop_handler",
        "--types",
        "IN_APP",
        "--concurrency",
        "100",
        "--batch",
        "500",
    ]
    started = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env) for _ in range(workers)]
    try:
        deadline = started + 600
        while asyncio.run(count_sent(url)) < n:
            if time.perf_counter() > deadline:
                raise SystemExit("gameportal workers did not drain the queue in 10 minutes")
            time.sleep(0.1)
        return n / (time.perf_counter() - started)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


async def pgqueuer_enqueue(url: str, n: int) -> float:
    from pgqueuer import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.install()
        started = time.perf_counter()
        for first in range(0, n, BATCH):
            size = min(BATCH, n - first)
            await queries.enqueue(["noop"] * size, [b"m"] * size, [0] * size)
        return n / (time.perf_counter() - started)
    finally:
        await conn.close()


async def pgqueuer_consume(url: str) -> None:
    from pgqueuer import AsyncpgDriver, QueueManager
    from pgqueuer.models import Job
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    conn = await asyncpg.connect(url)
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint("noop")
    async def noop(job: Job) -> None:
        return None

    await qm.run(batch_size=500, mode=QueueExecutionMode.drain)
    await conn.close()


def pgqueuer_drain(url: str, workers: int, n: int) -> float:
    cmd = [sys.executable, __file__, "--consume-pgqueuer", url]
    started = time.perf_counter()
    procs = [subprocess.Popen(cmd) for _ in range(workers)]
    for proc in procs:
        if proc.wait(timeout=600) != 0:
            raise SystemExit("a pgqueuer consumer failed")
    elapsed = time.perf_counter() - started
    left = asyncio.run(pgqueuer_left(url))
    if left:
        raise SystemExit(f"pgqueuer left {left} jobs unprocessed")
    return n / elapsed


async def pgqueuer_left(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        left: int = await conn.fetchval("SELECT count(*) FROM pgqueuer")
        return left
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--consume-pgqueuer", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consume_pgqueuer:
        asyncio.run(pgqueuer_consume(args.consume_pgqueuer))
        return

    tmp = None
    server_url = os.environ.get("GAMEPORTAL_DATABASE_URL")
    server = None
    if not server_url:
        tmp = Path(tempfile.mkdtemp(prefix="gameportal-queue-bench-"))
        server = EmbeddedPostgres(tmp / "pgdata")
        server_url = server.start()
    try:
        ours = asyncio.run(fresh_database(plain_url(server_url), "bench_gameportal_queue"))
        theirs = asyncio.run(fresh_database(plain_url(server_url), "bench_pgqueuer"))
        upgrade(ours)
        n, w = args.messages, args.workers

        our_enqueue, overhead_us = asyncio.run(gameportal_enqueue(ours, n))
        our_drain = gameportal_drain(ours, n, w)
        their_enqueue = asyncio.run(pgqueuer_enqueue(theirs, n))
        their_drain = pgqueuer_drain(theirs, w, n)

        print(
            f"\nqueue benchmark: {n:,} messages, no-op handler, {w} worker processes, "
            "same PostgreSQL\n"
        )
        print(f"{'':<34}{'gameportal':>14}{'pgqueuer':>14}{'ratio':>8}")
        print(
            f"{'enqueue (batches of 1,000), msg/s':<34}{our_enqueue:>14,.0f}"
            f"{their_enqueue:>14,.0f}{our_enqueue / their_enqueue:>8.2f}"
        )
        print(
            f"{'processed, jobs/s':<34}{our_drain:>14,.0f}{their_drain:>14,.0f}"
            f"{our_drain / their_drain:>8.2f}"
        )
        print(f"\none enqueue adds {overhead_us:,.0f} us to a request's transaction")
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
