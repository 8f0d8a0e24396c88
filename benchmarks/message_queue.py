"""The message queue beside pgqueuer, on the same PostgreSQL, in one run.

    .venv/bin/pip install -e '.[bench]'    # pgqueuer, the reference; not used by gameportal
    .venv/bin/python benchmarks/message_queue.py [--messages 100000] [--workers 2] [--rounds 3]

Both sides: N messages enqueued in batches of 1,000 per transaction, then drained by
`--workers` processes with a no-op handler, timed from starting the processes until the
queue is empty. pgqueuer runs at each of several settings (`--pgqueuer-batches`, and
`--pgqueuer-max-tasks` for its cap on jobs held per worker, 0 = none) and is compared at
its best. Each pgqueuer run comes right after a gameportal run (settings in a rotating
order per round), so a machine that changes speed meanwhile affects both alike; the
script prints every pair, medians, and each round's ratios. Also: what one enqueue adds
to a request's transaction. Starts its own embedded PostgreSQL in a temporary folder unless
GAMEPORTAL_DATABASE_URL names a server (two scratch databases are created there).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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
POLL = 0.05


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


async def gameportal_enqueue(url: str, n: int, *, overhead: bool) -> tuple[float, float]:
    """(messages/s enqueued in batches, microseconds one enqueue adds to a transaction,
    measured when `overhead`, else 0)."""
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
        if not overhead:
            return rate, 0.0

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
        async with db.sessionmaker() as session, session.begin():
            await session.execute(
                text("DELETE FROM messages WHERE payload->>'subject' = 'overhead'")
            )
        return rate, (with_one - base) * 1e6
    finally:
        await db.close()


# Cheap while draining: each EXISTS reads the first live entry of a partial index.
_UNFINISHED_SQL = """
SELECT EXISTS (SELECT 1 FROM messages WHERE status = 'PENDING')
    OR EXISTS (SELECT 1 FROM messages WHERE status = 'PROCESSING')
