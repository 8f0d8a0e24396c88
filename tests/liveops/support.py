"""Stored rows and request facts for the engine's tests, without a database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

from gameportal.liveops.targeting import Campaign, Facts, ProgressFacts, compile_campaign
from gameportal.models.liveops import ABRule, MarketingCampaign

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
GAME = uuid.UUID("0190d5a8-0000-7000-8000-00000000a001")


def rule(
    weight: float = 1,
    *,
    payload: Any = None,
    active: bool = True,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    content_ids: list[str] | None = None,
) -> ABRule:
    body: dict[str, Any] = {"weight": weight, "payload": payload}
    if content_ids is not None:
        body["contentIds"] = content_ids
    return ABRule(
        id=uuid.uuid4(),
        name="variant",
        description="",
        active=active,
        start_at=start_at,
        end_at=end_at,
        rule=body,
    )


def campaign_row(
    variants: list[ABRule],
    *,
    targeting: dict[str, Any] | None = None,
    coverage: float = 1.0,
    hash_seed: str | None = None,
    exclusion_group: str | None = None,
    active: bool = True,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    campaign_id: uuid.UUID | None = None,
) -> MarketingCampaign:
    cid = campaign_id or uuid.uuid4()
    return MarketingCampaign(
        id=cid,
        name="Spring sale",
        description="",
        active=active,
        start_at=start_at,
        end_at=end_at,
        targeting_rules=targeting or {},
        content_ids=[],
        ab_variants=[v.id for v in variants],
        coverage=coverage,
        hash_seed=hash_seed if hash_seed is not None else str(cid),
        exclusion_group=exclusion_group,
    )


def campaign(
    variants: list[ABRule] | None = None,
    *,
    ip_ranges: bool = False,
    **kwargs: Any,
) -> Campaign:
    variants = variants if variants is not None else [rule()]
    row = campaign_row(variants, **kwargs)
    return compile_campaign(row, {v.id: v for v in variants}, ip_ranges)


def facts(
    *,
    ip: str | None = "203.0.113.7",
    country: str | None = "DE",
    device_type: str = "MOBILE",
    languages: tuple[str, ...] = ("de", "en"),
    now: datetime = NOW,
    progress: dict[uuid.UUID, ProgressFacts] | None = None,
) -> Facts:
    return Facts(
        ip=ip_address(ip) if ip is not None else None,
        country=country,
        device_type=device_type,
        languages=languages,
        now=now,
        progress=progress or {},
    )
