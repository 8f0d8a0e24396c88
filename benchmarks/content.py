"""Public content reads under load, beside a bare FastAPI hello endpoint in the same run.

With 10,000 published items in a fresh database on the PostgreSQL server named by
GAMEPORTAL_DATABASE_URL:

- GET /api/v1/content/{type}/{slug} answered 304 (If-None-Match), random items;
- the same read answered 200, from the in-process cache, and with the cache turned off
  (one query per request);
- the filtered list (type + tag, 20 items), cached and uncached;
- full-text search (`q`, a random word), uncached: its p99 is the figure that matters.

    GAMEPORTAL_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python benchmarks/content.py [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import asyncpg
import httpx
from _harness import HERE, WrkResult, gameportal_server, hello_server, wrk

ITEMS = 10_000
TYPES = ["GAME", "NEWS", "ANNOUNCEMENT", "FAQ"]
TAGS = [f"tag{n}" for n in range(40)]
# A made-up vocabulary of 1,000 words, drawn with a Zipf-like (log-uniform) skew: a few
# words are everywhere, most are rare, as in real text.
SYLLABLES = ["ka", "lo", "mi", "ra", "to", "ne", "su", "vi", "de", "po"]
WORDS = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES]


async def seed(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO content (id, type, title, slug, locale, format, content, html, tags,
                                 status, published_at, search_config)
            SELECT gen_random_uuid(), ($1::text[])[1 + i % 4],
                   initcap(w1) || ' ' || w2 || ' ' || i,
                   'item-' || i, 'en', 'MARKDOWN', body, '<p>' || body || '</p>',
                   ARRAY[($2::text[])[1 + i % 40], ($2::text[])[1 + (i * 7) % 40]],
                   'PUBLISHED', now() - i * interval '1 minute', 'english'
            FROM generate_series(1, $4) AS i,
                 LATERAL (SELECT ($3::text[])[1 + (i * 13) % cardinality($3::text[])] AS w1,
                                 ($3::text[])[1 + (i * 17) % cardinality($3::text[])] AS w2) w,
                 LATERAL (SELECT string_agg(
                                     ($3::text[])[floor(power(cardinality($3::text[]),
                                                              random() + k * 0 + i * 0))::int],
                                     ' ') AS body
                          FROM generate_series(1, 60) AS k) b
            """,
            TYPES,
            TAGS,
            WORDS,
            ITEMS,
        )
        # What autovacuum would have done by now: GIN's pending list merged, statistics.
        await conn.execute("VACUUM ANALYZE content")
    finally:
        await conn.close()


async def fresh_database(server_url: str, name: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


def write_lines(lines: list[str]) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
    return handle.name


def slug_paths(base: str, count: int = 2000) -> tuple[str, str]:
    """Files of random item paths, with and without their current ETags."""
    picks = random.Random(7).sample(range(1, ITEMS + 1), count)
    plain, conditional = [], []
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in picks:
            path = f"/api/v1/content/{TYPES[i % 4].lower()}/item-{i}"
            response = client.get(path)
            response.raise_for_status()
            plain.append(path)
            conditional.append(f"{path}\t{response.headers['etag']}")
    return write_lines(plain), write_lines(conditional)


def list_paths() -> str:
    return write_lines(
        [f"/api/v1/content?type={t}&tag={tag}&limit=20" for t in TYPES for tag in TAGS]
    )


def search_paths() -> str:
    rng = random.Random(11)
    return write_lines([f"/api/v1/content?q={rng.choice(WORDS)}&limit=20" for _ in range(500)])


def paced_paths(base: str, paths: list[str], *, seconds: float, rate: float = 50.0) -> WrkResult:
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    with httpx.Client(base_url=base, timeout=10) as client:
        next_at = started
        for n in range(int(seconds * rate)):
            t0 = time.perf_counter()
            if client.get(paths[n % len(paths)]).status_code != 200:
                errors += 1
            latencies.append((time.perf_counter() - t0) * 1000)
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.perf_counter()))
    latencies.sort()
    return WrkResult(
        rps=len(latencies) / (time.perf_counter() - started),
        p50_ms=latencies[len(latencies) // 2],
        p99_ms=latencies[int(len(latencies) * 0.99)],
        requests=len(latencies),
        errors=errors,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="each path measured this often")
    args = parser.parse_args()
    server_url = os.environ.get("GAMEPORTAL_DATABASE_URL")
    if not server_url:
        raise SystemExit("set GAMEPORTAL_DATABASE_URL to a PostgreSQL server to use")
    url = asyncio.run(fresh_database(server_url, "gameportal_bench_content"))
    env = {"GAMEPORTAL_DATABASE_URL": url, "GAMEPORTAL_LOG_LEVEL": "WARNING"}
    script = HERE / "paths.lua"
    runs: dict[str, list[WrkResult]] = defaultdict(list)
    ratios: dict[str, list[float]] = defaultdict(list)

    with (
        hello_server() as hello,
        gameportal_server(env) as cached,
        gameportal_server({**env, "GAMEPORTAL_CONTENT_CACHE_ENTRIES": "0"}) as uncached,
    ):
        asyncio.run(seed(url))
        plain_file, conditional_file = slug_paths(cached)
        lists_file, search_file = list_paths(), search_paths()
        secs = args.seconds

        def measure(base: str, paths: str, *, allow_3xx: bool = False) -> WrkResult:
            return wrk(
                f"{base}/",
                seconds=secs,
                script=script,
                env={"BENCH_PATHS_FILE": paths},
                allow_3xx=allow_3xx,
            )

        for _ in range(args.rounds):
            ceiling = wrk(f"{hello}/hello", seconds=secs)
            runs["hello (ceiling)"].append(ceiling)
            for name, result in (
                ("item 304 (If-None-Match)", measure(cached, conditional_file, allow_3xx=True)),
                ("item 200, in-process cache", measure(cached, plain_file)),
                ("item 200, cache off", measure(uncached, plain_file)),
                ("list type+tag, cached", measure(cached, lists_file)),
                ("list type+tag, cache off", measure(uncached, lists_file)),
                ("search q, cached", measure(cached, search_file)),
                ("search q, cache off", measure(uncached, search_file)),
            ):
                runs[name].append(result)
                ratios[name].append(result.rps / ceiling.rps)
        # What one searching player sees while searches arrive at a steady 50/s (open
        # loop), every one a database query: the latency target is about this.
        paced = paced_paths(uncached, Path(search_file).read_text().split(), seconds=secs)
        for path in (plain_file, conditional_file, lists_file, search_file):
            Path(path).unlink()

    print(f"\n{ITEMS:,} published items; {args.rounds} rounds of {args.seconds} s, 32 connections")
    print(paced.line("search q, cache off, 50/s paced"))
    for name, results in runs.items():
        best = sorted(results, key=lambda r: r.rps)[len(results) // 2]
        ratio = statistics.median(ratios[name]) if name in ratios else 1.0
        print(f"{best.line(name)}   x{ratio:.2f} of hello")


if __name__ == "__main__":
    main()
