"""What a campaign would make of a request, rule by rule: a marketer's check before (or
after) activating it. Read from the database, whatever the campaign's state: an inactive
campaign says so in its `active` rule and is explained in full all the same."""

from __future__ import annotations

import uuid
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import asyncpg

from gameportal.identity.devices import device_type
from gameportal.liveops import evaluation_repository as repo
from gameportal.liveops.assignment import new_assignment
from gameportal.liveops.errors import CampaignNotFound
from gameportal.liveops.evaluation import address_facts, player_state
from gameportal.liveops.targeting import (
    Facts,
    ProgressFacts,
    accept_language_tags,
    compile_campaign,
    explain,
    matches,
)
from gameportal.models.liveops import ABRule, MarketingCampaign
from gameportal.progress.service.errors import PlayerNotFound


async def preview(
    pool: asyncpg.Pool,
    campaign_id: uuid.UUID,
    *,
    ip: IPv4Address | IPv6Address,
    user_agent: str,
    user_id: uuid.UUID | None,
    language: str | None,
    now: datetime,
) -> dict[str, Any]:
    row, rule_rows, has_ranges = await repo.campaign_rows(pool, campaign_id)
    if row is None:
        raise CampaignNotFound(f"no campaign {campaign_id}")
    rules = {r["id"]: ABRule(**dict(r)) for r in rule_rows}
    campaign = compile_campaign(MarketingCampaign(**dict(row)), rules, has_ranges)
    address, country = address_facts(str(ip))
    progress: dict[uuid.UUID, ProgressFacts] = {}
    logged: uuid.UUID | None = None
    if user_id is not None:
        segment = campaign.segment
        wanted = segment is not None and segment.has_achievement is not None
        games = [segment.game_id] if wanted and segment is not None else []
        keys = [segment.has_achievement] if wanted and segment and segment.has_achievement else []
        found = (await repo.players_state(pool, [user_id], games, keys))[0]
        if not found["known"]:
            raise PlayerNotFound(f"no player {user_id}")
        state = player_state(found)
        progress = state.progress
        logged = state.assigned.get(campaign_id, (None, None))[0]
    # The database's own answer for the ranges (GiST), as the preview asks.
    in_ranges = (
        has_ranges
        and address is not None
        and await repo.ip_in_ranges(pool, campaign_id, str(address))
    )
    facts = Facts(
        ip=address,
        country=country,
        device_type=device_type(user_agent[:512] or None),
        languages=accept_language_tags(language),
        now=now,
        progress=progress,
    )
    matched = matches(campaign, facts, in_ranges)
    assignment: dict[str, Any] | None = None
    if user_id is not None:
        if logged is not None:
            assignment = {"variant_id": logged, "logged": True}
        else:
            variant = new_assignment(campaign, str(user_id), now)
            assignment = {"variant_id": variant.id if variant else None, "logged": False}
    return {
        "matched": matched,
        "rules": [
            {"kind": v.kind, "matched": v.matched, "detail": v.detail}
            for v in explain(campaign, facts, in_ranges)
        ],
        "facts": {
            "ip": str(address) if address is not None else str(ip),
            "country": country,
            "device_type": facts.device_type,
            "languages": list(facts.languages),
        },
        "assignment": assignment,
    }
