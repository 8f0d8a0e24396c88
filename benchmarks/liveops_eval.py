"""Live-ops evaluation cost per campaign beside GrowthBook's Python SDK, in one run.

    .venv/bin/pip install -e '.[bench]'    # growthbook, the reference; not used by gameportal
    .venv/bin/python benchmarks/liveops_eval.py [--requests 2000] [--rounds 5]

In process, no server or database: 100 active campaigns holding 10,000 IP ranges in all
(IPv4 and IPv6), each with countries, device types, languages, a schedule, for some a
segment on player progress, 2-4 weighted variants and a coverage below 1. Per request:

- gameportal: one `IpRangeIndex.campaigns_for` lookup, then for each campaign
  `targeting.matches` and, when it matches, `assignment.new_assignment` (the cost a new
  player pays; a returning one skips the hash);
- GrowthBook: the same campaigns as 100 features, each a force rule (a QA override on the
  player id, never hit here, as a kill switch or QA list would be) and then an experiment
  rule whose condition holds the same targeting (country, deviceType, languages, the
  campaigns whose ranges hold the IP, the schedule on an ISO `now`, level/points/
  achievement) with the same coverage, weights and seed, hash version 2; one `GrowthBook`
  instance, `set_attributes` per request, `eval_feature` per feature. GrowthBook has no
  CIDR operator, so it is given the index's answer as an attribute (its lookup is not
  counted on either side, and printed apart).

Two request mixes: `mixed` (addresses inside some campaign's ranges or not, random
countries, devices, languages, logged in or not: most campaigns fail a rule) and `all
match` (every campaign matches, every one assigns: the worst case). Figures are medians
of `--rounds`, in microseconds per campaign evaluated; the two engines' answers (which
variant, or none) are compared for every request and campaign and must all agree.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from growthbook import GrowthBook

from gameportal.liveops.assignment import new_assignment
from gameportal.liveops.ipranges import IpRangeIndex
from gameportal.liveops.targeting import (
    Campaign,
    Facts,
    ProgressFacts,
    Segment,
    Variant,
    matches,
)

CAMPAIGNS = 100
RANGES = 10_000
COUNTRIES = ["DE", "AT", "CH", "FR", "US", "GB", "BR", "PT", "ES", "IT", "JP", "PL"]
DEVICES = ["MOBILE", "DESKTOP", "OTHER"]
LANGUAGES = ["de", "en", "fr", "pt", "es", "it", "ja", "pl"]
GAME = uuid.UUID("0190d5a8-0000-7000-8000-00000000a001")
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SHARED_V4 = "198.18.0.0/15"  # every campaign holds it: the `all match` addresses
SHARED_V6 = "2001:db8:ffff::/48"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def build_campaigns(rng: random.Random) -> tuple[list[Campaign], list[tuple[uuid.UUID, str]]]:
    campaigns: list[Campaign] = []
    ranges: list[tuple[uuid.UUID, str]] = []
    per_campaign = RANGES // CAMPAIGNS
    for i in range(CAMPAIGNS):
        cid = uuid.UUID(int=(0x0190D5A8 << 96) | i)
        own = [SHARED_V4, SHARED_V6]
        while len(own) < per_campaign:
            if len(own) % 4 == 0:
                net6 = IPv6Network(((0x2001 << 112) | (rng.getrandbits(32) << 80), 48))
                own.append(str(net6))
            else:
                prefix = rng.randrange(16, 29)
                own.append(str(IPv4Network((rng.getrandbits(32), prefix), strict=False)))
        ranges += [(cid, cidr) for cidr in own]
        count = rng.randrange(2, 5)
        variants = tuple(
            Variant(
                id=uuid.UUID(int=(0x0190D5A9 << 96) | (i << 8) | v),
                weight=float(rng.randrange(1, 10)),
                payload={"price": 4.99 - v},
                content_ids=(),
                active=True,
                start_at=None,
                end_at=None,
            )
            for v in range(count)
        )
        segment = (
            Segment(GAME, min_level=rng.randrange(1, 5), has_achievement="first-win")
            if i % 3 == 0
            else None
        )
        campaigns.append(
            Campaign(
                id=cid,
                name=f"campaign {i}",
                hash_seed=str(cid),
                coverage=rng.choice([1.0, 0.9, 0.5]),
                exclusion_group=None,
                active=True,
                start_at=NOW - timedelta(days=rng.randrange(1, 30)),
                end_at=NOW + timedelta(days=rng.randrange(1, 30)),
                countries=frozenset(rng.sample(COUNTRIES, 6)) | {"DE"},
                device_types=frozenset(rng.sample(DEVICES, 2)) | {"MOBILE"},
                languages=frozenset(rng.sample(LANGUAGES, 3)) | {"de"},
                has_ip_ranges=True,
                segment=segment,
                variants=variants,
                content_ids=(),
            )
        )
    return campaigns, ranges


def growthbook_features(campaigns: list[Campaign]) -> dict[str, Any]:
    features: dict[str, Any] = {}
    for c in campaigns:
        condition: dict[str, Any] = {
            "ipCampaigns": {"$in": [str(c.id)]},
            "country": {"$in": sorted(c.countries or ())},
            "deviceType": {"$in": sorted(c.device_types or ())},
            "languages": {"$in": sorted(c.languages or ())},
            "now": {"$gte": _iso(c.start_at or NOW), "$lt": _iso(c.end_at or NOW)},
        }
        if c.segment is not None:
            condition["level"] = {"$gte": c.segment.min_level}
            condition["achievements"] = {"$elemMatch": {"$eq": c.segment.has_achievement}}
        total = sum(v.weight for v in c.variants)
        features[str(c.id)] = {
            "defaultValue": None,
            "rules": [
                {"condition": {"id": {"$in": ["qa-tester-1", "qa-tester-2"]}}, "force": 0},
                {
                    "key": str(c.id),
                    "condition": condition,
                    "variations": list(range(len(c.variants))),
                    "weights": [v.weight / total for v in c.variants],
                    "coverage": c.coverage,
                    "seed": c.hash_seed,
                    "hashVersion": 2,
                    "hashAttribute": "id",
                },
            ],
        }
    return features


def _address_in(cidr: str, rng: random.Random) -> IPv4Address | IPv6Address:
    net = IPv6Network(cidr) if ":" in cidr else IPv4Network(cidr)
    return net.network_address + rng.randrange(net.num_addresses)


def build_requests(
    rng: random.Random, ranges: list[tuple[uuid.UUID, str]], count: int, all_match: bool
) -> list[tuple[str, Facts]]:
    requests = []
    for n in range(count):
        logged_in = all_match or n % 2 == 0
        key = str(uuid.UUID(int=rng.getrandbits(128)))
        progress = (
            {GAME: ProgressFacts(level=5, points=100, achievements=frozenset({"first-win"}))}
            if logged_in
            else {}
        )
        if all_match:
            ip = _address_in(rng.choice([SHARED_V4, SHARED_V6]), rng)
            facts = Facts(ip, "DE", "MOBILE", ("de", "en"), NOW, progress)
        else:
            choice = rng.random()
            if choice < 0.6:
                ip = _address_in(rng.choice(ranges)[1], rng)
            elif choice < 0.9:
                ip = IPv4Address(rng.getrandbits(32))
            else:
                ip = IPv6Address(rng.getrandbits(128))
            facts = Facts(
                ip,
                rng.choice(COUNTRIES),
                rng.choice(DEVICES),
                tuple(rng.sample(LANGUAGES, rng.randrange(1, 3))),
                NOW,
                progress,
            )
        requests.append((key if logged_in else "anon:" + key, facts))
    return requests


def gb_attributes(key: str, facts: Facts, in_ranges: frozenset[uuid.UUID]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "id": key,
        "ipCampaigns": [str(i) for i in in_ranges],
        "country": facts.country,
        "deviceType": facts.device_type,
        "languages": list(facts.languages),
        "now": _iso(facts.now),
    }
    progress = facts.progress.get(GAME)
    if progress is not None:
        attributes["level"] = progress.level
        attributes["points"] = progress.points
        attributes["achievements"] = sorted(progress.achievements)
    return attributes


def run_ours(
    campaigns: list[Campaign],
    index: IpRangeIndex,
    requests: list[tuple[str, Facts]],
    lookups: list[frozenset[uuid.UUID]],
) -> tuple[float, list[int | None]]:
    position = {v.id: i for c in campaigns for i, v in enumerate(c.variants)}
    answers: list[int | None] = []
    append = answers.append
    started = time.perf_counter()
    for (key, facts), in_ranges in zip(requests, lookups, strict=True):
        now = facts.now
        for c in campaigns:
            if matches(c, facts, c.id in in_ranges):
                v = new_assignment(c, key, now)
                append(None if v is None else position[v.id])
            else:
                append(None)
    return time.perf_counter() - started, answers


def run_growthbook(
    gb: GrowthBook,
    keys: list[str],
    requests: list[tuple[str, Facts]],
    lookups: list[frozenset[uuid.UUID]],
) -> tuple[float, list[int | None]]:
    attributes = [
        gb_attributes(key, facts, in_ranges)
        for (key, facts), in_ranges in zip(requests, lookups, strict=True)
    ]
    answers: list[int | None] = []
    append = answers.append
    started = time.perf_counter()
    for attrs in attributes:
        gb.set_attributes(attrs)
        for k in keys:
            append(gb.eval_feature(k).value)
    return time.perf_counter() - started, answers


def timed_lookups(
    index: IpRangeIndex, requests: list[tuple[str, Facts]]
) -> tuple[float, list[frozenset[uuid.UUID]]]:
    started = time.perf_counter()
    lookups = [index.campaigns_for(facts.ip) for _, facts in requests]
    return time.perf_counter() - started, lookups


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="per mix and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    rng = random.Random(12)
    campaigns, ranges = build_campaigns(rng)
    started = time.perf_counter()
    index = IpRangeIndex.build(ranges)
    build_s = time.perf_counter() - started
    gb = GrowthBook(features=growthbook_features(campaigns))
    keys = [str(c.id) for c in campaigns]

    print(
        f"liveops evaluation: {len(campaigns)} campaigns, {index.range_count:,} IP ranges, "
        f"{args.requests:,} requests per mix, {args.rounds} rounds (medians)"
    )
    print(f"IP range index built in {build_s * 1000:.1f} ms")
    mixes: list[tuple[str, bool]] = [("mixed", False), ("all match", True)]
    for name, all_match in mixes:
        ours_us: list[float] = []
        gb_us: list[float] = []
        lookup_us: list[float] = []
        matched = 0
        disagree = 0
        for r in range(args.rounds):
            requests = build_requests(random.Random(100 + r), ranges, args.requests, all_match)
            lookup_s, lookups = timed_lookups(index, requests)
            evaluations = len(requests) * len(campaigns)
            # Alternate which engine goes first, so a machine changing speed hits both.
            if r % 2 == 0:
                ours_s, ours = run_ours(campaigns, index, requests, lookups)
                gb_s, theirs = run_growthbook(gb, keys, requests, lookups)
            else:
                gb_s, theirs = run_growthbook(gb, keys, requests, lookups)
                ours_s, ours = run_ours(campaigns, index, requests, lookups)
            ours_us.append(ours_s / evaluations * 1e6)
            gb_us.append(gb_s / evaluations * 1e6)
            lookup_us.append(lookup_s / len(requests) * 1e6)
            matched += sum(a is not None for a in ours)
            disagree += sum(a != b for a, b in zip(ours, theirs, strict=True))
        total = args.rounds * args.requests * len(campaigns)
        ours_m, gb_m = statistics.median(ours_us), statistics.median(gb_us)
        print(
            f"\n{name}: {matched / total:.1%} of campaign evaluations assigned a variant; "
            f"answers {'all agree' if disagree == 0 else f'DISAGREE in {disagree:,}'} "
            f"({total:,} compared)\n"
            f"  ceiling: GrowthBook SDK   {gb_m:8.2f} us per campaign "
            f"(rounds {', '.join(f'{v:.2f}' for v in gb_us)})\n"
            f"  gameportal engine        {ours_m:8.2f} us per campaign "
            f"(rounds {', '.join(f'{v:.2f}' for v in ours_us)})  "
            f"{gb_m / ours_m:.1f}x faster\n"
            f"  IP range lookup          {statistics.median(lookup_us):8.2f} us per request "
            f"(one per request, not per campaign)"
        )
    gb.destroy()


if __name__ == "__main__":
    main()
