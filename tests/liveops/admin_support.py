"""Marketers, rules and campaigns made through the admin API, and the change channel heard
as another process would hear it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx

from gameportal.liveops import LIVEOPS_CHANNEL
from tests.factories import bearer, register, user_with_roles

RULES = "/api/v1/admin/ab-rules"
CAMPAIGNS = "/api/v1/admin/campaigns"


async def marketer(client: httpx.AsyncClient, db: asyncpg.Pool) -> dict[str, str]:
    return bearer(await user_with_roles(client, db, "marketer"))


async def new_rule(
    client: httpx.AsyncClient, who: dict[str, str], weight: float = 1, **fields: Any
) -> dict[str, Any]:
    body = {"name": f"variant {uuid.uuid4().hex[:6]}", "rule": {"weight": weight}, **fields}
    made = await client.post(RULES, json=body, headers=who)
    assert made.status_code == 201, made.text
    found: dict[str, Any] = made.json()
    return found


async def new_campaign(
    client: httpx.AsyncClient,
    who: dict[str, str],
    variants: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    if variants is None:
        variants = [await new_rule(client, who), await new_rule(client, who)]
    body = {
        "name": f"campaign {uuid.uuid4().hex[:6]}",
        "abVariants": [v["id"] for v in variants],
        **fields,
    }
    made = await client.post(CAMPAIGNS, json=body, headers=who)
    assert made.status_code == 201, made.text
    found: dict[str, Any] = made.json()
    return found


async def assign(
    client: httpx.AsyncClient, db: asyncpg.Pool, campaign_id: str, variant_id: str
) -> str:
    """A player with a log row in the campaign (as the evaluation would write it)."""
    user_id = (await register(client))["user"]["id"]
    await db.execute(
        "INSERT INTO ab_experiment_log (id, campaign_id, user_id, variant_id) "
        "VALUES ($1, $2, $3, $4)",
        uuid.uuid4(),
        uuid.UUID(campaign_id),
        uuid.UUID(user_id),
        uuid.UUID(variant_id),
    )
    return user_id


def errors_by_field(response: httpx.Response) -> dict[str, dict[str, str]]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return {e["field"]: e for e in response.json().get("errors", [])}


class Heard:
    """NOTIFY payloads on LIVEOPS_CHANNEL, in order."""

    def __init__(self) -> None:
        self.payloads: asyncio.Queue[str] = asyncio.Queue()

    async def next(self, within: float = 5) -> str:
        return await asyncio.wait_for(self.payloads.get(), within)

    def nothing_more(self) -> bool:
        return self.payloads.empty()


@asynccontextmanager
async def listening(database_url: str) -> AsyncIterator[Heard]:
    heard = Heard()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.add_listener(LIVEOPS_CHANNEL, lambda *args: heard.payloads.put_nowait(args[3]))
        yield heard
    finally:
        await conn.close()
