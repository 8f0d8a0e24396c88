"""Rules, campaigns and experiment-log rows written straight to the database for the
results tests, and the counts a plain GROUP BY over the log gives (what the trigger-kept
counts must always equal)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from tests.factories import bearer, user_with_roles

RESULTS = "/api/v1/admin/campaigns/{}/results"
DAILY = "/api/v1/admin/campaigns/{}/results/daily"

Db = asyncpg.Pool | asyncpg.Connection


async def marketer(client: httpx.AsyncClient, db: asyncpg.Pool) -> dict[str, str]:
    return bearer(await user_with_roles(client, db, "marketer"))


async def rule(db: Db, weight: Any = 1, name: str | None = None) -> uuid.UUID:
    rule_id = uuid.uuid4()
    body = {} if weight is None else {"weight": weight}
    await db.execute(
        "INSERT INTO ab_rules (id, name, rule) VALUES ($1, $2, $3)",
        rule_id,
        name or f"variant {rule_id.hex[:6]}",
        body,
    )
    return rule_id


async def campaign(db: Db, variants: list[uuid.UUID], name: str | None = None) -> uuid.UUID:
    campaign_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO campaigns (id, name, hash_seed, ab_variants) VALUES ($1, $2, $3, $4)",
        campaign_id,
        name or f"campaign {campaign_id.hex[:6]}",
        str(campaign_id),
        variants,
    )
    return campaign_id


async def experiment(
    db: Db, arms: list[tuple[int, int]], weights: list[Any] | None = None
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A campaign whose variants have these (assigned, conversions), the control first."""
    variants = [await rule(db, w) for w in (weights or [1] * len(arms))]
    campaign_id = await campaign(db, variants)
    for variant_id, (assigned, conversions) in zip(variants, arms, strict=True):
        await players(db, campaign_id, variant_id, assigned, conversions)
    return campaign_id, variants


async def players(
    db: Db,
    campaign_id: uuid.UUID,
    variant_id: uuid.UUID,
    assigned: int,
    conversions: int = 0,
    assigned_at: datetime | None = None,
    converted_at: datetime | None = None,
) -> None:
    """`assigned` anonymous visitors in the variant, the first `conversions` of them
    converted, in one statement."""
    await db.execute(
        """
        INSERT INTO ab_experiment_log
            (id, campaign_id, anonymous_id, variant_id, assigned_at, conversion_event)
        SELECT gen_random_uuid(), $1, gen_random_uuid(), $2, coalesce($4, now()),
               CASE WHEN g <= $5 THEN coalesce($6, $4, now()) END
        FROM generate_series(1, $3) AS g
        """,
        campaign_id,
        variant_id,
        assigned,
        assigned_at,
        conversions,
        converted_at,
    )


async def counts(db: Db, campaign_id: uuid.UUID) -> dict[uuid.UUID, tuple[int, int]]:
    """Per variant, (assigned, conversions) from the trigger-kept counts."""
    rows = await db.fetch(
        "SELECT variant_id, sum(assigned) AS a, sum(conversions) AS c "
        "FROM ab_experiment_counts WHERE campaign_id = $1 GROUP BY variant_id",
        campaign_id,
    )
    return {r["variant_id"]: (r["a"], r["c"]) for r in rows if r["a"] or r["c"]}


async def counts_from_log(db: Db, campaign_id: uuid.UUID) -> dict[uuid.UUID, tuple[int, int]]:
    rows = await db.fetch(
        "SELECT variant_id, count(*) AS a, count(conversion_event) AS c "
        "FROM ab_experiment_log WHERE campaign_id = $1 GROUP BY variant_id",
        campaign_id,
    )
    return {r["variant_id"]: (r["a"], r["c"]) for r in rows}


async def daily_counts(db: Db) -> set[tuple[Any, ...]]:
    """Every (campaign, variant, day, assigned, conversions) the counts hold."""
    rows = await db.fetch(
        "SELECT campaign_id, variant_id, day, sum(assigned) AS a, sum(conversions) AS c "
        "FROM ab_experiment_counts GROUP BY 1, 2, 3 "
        "HAVING sum(assigned) <> 0 OR sum(conversions) <> 0"
    )
    return {tuple(r.values()) for r in rows}


async def daily_counts_from_log(db: Db) -> set[tuple[Any, ...]]:
    rows = await db.fetch(
        """
        SELECT campaign_id, variant_id, day, sum(a) AS a, sum(c) AS c FROM (
            SELECT campaign_id, variant_id, (assigned_at AT TIME ZONE 'UTC')::date AS day,
                   1 AS a, 0 AS c
            FROM ab_experiment_log
            UNION ALL
            SELECT campaign_id, variant_id, (conversion_event AT TIME ZONE 'UTC')::date, 0, 1
            FROM ab_experiment_log WHERE conversion_event IS NOT NULL
        ) AS each_count
        GROUP BY 1, 2, 3
        """
    )
    return {tuple(r.values()) for r in rows}