"""


async def wait_until_drained(url: str, deadline: float) -> None:
    conn = await asyncpg.connect(url)
    try:
        while await conn.fetchval(_UNFINISHED_SQL):
            if time.perf_counter() > deadline:
                raise SystemExit("gameportal workers did not drain the queue in 10 minutes")
            await asyncio.sleep(POLL)
    finally:
        await conn.close()


async def count_sent(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        sent: int = await conn.fetchval("SELECT count(*) FROM messages WHERE status = 'SENT'")
        return sent
    finally:
        await conn.close()


def gameportal_drain(url: str, n: int, workers: int, batch: int, concurrency: int) -> float:
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
        str(concurrency),
        "--batch",
        str(batch),
    ]
    started = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env) for _ in range(workers)]
    try:
        asyncio.run(wait_until_drained(url, started + 600))
        elapsed = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    sent = asyncio.run(count_sent(url))
    if sent != n:
        raise SystemExit(f"gameportal sent {sent} of {n} messages")
    return n / elapsed


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


async def pgqueuer_consume(url: str, batch_size: int, max_tasks: int) -> None:
    from pgqueuer import AsyncpgDriver, QueueManager
    from pgqueuer.models import Job
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    conn = await asyncpg.connect(url)
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint("noop")
    async def noop(job: Job) -> None:
        return None

    await qm.run(
        batch_size=batch_size,
        max_concurrent_tasks=max_tasks or None,
        mode=QueueExecutionMode.drain,
    )
    await conn.close()


def pgqueuer_drain(url: str, workers: int, n: int, setting: PgqSetting) -> float:
    cmd = [
        sys.executable,
        __file__,
        "--consume-pgqueuer",
        url,
        "--pgqueuer-batches",
        str(setting.batch),
        "--pgqueuer-max-tasks",
        str(setting.max_tasks),
    ]
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


@dataclass(frozen=True)
class PgqSetting:
    batch: int
    max_tasks: int  # 0: no cap

    def __str__(self) -> str:
        cap = f", max_concurrent_tasks={self.max_tasks}" if self.max_tasks else ""
        return f"batch_size={self.batch}{cap}"


def ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2000, help="gameportal worker --batch")
    parser.add_argument(
        "--concurrency", type=int, default=100, help="gameportal worker --concurrency"
    )
    parser.add_argument(
        "--pgqueuer-batches", type=ints, default=[100, 500, 1000, 2000], help="comma-separated"
    )
    parser.add_argument(
        "--pgqueuer-max-tasks",
        type=ints,
        default=[0],
        help="comma-separated; 0: no cap (a cap must be at least twice the batch)",
    )
    parser.add_argument("--consume-pgqueuer", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consume_pgqueuer:
        asyncio.run(
            pgqueuer_consume(
                args.consume_pgqueuer, args.pgqueuer_batches[0], args.pgqueuer_max_tasks[0]
            )
        )
        return

    settings = [
        PgqSetting(b, m)
        for b in args.pgqueuer_batches
        for m in args.pgqueuer_max_tasks
        if m == 0 or m >= 2 * b
    ]
    if not settings:
        raise SystemExit("no valid pgqueuer setting (a cap must be at least twice the batch)")

    tmp = None
    server_url = os.environ.get("GAMEPORTAL_DATABASE_URL")
    server = None
    if not server_url:
        tmp = Path(tempfile.mkdtemp(prefix="gameportal-queue-bench-"))
        server = EmbeddedPostgres(tmp / "pgdata")
        server_url = server.start()
    n, w = args.messages, args.workers
    # Per round and pgqueuer setting, a gameportal run and the pgqueuer run right after
    # it: (enqueue msg/s, processed jobs/s) each.
    ours: list[dict[PgqSetting, tuple[float, float]]] = []
    theirs: list[dict[PgqSetting, tuple[float, float]]] = []
    overheads: list[float] = []
    try:
        for round_no in range(args.rounds):
            ours.append({})
            theirs.append({})
            shift = round_no % len(settings)
            for setting in settings[shift:] + settings[:shift]:
                url = asyncio.run(fresh_database(plain_url(server_url), "bench_gameportal_queue"))
                upgrade(url)
                first = setting == settings[shift]
                enqueued, overhead_us = asyncio.run(gameportal_enqueue(url, n, overhead=first))
                if first:
                    overheads.append(overhead_us)
                drained = gameportal_drain(url, n, w, args.batch, args.concurrency)
                ours[-1][setting] = (enqueued, drained)
                url = asyncio.run(fresh_database(plain_url(server_url), "bench_pgqueuer"))
                their_enqueue = asyncio.run(pgqueuer_enqueue(url, n))
                theirs[-1][setting] = (their_enqueue, pgqueuer_drain(url, w, n, setting))
                print(
                    f"round {round_no + 1}: gameportal enqueue {enqueued:,.0f}/s, processed "
                    f"{drained:,.0f} jobs/s | pgqueuer ({setting}) enqueue "
                    f"{their_enqueue:,.0f}/s, processed {theirs[-1][setting][1]:,.0f} jobs/s",
                    flush=True,
                )
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    report(n, w, args, settings, ours, theirs, overheads)


def report(
    n: int,
    w: int,
    args: argparse.Namespace,
    settings: list[PgqSetting],
    ours: list[dict[PgqSetting, tuple[float, float]]],
    theirs: list[dict[PgqSetting, tuple[float, float]]],
    overheads: list[float],
) -> None:
    med = statistics.median
    print(
        f"\nqueue benchmark: {n:,} messages, no-op handler, {w} worker processes, same "
        f"PostgreSQL, {len(ours)} rounds; each pgqueuer run right after a gameportal run\n"
    )
    print("pgqueuer by setting (medians):")
    for s in settings:
        print(
            f"  {s!s:<42} enqueue {med(r[s][0] for r in theirs):>9,.0f}/s"
            f"   processed {med(r[s][1] for r in theirs):>9,.0f} jobs/s"
        )
    best = max(settings, key=lambda s: med(r[s][1] for r in theirs))
    print(f"  best at processing: {best}\n")
    # Processing: each round's gameportal run beside pgqueuer's run at its best setting.
    drain_ratios = [o[best][1] / t[best][1] for o, t in zip(ours, theirs, strict=True)]
    # Enqueue has no setting but the batch of 1,000: every pair counts, per round the
    # median of its pairs' ratios; and, stricter, against the round's fastest pgqueuer run.
    enqueue_ratios = [
        med(o[s][0] / t[s][0] for s in settings) for o, t in zip(ours, theirs, strict=True)
    ]
    fastest_ratios = [
        med(v[0] for v in o.values()) / max(v[0] for v in t.values())
        for o, t in zip(ours, theirs, strict=True)
    ]
    our_enqueue = med(v[0] for r in ours for v in r.values())
    their_enqueue = med(v[0] for r in theirs for v in r.values())
    their_fastest = med(max(v[0] for v in r.values()) for r in theirs)

    def line(label: str, mine: float, other: float, ratios: list[float]) -> None:
        print(
            f"{label:<36}{mine:>12,.0f}{other:>12,.0f}{med(ratios):>8.2f}   "
            + " ".join(f"{r:.2f}" for r in ratios)
        )

    print(f"{'':<36}{'gameportal':>12}{'pgqueuer':>12}{'ratio':>8}   per round")
    line("enqueue (batches of 1,000), msg/s", our_enqueue, their_enqueue, enqueue_ratios)
    line("  vs pgqueuer's fastest run", our_enqueue, their_fastest, fastest_ratios)
    line(
        "processed, jobs/s",
        med(v[1] for r in ours for v in r.values()),
        med(r[best][1] for r in theirs),
        drain_ratios,
    )
    print(
        f"\ngameportal worker: --batch {args.batch} --concurrency {args.concurrency}; "
        f"pgqueuer processing at {best}"
    )
    print(f"one enqueue adds {med(overheads):,.0f} us to a request's transaction")


if __name__ == "__main__":
    main()
