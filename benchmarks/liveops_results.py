"""A campaign's experiment results with 1,000,000 experiment-log rows, over HTTP.

    .venv/bin/python benchmarks/liveops_results.py [--rows 1000000] [--requests 40]

Runs on the PostgreSQL server at TEST_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres): creates a scratch database there, migrates
it, fills it and drops it at the end. Seeds one campaign of 3 variants with `--rows` log
rows (about 10% converted, assignments spread over 30 days) and another campaign with a
fifth as many, in bulk (generate_series), through the counting triggers as any insert.

Measured, in this run:
- `GET /api/v1/admin/campaigns/{id}/results` and `/results/daily` as a marketer, one
  request at a time, under uvicorn as `serve` runs it: median, p95 and the slowest.
  Target (issue 12): under 200 ms.
- Beside them, the statement the counts replace: a GROUP BY over the log itself (after
  VACUUM ANALYZE, so with index-only and parallel scans available), and the counts' own
  statement.
- What the counts cost writers: a one-row insert (as a new assignment is written; the
  server's own execution time) and 100,000 rows in one statement, with the triggers on
  and off (without waiting for the flush of each commit, the same either way).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
from _harness import gameportal_uvicorn
from sqlalchemy.engine import make_url

from gameportal.migrations import upgrade

PASSWORD = "violet-kettle-harbour-93"
TARGET_MS = 200.0
LOG_GROUP_BY = (
    "SELECT variant_id, count(*), count(conversion_event) FROM ab_experiment_log "
    "WHERE campaign_id = $1 GROUP BY variant_id"
)
COUNTS_GROUP_BY = (
    "SELECT variant_id, sum(assigned), sum(conversions) FROM ab_experiment_counts "
    "WHERE campaign_id = $1 GROUP BY variant_id"
)
BULK_LOG_ROWS = """
    INSERT INTO ab_experiment_log
        (id, campaign_id, anonymous_id, variant_id, assigned_at, conversion_event)
    SELECT gen_random_uuid(), $1, gen_random_uuid(), ($2::uuid[])[1 + g % array_length($2, 1)],
           t, CASE WHEN random() < 0.1 THEN t + random() * interval '2 days' END
    FROM generate_series(1, $3) AS g,
         LATERAL (SELECT timestamptz '2026-03-01' + g * (interval '30 days' / $3)) AS at(t)
