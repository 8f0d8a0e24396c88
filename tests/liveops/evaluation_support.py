"""Campaigns and variants written straight to the database (the admin API has its own
tests), and the app's snapshot brought up to date with them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from gameportal.kit.ids import new_id
from gameportal.liveops.snapshot import CampaignSnapshots

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36"
)
GB_IP, DE_IP, NL_IP = "81.2.69.160", "5.9.0.1", "193.0.6.139"
DE_IP6 = "2a01:4f8::1"


async def variant(
    db: asyncpg.Pool,
    *,
    weight: float = 1.0,
    payload: Any = None,
    content_ids: Sequence[uuid.UUID] = (),
    active: bool = True,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    name: str = "variant",
) -> uuid.UUID:
    rule_id = new_id()
    body = {"weight": weight, "payload": payload, "contentIds": [str(c) for c in content_ids]}
    await db.execute(
        "INSERT INTO ab_rules (id, name, rule, active, start_at, end_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        rule_id,
        name,
        body,
        active,
        start_at,
        end_at,
    )
    return rule_id


async def campaign(
    db: asyncpg.Pool,
    variants: Sequence[uuid.UUID],
    *,
    countries: Sequence[str] | None = None,
    ip_ranges: Sequence[str] = (),
    device_types: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    segment: dict[str, Any] | None = None,
    coverage: float = 1.0,
    exclusion_group: str | None = None,
    active: bool = True,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    content_ids: Sequence[uuid.UUID] = (),
) -> uuid.UUID:
    campaign_id = new_id()
    targeting: dict[str, Any] = {}
    if countries is not None:
        targeting["countries"] = list(countries)
    if ip_ranges:
        targeting["ipRanges"] = list(ip_ranges)
    if device_types is not None:
        targeting["deviceTypes"] = list(device_types)
    if languages is not None:
        targeting["languages"] = list(languages)
    if segment is not None:
        targeting["segment"] = segment
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO campaigns (id, name, targeting_rules, ab_variants, coverage, hash_seed, "
            "exclusion_group, active, start_at, end_at, content_ids) "
            "VALUES ($1, 'campaign', $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            campaign_id,
            targeting,
            list(variants),
            coverage,
            str(campaign_id),
            exclusion_group,
            active,
            start_at,
            end_at,
            list(content_ids),
        )
        for cidr in ip_ranges:
            await conn.execute(
                "INSERT INTO campaign_ip_ranges (campaign_id, ip_range) VALUES ($1, $2::cidr)",
                campaign_id,
                cidr,
            )
    return campaign_id


async def settle(app: FastAPI, within: float = 10.0) -> None:
    """The app's snapshot, read again now, with everything committed so far."""
    snapshots: CampaignSnapshots = app.state.liveops
    snapshots.reload()
    await eventually(lambda: _settled(snapshots), within=within)


async def _settled(snapshots: CampaignSnapshots) -> bool:
    return snapshots.settled


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 5.0, every: float = 0.01
) -> float:
    """Seconds until `check` held; fails after `within`."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, "not within the time allowed"
        await asyncio.sleep(every)
    return time.monotonic() - started


async def active(
    client: httpx.AsyncClient,
    headers: dict[str, str] | None = None,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
    expect: int = 200,
    **params: str,
) -> list[dict[str, Any]]:
    sent = dict(headers or {})
    if ip is not None:
        sent["X-Forwarded-For"] = ip
    if user_agent is not None:
        sent["User-Agent"] = user_agent
    response = await client.get("/api/v1/campaigns/active", headers=sent, params=params)
    assert response.status_code == expect, response.text
    if expect != 200:
        return []
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def visitor() -> dict[str, str]:
    return {"X-Anonymous-Id": str(uuid.uuid4())}


def ids(items: list[dict[str, Any]]) -> list[uuid.UUID]:
    return [uuid.UUID(i["id"]) for i in items]


async def log_rows(db: asyncpg.Pool, campaign_id: uuid.UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT * FROM ab_experiment_log WHERE campaign_id = $1 ORDER BY id", campaign_id
    )
    return rows
