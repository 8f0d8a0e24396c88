"""Leaderboard reads at 10k, 100k and 1M players on one game, beside their ceilings in the
same run on this machine.

    .venv/bin/python benchmarks/leaderboard.py [--sizes 10000,100000,1000000]
        [--seconds 10] [--rounds 3]

For each size the players (and their all-time scores) are added with COPY, then a fresh
API process is started (uvicorn, 1 worker, uvloop, httptools, as `serve` runs it) and:

- restart: seconds from starting the process to /readyz, and to its first answer of
  `leaderboard/me` (which loads the board);
- memory: the process's resident set before and after that first answer, per player;
- `GET /games/{gameId}/leaderboard?limit=100` (top 100, public) beside a bare FastAPI
  hello endpoint on the same uvicorn settings; target >= 0.8x hello;
- `GET /games/{gameId}/leaderboard/me` for a player ranked about N/2, beside the same
  process's authenticated `GET /api/v1/me` (the same request without the rank lookup);
  target >= 0.9x /me, with p99 under 20 ms.

Each path is measured right after its ceiling, round after round, so that a shared
machine's slow minute hits both sides of a ratio alike. Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from _harness import (
    WrkResult,
    gameportal_server_and_url,
    gameportal_uvicorn,
    hello_server,
    median_result,
    wrk,
)

from gameportal.db import plain_url

PASSWORD = "violet-kettle-harbour-93"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
CHUNK = 100_000


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(plain_url(url))


async def make_game(url: str) -> uuid.UUID:
    conn = await _connect(url)
    try:
        game_id: uuid.UUID = await conn.fetchval(
            """
            INSERT INTO content (id, type, title, slug, format, content, status, published_at)
            VALUES (gen_random_uuid(), 'GAME', 'Bench game', $1, 'MARKDOWN', '', 'PUBLISHED',
                    now())
            RETURNING id
            """,
            f"bench-game-{uuid.uuid4().hex[:8]}",
        )
        return game_id
    finally:
        await conn.close()


async def seed(url: str, game_id: uuid.UUID, first: int, count: int, rng: random.Random) -> None:
    """`count` more players with all-time scores, in chunks of COPY."""
    conn = await _connect(url)
    try:
        for start in range(first, first + count, CHUNK):
            n = min(CHUNK, first + count - start)
            ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(n)]
            await conn.copy_records_to_table(
                "users",
                records=[
                    (u, f"lb-{start + i}@bench.example", f"Player {start + i}", "!")
                    for i, u in enumerate(ids)
                ],
                columns=["id", "email", "name", "password_hash"],
            )
            await conn.copy_records_to_table(
                "user_progress",
                records=[
                    (
                        uuid.UUID(int=rng.getrandbits(128), version=4),
                        u,
                        game_id,
                        rng.randint(1, 10_000_000),
                        T0 + timedelta(microseconds=rng.randint(0, 10**12)),
                    )
                    for u in ids
                ],
                columns=["id", "user_id", "game_id", "points", "points_reached_at"],
            )
        await conn.execute("ANALYZE users; ANALYZE user_progress")
    finally:
        await conn.close()


async def place_in_the_middle(url: str, game_id: uuid.UUID, user_id: uuid.UUID, n: int) -> int:
    """Give the caller the score of the player ranked n/2 (reached later: just below)."""
    conn = await _connect(url)
    try:
        points: int = await conn.fetchval(
            "SELECT points FROM user_progress WHERE game_id = $1 AND user_id <> $2 "
            "ORDER BY points DESC OFFSET $3 LIMIT 1",
            game_id,
            user_id,
            n // 2,
        )
        await conn.execute(
            """
            INSERT INTO user_progress (id, user_id, game_id, points, points_reached_at)
            VALUES (gen_random_uuid(), $1, $2, $3, now())
            ON CONFLICT (user_id, game_id) DO UPDATE
            SET points = EXCLUDED.points, points_reached_at = EXCLUDED.points_reached_at
            """,
            user_id,
            game_id,
            points,
        )
        return points
    finally:
        await conn.close()


def server_pid(base: str) -> int:
    """The uvicorn process serving `base` (found by its --port argument)."""
    port = base.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"uvicorn" in args and b"--port" in args and port.encode() in args:
            return int(entry.name)
    raise SystemExit(f"no uvicorn process on port {port}")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000", help="players, ascending")
    parser.add_argument("--seconds", type=int, default=10, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="each path measured this often")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(20261127)
    # serve and the API processes started below must sign and check the same tokens.
    os.environ.setdefault("GAMEPORTAL_SECRET_KEY", secrets.token_urlsafe(48))
    report: list[str] = []
    summary: list[str] = []
    loads = [os.getloadavg()[0]]

    with hello_server() as hello, gameportal_server_and_url() as (serve_base, database_url):
        game_id = asyncio.run(make_game(database_url))
        # A game with nobody on it: its board is read before the measured one, so that the
        # memory measured is the board's and not the first use of the code around it.
        empty_game = asyncio.run(make_game(database_url))
        email = f"bench-ranked-{int(time.time())}@example.com"
        with httpx.Client(base_url=serve_base, timeout=30) as client:
            made = client.post(
                "/api/v1/auth/register",
                json={"email": email, "password": PASSWORD, "name": "Ranked"},
            )
            made.raise_for_status()
        caller = uuid.UUID(made.json()["user"]["id"])
        seeded = 0
        for n in sizes:
            started = time.monotonic()
            asyncio.run(seed(database_url, game_id, seeded, n - seeded, rng))
            seeded = n
            asyncio.run(place_in_the_middle(database_url, game_id, caller, n))
            seeding = time.monotonic() - started
            print(f"{n} players seeded in {seeding:.1f} s", flush=True)

            runs: dict[str, list[WrkResult]] = defaultdict(list)
            ratios: dict[str, list[float]] = defaultdict(list)
            launched = time.monotonic()
            with gameportal_uvicorn(database_url) as api:
                ready = time.monotonic() - launched
                pid = server_pid(api)
                with httpx.Client(base_url=api, timeout=120) as client:
                    login = client.post(
                        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
                    )
                    login.raise_for_status()
                    bearer = {"Authorization": f"Bearer {login.json()['accessToken']}"}
                    for path in ("leaderboard/me", "leaderboard?limit=100"):
                        warm = client.get(f"/api/v1/games/{empty_game}/{path}", headers=bearer)
                        warm.raise_for_status()
                    rss_before = rss_bytes(pid)
                    # The first rank answer: the board is read now (the login's own time,
                    # an argon2 hash, is left out).
                    asked = time.monotonic()
                    mine = client.get(f"/api/v1/games/{game_id}/leaderboard/me", headers=bearer)
                    mine.raise_for_status()
                    first_rank = time.monotonic() - asked
                    rank = mine.json()["rank"]
                    rss_after = rss_bytes(pid)
                    top = client.get(f"/api/v1/games/{game_id}/leaderboard?limit=100")
                    top.raise_for_status()
                board_url = f"{api}/api/v1/games/{game_id}/leaderboard?limit=100"
                me_url = f"{api}/api/v1/me"
                rank_url = f"{api}/api/v1/games/{game_id}/leaderboard/me"
                for r in range(args.rounds):
                    print(f"  round {r + 1}: load average {os.getloadavg()[0]:.2f}", flush=True)
                    ceiling = wrk(f"{hello}/hello", seconds=args.seconds)
                    board = wrk(board_url, seconds=args.seconds)
                    me = wrk(me_url, seconds=args.seconds, headers=bearer)
                    ranked = wrk(rank_url, seconds=args.seconds, headers=bearer)
                    for name, result in (
                        ("hello", ceiling),
                        ("top100", board),
                        ("me", me),
                        ("rank", ranked),
                    ):
                        runs[name].append(result)
                    ratios["top 100 / hello"].append(board.rps / ceiling.rps)
                    ratios["me rank / GET /me"].append(ranked.rps / me.rps)
                    loads.append(os.getloadavg()[0])
                rss_end = rss_bytes(pid)

            m = {name: median_result(results) for name, results in runs.items()}
            per_player = (rss_after - rss_before) / n
            report.append(
                f"\n{n:,} players (caller ranked {rank:,}; seeded in {seeding:.1f} s):\n"
                f"  API process ready {ready:.2f} s after start; first rank answer "
                f"{first_rank:.2f} s later (board read): ranks again {ready + first_rank:.2f} s "
                "after a restart (+ the login)\n"
                f"  resident memory {rss_before / 2**20:.0f} MiB before the board, "
                f"{rss_after / 2**20:.0f} MiB after: {per_player:.0f} bytes per player; "
                f"{rss_end / 2**20:.0f} MiB after the runs\n"
                + "\n".join(
                    "  " + m[name].line(label)
                    for name, label in (
                        ("hello", "ceiling: FastAPI hello"),
                        ("top100", "leaderboard?limit=100"),
                        ("me", "GET /api/v1/me (authenticated)"),
                        ("rank", "leaderboard/me (rank ~ N/2)"),
                    )
                )
            )
            top_ratio = statistics.median(ratios["top 100 / hello"])
            rank_ratio = statistics.median(ratios["me rank / GET /me"])
            p99 = m["rank"].p99_ms
            summary.append(
                f"{n:>9,}  top 100 / hello {top_ratio:5.2f} (target 0.8 "
                f"{'ok' if top_ratio >= 0.8 else 'MISSED'}; rounds "
                + ", ".join(f"{v:.2f}" for v in ratios["top 100 / hello"])
                + f")   me rank / GET /me {rank_ratio:5.2f} (target 0.9 "
                f"{'ok' if rank_ratio >= 0.9 else 'MISSED'}; rounds "
                + ", ".join(f"{v:.2f}" for v in ratios["me rank / GET /me"])
                + f")   rank p99 {p99:.1f} ms (target < 20 {'ok' if p99 < 20 else 'MISSED'})"
                f"   memory {per_player:.0f} B/player   ranks after restart "
                f"{ready + first_rank:.2f} s"
            )

    print(
        f"\nleaderboard benchmark: {args.rounds} rounds x {args.seconds}s per path, medians; "
        "wrk on loopback, 32 connections; uvicorn 1 worker with uvloop and httptools"
    )
    print(
        "1-minute load average at the start and after each round: "
        + ", ".join(f"{x:.2f}" for x in loads)
    )
    print("\n".join(report))
    print("\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
