"""Game servers' progress updates beside the ceiling, measured in one run on this machine.

    .venv/bin/python benchmarks/progress.py [--seconds 10] [--rounds 3] [--players 10000]

Ceiling: a bare FastAPI hello endpoint on the same uvicorn settings (1 worker, uvloop,
httptools). Measured: `POST /api/v1/games/{gameId}/players/{userId}/progress` from one
API key, each request for the next of `--players` players (each with progress already,
so every update is the upsert's update branch) with its own idempotency key, points,
experience and a stat counter: the one-statement path with its week and month scores and
the leaderboards' NOTIFY. Target (issue 11): at least 0.3x hello.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections import defaultdict

import asyncpg
import httpx
from _harness import (
    HERE,
    WrkResult,
    gameportal_server_and_url,
    hello_server,
    median_result,
    wrk,
)

from gameportal.db import plain_url

PASSWORD = "violet-kettle-harbour-93"


async def seed_players(database_url: str, count: int) -> list[str]:
    """`count` players straight into the table (registration hashes a password each)."""
    ids = [uuid.uuid4() for _ in range(count)]
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        await conn.execute(
            """
            INSERT INTO users (id, email, name, password_hash)
            SELECT i, 'bench-' || i || '@example.com', 'Bench player', 'not-a-hash'
            FROM unnest($1::uuid[]) AS i
            """,
            ids,
        )
    finally:
        await conn.close()
    return [str(i) for i in ids]


async def analyze(database_url: str) -> None:
    """VACUUM ANALYZE after the bulk seed, as autovacuum would do soon after on a real
    server: measured right after it, the first round ran with no statistics for the new
    rows (PostgreSQL's CPU per update was 2-3x that of later rounds)."""
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def make_admin(database_url: str, user_id: str) -> None:
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        await conn.execute(
            "UPDATE users SET roles = ARRAY['user','admin'] WHERE id = $1", uuid.UUID(user_id)
        )
    finally:
        await conn.close()


def game_with_key(base: str, database_url: str) -> tuple[str, str]:
    """A published GAME and an API key for it, made through the API as an administrator."""
    with httpx.Client(base_url=base, timeout=30) as client:
        email = f"bench-admin-{int(time.time())}@example.com"
        made = client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "name": "Bench admin"},
        )
        made.raise_for_status()
        asyncio.run(make_admin(database_url, made.json()["user"]["id"]))
        token = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        admin = {"Authorization": f"Bearer {token.json()['accessToken']}"}
        game = client.post(
            "/api/v1/content", json={"type": "GAME", "title": "Bench game"}, headers=admin
        )
        game.raise_for_status()
        game_id = game.json()["id"]
        client.post(f"/api/v1/content/{game_id}/publish", headers=admin).raise_for_status()
        key = client.post(
            f"/api/v1/admin/games/{game_id}/api-keys", json={"name": "bench"}, headers=admin
        )
        key.raise_for_status()
        return game_id, key.json()["key"]


def warm(base: str, game_id: str, key: str, players: list[str]) -> None:
    """Every player's first update (the row's insert): the measured ones all update."""

    async def run() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            gate = asyncio.Semaphore(32)

            async def one(player: str) -> None:
                async with gate:
                    r = await client.post(
                        f"/api/v1/games/{game_id}/players/{player}/progress",
                        json={"pointsDelta": 1, "idempotencyKey": f"warm-{player}"},
                        headers={"X-API-Key": key},
                    )
                    r.raise_for_status()

            await asyncio.gather(*(one(p) for p in players))

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="each path measured this often")
    parser.add_argument("--players", type=int, default=10_000, help="players updated in turn")
    args = parser.parse_args()
    runs: dict[str, list[WrkResult]] = defaultdict(list)
    ratios: list[float] = []
    loads = [os.getloadavg()[0]]

    with hello_server() as hello, gameportal_server_and_url() as (base, database_url):
        game_id, key = game_with_key(base, database_url)
        players = asyncio.run(seed_players(database_url, args.players))
        warm(base, game_id, key, players)
        asyncio.run(analyze(database_url))
        players_file = HERE / f".bench-players-{os.getpid()}.txt"
        players_file.write_text("\n".join(players))
        try:
            for n in range(args.rounds):
                print(f"round {n + 1}: load average {os.getloadavg()[0]:.2f}", flush=True)
                ceiling = wrk(f"{hello}/hello", seconds=args.seconds)
                updates = wrk(
                    f"{base}/api/v1/games",
                    seconds=args.seconds,
                    script=HERE / "progress.lua",
                    env={
                        "BENCH_PLAYERS_FILE": str(players_file),
                        "BENCH_GAME": game_id,
                        "BENCH_KEY": key,
                        "BENCH_RUN": f"r{n}-{uuid.uuid4().hex[:8]}",
                    },
                )
                runs["hello"].append(ceiling)
                runs["updates"].append(updates)
                ratios.append(updates.rps / ceiling.rps)
                loads.append(os.getloadavg()[0])
        finally:
            players_file.unlink(missing_ok=True)

    m = {name: median_result(results) for name, results in runs.items()}
    print(
        f"\nprogress benchmark: {args.rounds} rounds x {args.seconds}s per path, medians; "
        f"wrk on loopback, 32 connections; {args.players} players, one game, one API key"
    )
    print(
        "1-minute load average at the start and after each round: "
        + ", ".join(f"{x:.2f}" for x in loads)
        + "\n"
    )
    print(m["hello"].line("ceiling: FastAPI hello"))
    print(m["updates"].line("POST …/players/{id}/progress"))
    mid = statistics.median(ratios)
    each = ", ".join(f"{v:.2f}" for v in ratios)
    verdict = "ok" if mid >= 0.3 else "MISSED"
    print(f"\n{'progress updates / hello':<36} {mid:5.2f}  (rounds: {each})  target 0.3  {verdict}")


if __name__ == "__main__":
    main()
