"""GET /api/v1/campaigns/active beside its ceilings, measured in one run on this machine.

    .venv/bin/python benchmarks/liveops.py [--seconds 10] [--rounds 3]

The database holds 100 active campaigns with 10,000 IP ranges in all (IPv4 and IPv6, from
public address space): 90 campaigns of about 111 ranges each, one of which also holds
127.0.0.0/8 (so the benchmark's loopback client is found through the range index), and 10
without ranges, 5 of them for everyone (two in one exclusion group) and 5 for countries a
loopback client is not in. Each campaign has two variants.

Paths, each measured right after its ceiling, round after round, on one API process
straight under uvicorn (1 worker, uvloop, httptools, as `serve` runs it):

- a returning logged-in player (assigned already) beside the same process's
  authenticated GET /api/v1/me: target >= 0.6x (the evaluation and the sticky assignment
  add no database round trip: the session check reads the assignments too);
- a returning anonymous visitor (X-Anonymous-Id) beside a bare FastAPI hello endpoint:
  target >= 0.3x.

p50 and p99 are printed for each. Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import random
import statistics
import time
import uuid
from collections import defaultdict

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
from gameportal.kit.ids import new_id

PASSWORD = "violet-kettle-harbour-93"
CAMPAIGNS = 100
RANGED = 90
RANGES = 10_000


def _ranges(rng: random.Random, count: int) -> list[str]:
    """Distinct public networks, about a quarter IPv6."""
    found: set[str] = set()
    while len(found) < count:
        if rng.random() < 0.25:
            top = (0x2000 | rng.getrandbits(12)) << 112 | rng.getrandbits(32) << 80
            net: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.IPv6Network(
                (top, 48), strict=False
            )
        else:
            net = ipaddress.IPv4Network((rng.randrange(11 << 24, 223 << 24), 24), strict=False)
        if net.is_global:
            found.add(str(net))
    return sorted(found)


async def seed(url: str) -> None:
    rng = random.Random(12)
    conn = await asyncpg.connect(plain_url(url))
    try:
        await conn.set_type_codec("jsonb", encoder=_json, decoder=str, schema="pg_catalog")
        networks = _ranges(rng, RANGES - 1)
        per = -(-len(networks) // RANGED)
        async with conn.transaction():
            for n in range(CAMPAIGNS):
                variants = [new_id(), new_id()]
                for i, variant in enumerate(variants):
                    await conn.execute(
                        "INSERT INTO ab_rules (id, name, rule) VALUES ($1, $2, $3)",
                        variant,
                        f"bench {n}.{i}",
                        {"weight": 1, "payload": {"campaign": n, "variant": i, "price": 4.99}},
                    )
                targeting: dict[str, object] = {}
                ranges: list[str] = []
                group = None
                if n < RANGED:
                    ranges = networks[n * per : (n + 1) * per]
                    if n == 0:
                        ranges = [*ranges, "127.0.0.0/8"]
                    targeting["ipRanges"] = ranges
                elif n >= CAMPAIGNS - 5:
                    targeting["countries"] = ["GB", "DE", "FR"]
                elif n >= CAMPAIGNS - 7:
                    group = "bench"
                campaign = new_id()
                await conn.execute(
                    "INSERT INTO campaigns (id, name, targeting_rules, ab_variants, hash_seed, "
                    "exclusion_group, active) VALUES ($1, $2, $3, $4, $5, $6, true)",
                    campaign,
                    f"bench {n}",
                    targeting,
                    variants,
                    str(campaign),
                    group,
                )
                await conn.copy_records_to_table(
                    "campaign_ip_ranges",
                    records=[(campaign, ipaddress.ip_network(r)) for r in ranges],
                    columns=["campaign_id", "ip_range"],
                )
        await conn.execute("SELECT pg_notify('gameportal_liveops_changed', 'bench')")
        total = await conn.fetchval("SELECT count(*) FROM campaign_ip_ranges")
        print(f"seeded {CAMPAIGNS} campaigns with {total} IP ranges", flush=True)
    finally:
        await conn.close()


def _json(value: object) -> str:
    import orjson

    return orjson.dumps(value).decode()


def player_and_visitor(base: str) -> tuple[dict[str, str], dict[str, str], int]:
    """A logged-in player and a visitor, each assigned already (their first answers)."""
    with httpx.Client(base_url=base, timeout=30) as client:
        email = f"liveops-bench-{int(time.time())}@example.com"
        made = client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Bench"}
        )
        made.raise_for_status()
        player = {"Authorization": f"Bearer {made.json()['accessToken']}"}
        visitor = {"X-Anonymous-Id": str(uuid.uuid4())}
        for headers in (player, visitor):
            first = client.get("/api/v1/campaigns/active", headers=headers)
            first.raise_for_status()
        again = client.get("/api/v1/campaigns/active", headers=player)
        # The same number for both (their exclusion-group member may differ).
        assert len(again.json()["items"]) == len(first.json()["items"])
        return player, visitor, len(first.json()["items"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="each path measured this often")
    args = parser.parse_args()
    secs = args.seconds
    runs: dict[str, list[WrkResult]] = defaultdict(list)
    ratios: dict[str, list[float]] = defaultdict(list)
    loads = [os.getloadavg()[0]]

    with gameportal_server_and_url() as (_, database_url):
        asyncio.run(seed(database_url))
        with hello_server() as hello, gameportal_uvicorn(database_url) as base:
            player, visitor, shown = player_and_visitor(base)
            print(f"each answer lists {shown} campaigns", flush=True)
            url = f"{base}/api/v1/campaigns/active"
            for n in range(args.rounds):
                print(f"round {n + 1}: load average {os.getloadavg()[0]:.2f}", flush=True)
                me = wrk(f"{base}/api/v1/me", seconds=secs, headers=player)
                as_player = wrk(url, seconds=secs, headers=player)
                ceiling = wrk(f"{hello}/hello", seconds=secs)
                as_visitor = wrk(url, seconds=secs, headers=visitor)
                for name, result in (
                    ("me", me),
                    ("player", as_player),
                    ("hello", ceiling),
                    ("visitor", as_visitor),
                ):
                    runs[name].append(result)
                ratios["player / GET /me"].append(as_player.rps / me.rps)
                ratios["visitor / hello"].append(as_visitor.rps / ceiling.rps)
                loads.append(os.getloadavg()[0])

    m = {name: median_result(results) for name, results in runs.items()}
    print(
        f"\nlive-ops benchmark: {CAMPAIGNS} active campaigns, {RANGES} IP ranges; "
        f"{args.rounds} rounds x {secs}s per path, medians; wrk on loopback, 32 connections; "
        "uvicorn with uvloop and httptools, 1 process"
    )
    print(
        "1-minute load average at the start and after each round: "
        + ", ".join(f"{x:.2f}" for x in loads)
        + "\n"
    )
    print(m["me"].line("GET /api/v1/me (authenticated)"))
    print(m["player"].line("campaigns/active, returning player"))
    print(m["hello"].line("ceiling: FastAPI hello"))
    print(m["visitor"].line("campaigns/active, returning visitor"))
    print()
    for label, target in (("player / GET /me", 0.6), ("visitor / hello", 0.3)):
        values = ratios[label]
        mid = statistics.median(values)
        each = ", ".join(f"{v:.2f}" for v in values)
        verdict = "ok" if mid >= target else "MISSED"
        print(f"{label:<20} {mid:5.2f}  (rounds: {each})  target {target}  {verdict}")


if __name__ == "__main__":
    main()