"""


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def timed(run: Callable[[], Awaitable[object]], times: int, warm: int = 2) -> list[float]:
    for _ in range(warm):
        await run()
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        await run()
        spent.append((time.perf_counter() - start) * 1000)
    return spent


def summary(ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (
        f"median {statistics.median(ordered):8.2f} ms  p95 {p95:8.2f} ms  max {ordered[-1]:8.2f} ms"
    )


async def seed(url: str, rows: int) -> tuple[uuid.UUID, dict[str, float]]:
    conn = await asyncpg.connect(url)
    figures: dict[str, float] = {}
    try:
        variants = [uuid.uuid4() for _ in range(3)]
        for n, variant_id in enumerate(variants):
            await conn.execute(
                "INSERT INTO ab_rules (id, name, rule) VALUES ($1, $2, $3::jsonb)",
                variant_id,
                f"variant {n}",
                '{"weight": 1}',
            )
        campaigns = [uuid.uuid4(), uuid.uuid4()]
        for campaign_id in campaigns:
            await conn.execute(
                "INSERT INTO campaigns (id, name, hash_seed, ab_variants) VALUES ($1, $2, $3, $4)",
                campaign_id,
                "bench",
                str(campaign_id),
                variants,
            )
        await conn.execute("SET synchronous_commit = off")
        start = time.perf_counter()
        await conn.execute(BULK_LOG_ROWS, campaigns[0], variants, rows, timeout=1800)
        figures["seed_seconds"] = time.perf_counter() - start
        await conn.execute(BULK_LOG_ROWS, campaigns[1], variants, rows // 5, timeout=1800)
        await conn.execute("VACUUM ANALYZE ab_experiment_log", timeout=600)
        await conn.execute("VACUUM ANALYZE ab_experiment_counts", timeout=600)
        await conn.execute("RESET synchronous_commit")
        return campaigns[0], figures
    finally:
        await conn.close()


async def write_costs(url: str, single: int, bulk: int) -> dict[str, float]:
    """Per-row cost of writes with the counting triggers on and off, on a campaign of its
    own (its counts are wrong afterwards: measured last, the database dropped after),
    alternating so that the machine's load falls on both. A one-row insert is timed by
    the server (EXPLAIN ANALYZE's execution time, triggers included): on a loaded machine
    the round trip mostly measures the scheduler."""
    conn = await asyncpg.connect(url)
    figures: dict[str, list[float]] = {"on": [], "off": [], "bulk_on": [], "bulk_off": []}
    try:
        variant_id = await conn.fetchval("SELECT id FROM ab_rules LIMIT 1")
        campaign_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO campaigns (id, name, hash_seed, ab_variants) VALUES ($1, 'w', 'w', $2)",
            campaign_id,
            [variant_id],
        )
        # Without waiting for each commit's flush to disk (about 5 ms here), which is the
        # same with the triggers or without.
        await conn.execute("SET synchronous_commit = off")
        insert = await conn.prepare(
            "EXPLAIN (ANALYZE, FORMAT JSON) "
            "INSERT INTO ab_experiment_log (id, campaign_id, anonymous_id, variant_id) "
            "VALUES (gen_random_uuid(), $1, gen_random_uuid(), $2) ON CONFLICT DO NOTHING"
        )
        for _ in range(3):
            for state in ("off", "on"):
                toggle = "DISABLE" if state == "off" else "ENABLE"
                await conn.execute(f"ALTER TABLE ab_experiment_log {toggle} TRIGGER USER")
                spent = []
                for _ in range(single):
                    plan = json.loads(await insert.fetchval(campaign_id, variant_id))
                    spent.append(plan[0]["Execution Time"] * 1000)
                figures[state].append(statistics.median(spent))
                start = time.perf_counter()
                await conn.execute(BULK_LOG_ROWS, campaign_id, [variant_id], bulk, timeout=600)
                figures[f"bulk_{state}"].append((time.perf_counter() - start) / bulk * 1e6)
        await conn.execute("ALTER TABLE ab_experiment_log ENABLE TRIGGER USER")
    finally:
        await conn.close()
    return {name: statistics.median(values) for name, values in figures.items()}


def marketer_token(base: str, url: str) -> dict[str, str]:
    with httpx.Client(base_url=base, timeout=60) as client:
        email = f"bench-marketer-{uuid.uuid4().hex[:8]}@example.com"
        made = client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "name": "Bench marketer"},
        )
        made.raise_for_status()

        async def grant() -> None:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(
                    "UPDATE users SET roles = ARRAY['user', 'marketer'] WHERE id = $1",
                    uuid.UUID(made.json()["user"]["id"]),
                )
            finally:
                await conn.close()

        asyncio.run(grant())
        login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        login.raise_for_status()
        return {"Authorization": f"Bearer {login.json()['accessToken']}"}


async def over_http(
    base: str, who: dict[str, str], campaign_id: uuid.UUID, requests: int
) -> dict[str, list[float]]:
    spent: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=base, headers=who, timeout=60) as client:
        for name, path in (("results", "results"), ("daily", "results/daily")):
            url = f"/api/v1/admin/campaigns/{campaign_id}/{path}"
            first = await client.get(url)
            first.raise_for_status()
            if name == "results":
                body = first.json()
                print(
                    f"results: {body['assigned']:,} players, {body['conversions']:,} "
                    f"conversions, {len(body['variants'])} variants, sample-ratio p "
                    f"{body['sampleRatio']['pValue']}"
                )

            async def get(url: str = url) -> None:
                (await client.get(url)).raise_for_status()

            spent[name] = await timed(get, requests)
    return spent


async def statements(url: str, campaign_id: uuid.UUID, times: int) -> dict[str, list[float]]:
    conn = await asyncpg.connect(url)
    try:
        counted = await conn.fetch(COUNTS_GROUP_BY, campaign_id)
        logged = await conn.fetch(LOG_GROUP_BY, campaign_id)
        assert sorted(map(tuple, counted)) == sorted(map(tuple, logged)), (counted, logged)
        return {
            "log": await timed(lambda: conn.fetch(LOG_GROUP_BY, campaign_id), times),
            "counts": await timed(lambda: conn.fetch(COUNTS_GROUP_BY, campaign_id), times),
        }
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000, help="log rows of the campaign")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per route")
    args = parser.parse_args()
    server = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"gp_bench_results_{os.getpid()}"
    url = with_database(server, name)

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(url)
        print(f"seeding {args.rows:,} log rows (+{args.rows // 5:,} in another campaign)...")
        campaign_id, seeded = asyncio.run(seed(url, args.rows))
        load = os.getloadavg()[0]
        with gameportal_uvicorn(url) as base:
            who = marketer_token(base, url)
            http = asyncio.run(over_http(base, who, campaign_id, args.requests))
        sql = asyncio.run(statements(url, campaign_id, 10))
        writes = asyncio.run(write_costs(url, single=2000, bulk=100_000))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    print(
        f"\nliveops results benchmark: {args.rows:,} log rows in the campaign, "
        f"1-minute load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    print(
        f"seeding {args.rows:,} rows in one INSERT, counted by the triggers: "
        f"{seeded['seed_seconds']:.1f} s"
    )
    for route, label in (("results", "GET …/results"), ("daily", "GET …/results/daily")):
        mid = statistics.median(http[route])
        verdict = "ok" if mid < TARGET_MS else "MISSED"
        print(f"{label:<34} {summary(http[route])}  target < {TARGET_MS:.0f} ms  {verdict}")
    print(f"{'SQL: GROUP BY over the log':<34} {summary(sql['log'])}  (what the counts replace)")
    print(f"{'SQL: GROUP BY over the counts':<34} {summary(sql['counts'])}")
    print(
        f"one-row INSERT (a new assignment), server time: {writes['off']:.0f} µs without the "
        f"triggers, {writes['on']:.0f} µs with them (+{writes['on'] - writes['off']:.0f} µs)"
    )
    print(
        f"100,000-row INSERT, per row: {writes['bulk_off']:.1f} µs without the triggers, "
        f"{writes['bulk_on']:.1f} µs with them"
    )


if __name__ == "__main__":
    main()
