"""The rules of running live operations: A/B rules (variants) and campaigns, checked
against what they refer to, changed under optimistic concurrency (ETag / If-Match), each
change announced on LIVEOPS_CHANNEL when it commits.

Assignment is sticky: a player keeps the variant they were logged with, so changing a
campaign's variants, weights or hash seed only changes the split for players not yet
assigned."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from pydantic.alias_generators import to_camel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.content.service import VersionMismatch, VersionRequired
from gameportal.errors import Conflict, FieldProblem, NotFound
from gameportal.kit.ids import new_id
from gameportal.kit.time import utcnow
from gameportal.liveops import admin_repository as repo
from gameportal.liveops.admin_checks import (
    Problems,
    check_content,
    check_segment,
    check_variants,
    check_window,
    not_null,
    weight_of,
)
from gameportal.liveops.errors import CampaignNotFound
from gameportal.liveops.schemas import (
    ABRuleCreate,
    ABRuleUpdate,
    CampaignCreate,
    CampaignUpdate,
)
from gameportal.models import ABRule, MarketingCampaign

log = structlog.get_logger(__name__)

# How many campaigns a refusal names (the rest are counted).
NAMED_IN_ERRORS = 5


class ABRuleNotFound(NotFound):
    slug = "ab-rule-not-found"
    title = "A/B rule not found"


class ABRuleInUse(Conflict):
    slug = "ab-rule-in-use"
    title = "The A/B rule is in use"


class CampaignHasPlayers(Conflict):
    slug = "campaign-has-players"
    title = "Players are already assigned in this campaign"


class WeightsSumToZero(Conflict):
    slug = "weights-sum-to-zero"
    title = "A campaign's variant weights would sum to 0"


# --- ETag / If-Match (as content's) ----------------------------------------------------------


def etag(row: ABRule | MarketingCampaign) -> str:
    return f'"{row.id}.{row.version}"'


def check_if_match(
    row: ABRule | MarketingCampaign, if_match: str | None, *, required: bool
) -> None:
    if if_match is None:
        if required:
            raise VersionRequired("read it first, then send its ETag as If-Match")
        return
    wanted = {tag.strip() for tag in if_match.split(",")}
    if "*" not in wanted and etag(row) not in wanted and etag(row).strip('"') not in wanted:
        raise VersionMismatch(
            f"it is at version {row.version}; read it again and reapply your change"
        )


async def _save(session: AsyncSession, row: ABRule | MarketingCampaign) -> None:
    row.version += 1
    row.updated_at = utcnow()
    await session.flush()
    await repo.notify_changed(session, row.id)
    await session.refresh(row)


async def _found(
    session: AsyncSession, model: type[repo.Row], row_id: uuid.UUID, *, lock: bool
) -> repo.Row:
    row = await repo.by_id(session, model, row_id, lock=lock)
    if row is None:
        if model is ABRule:
            raise ABRuleNotFound(f"no A/B rule {row_id}")
        raise CampaignNotFound(f"no campaign {row_id}")
    return row


async def set_active(
    session: AsyncSession,
    model: type[repo.Row],
    row_id: uuid.UUID,
    active: bool,
    if_match: str | None,
) -> repo.Row:
    """Activate or deactivate; doing it again changes nothing (no new version)."""
    await repo.serialize_writes(session)
    row = await _found(session, model, row_id, lock=True)
    check_if_match(row, if_match, required=False)
    if row.active != active:
        row.active = active
        await _save(session, row)
    return row


# --- A/B rules -------------------------------------------------------------------------------


async def create_rule(session: AsyncSession, author: uuid.UUID, body: ABRuleCreate) -> ABRule:
    await repo.serialize_writes(session)
    problems = Problems()
    check_window(problems, body.start_at, body.end_at)
    await check_content(session, problems, "rule.contentIds", body.rule.content_ids)
    problems.raise_any()
    row = ABRule(
        id=new_id(),
        name=body.name,
        description=body.description,
        start_at=body.start_at,
        end_at=body.end_at,
        active=body.active,
        rule=body.rule.model_dump(mode="json", by_alias=True),
        created_by=author,
        version=1,
    )
    session.add(row)
    await session.flush()
    await repo.notify_changed(session, row.id)
    await session.refresh(row)
    log.info("ab_rule_created", rule_id=str(row.id), by=str(author))
    return row


async def get_rule(session: AsyncSession, rule_id: uuid.UUID) -> ABRule:
    return await _found(session, ABRule, rule_id, lock=False)


async def list_rules(
    session: AsyncSession, f: repo.ListFilter, *, after: uuid.UUID | None, limit: int
) -> list[ABRule]:
    return await repo.rules_page(session, f, after=after, limit=limit)


async def _check_weight_change(session: AsyncSession, row: ABRule) -> None:
    """No campaign that uses the rule may be left with weights that sum to 0."""
    campaigns = await repo.campaigns_using(session, row.id)
    others = await repo.rules(session, [v for c in campaigns for v in c.ab_variants])
    others[row.id] = row
    stuck = [c for c in campaigns if sum(weight_of(others[v]) for v in set(c.ab_variants)) <= 0]
    if stuck:
        named = ", ".join(f"{c.name!r} ({c.id})" for c in stuck[:NAMED_IN_ERRORS])
        more = f" and {len(stuck) - NAMED_IN_ERRORS} more" if len(stuck) > NAMED_IN_ERRORS else ""
        message = (
            f"the variants of campaign {named}{more} would then all weigh 0, so no new player "
            "could be assigned: keep a weight above 0 here or on another of their variants"
        )
        raise WeightsSumToZero(
            message,
            errors=[
                FieldProblem(
                    field="rule.weight",
                    location="body",
                    message=message,
                    code="weights_sum_to_zero",
                )
            ],
        )


async def update_rule(
    session: AsyncSession, rule_id: uuid.UUID, body: ABRuleUpdate, if_match: str | None
) -> ABRule:
    await repo.serialize_writes(session)
    row = await _found(session, ABRule, rule_id, lock=True)
    check_if_match(row, if_match, required=True)
    changes = body.model_dump(exclude_unset=True)
    not_null(changes, ("name", "description", "active", "rule"))
    rule_changes = (
        body.rule.model_dump(mode="json", by_alias=True, exclude_unset=True) if body.rule else {}
    )
    not_null(rule_changes, ("weight", "contentIds"), "rule.")
    if not changes:
        return row
    problems = Problems()
    check_window(problems, changes.get("start_at", row.start_at), changes.get("end_at", row.end_at))
    if body.rule is not None and "content_ids" in body.rule.model_fields_set:
        await check_content(session, problems, "rule.contentIds", body.rule.content_ids or [])
    problems.raise_any()
    for name in ("name", "description", "start_at", "end_at", "active"):
        if name in changes:
            setattr(row, name, changes[name])
    if rule_changes:
        row.rule = {**row.rule, **rule_changes}
        if "weight" in rule_changes:
            await _check_weight_change(session, row)
    await _save(session, row)
    return row


async def delete_rule(session: AsyncSession, rule_id: uuid.UUID, if_match: str | None) -> None:
    """Refused while a campaign lists it or a player was assigned it: the experiment's
    results need it. Deactivate it instead, or take it out of the campaign first."""
    await repo.serialize_writes(session)
    row = await _found(session, ABRule, rule_id, lock=True)
    check_if_match(row, if_match, required=False)
    campaigns = await repo.campaigns_using(session, rule_id, limit=NAMED_IN_ERRORS + 1)
    if campaigns:
        named = ", ".join(f"{c.name!r} ({c.id})" for c in campaigns[:NAMED_IN_ERRORS])
        more = " and more" if len(campaigns) > NAMED_IN_ERRORS else ""
        raise ABRuleInUse(
            f"campaign {named}{more} lists it in abVariants: remove it there first, or "
            "deactivate it (it then gets no new players)"
        )
    assigned = await repo.players_assigned(session, rule_id)
    if assigned:
        raise _assigned(assigned)
    try:
        await repo.delete_row(session, row)
    except IntegrityError as exc:  # a player was assigned it a moment ago
        if "ab_experiment_log" not in str(exc.orig):
            raise
        raise _assigned(1) from None
    await repo.notify_changed(session, rule_id)
    log.info("ab_rule_deleted", rule_id=str(rule_id))


def _assigned(count: int) -> ABRuleInUse:
    players = "1 player was" if count == 1 else f"{count} players were"
    return ABRuleInUse(
        f"{players} assigned this variant and the experiment log keeps it for the results: "
        "deactivate it instead (it then gets no new players, and assigned players keep it)"
    )


# --- campaigns -------------------------------------------------------------------------------


async def create_campaign(
    session: AsyncSession, author: uuid.UUID, body: CampaignCreate
) -> MarketingCampaign:
    await repo.serialize_writes(session)
    problems = Problems()
    check_window(problems, body.start_at, body.end_at)
    await check_variants(session, problems, body.ab_variants)
    await check_content(session, problems, "contentIds", body.content_ids)
    if body.targeting_rules.segment is not None:
        await check_segment(session, problems, body.targeting_rules.segment)
    problems.raise_any()
    campaign_id = new_id()
    row = MarketingCampaign(
        id=campaign_id,
        name=body.name,
        description=body.description,
        start_at=body.start_at,
        end_at=body.end_at,
        active=body.active,
        targeting_rules=body.targeting_rules.model_dump(
            mode="json", by_alias=True, exclude_none=True
        ),
        content_ids=body.content_ids,
        ab_variants=body.ab_variants,
        coverage=body.coverage,
        hash_seed=body.hash_seed or str(campaign_id),
        exclusion_group=body.exclusion_group,
        created_by=author,
        version=1,
    )
    session.add(row)
    await session.flush()
    await repo.replace_ip_ranges(session, campaign_id, body.targeting_rules.ip_ranges)
    await repo.notify_changed(session, campaign_id)
    await session.refresh(row)
    log.info("campaign_created", campaign_id=str(campaign_id), by=str(author))
    return row


async def get_campaign(session: AsyncSession, campaign_id: uuid.UUID) -> MarketingCampaign:
    return await _found(session, MarketingCampaign, campaign_id, lock=False)


async def list_campaigns(
    session: AsyncSession, f: repo.ListFilter, *, after: uuid.UUID | None, limit: int
) -> list[MarketingCampaign]:
    return await repo.campaigns_page(session, f, after=after, limit=limit)


_LIST_KINDS = ("countries", "ip_ranges", "device_types", "languages")


async def update_campaign(
    session: AsyncSession, campaign_id: uuid.UUID, body: CampaignUpdate, if_match: str | None
) -> MarketingCampaign:
    await repo.serialize_writes(session)
    row = await _found(session, MarketingCampaign, campaign_id, lock=True)
    check_if_match(row, if_match, required=True)
    changes = body.model_dump(exclude_unset=True)
    not_null(
        changes,
        (
            "name", "description", "active", "targeting_rules", "content_ids", "ab_variants",
            "coverage",
        ),
    )  # fmt: skip
    if not changes:
        return row
    problems = Problems()
    check_window(problems, changes.get("start_at", row.start_at), changes.get("end_at", row.end_at))
    if body.ab_variants is not None:
        await check_variants(session, problems, body.ab_variants)
    if body.content_ids is not None:
        await check_content(session, problems, "contentIds", body.content_ids)
    targeting = body.targeting_rules
    if targeting is not None and targeting.segment is not None:
        await check_segment(session, problems, targeting.segment)
    problems.raise_any()
    if changes.get("exclusion_group", row.exclusion_group) != row.exclusion_group:
        await _regroup(session, row, changes["exclusion_group"])

    for name in (
        "name", "description", "start_at", "end_at", "active", "content_ids", "ab_variants",
        "coverage", "exclusion_group",
    ):  # fmt: skip
        if name in changes:
            setattr(row, name, changes[name])
    if "hash_seed" in changes:
        row.hash_seed = body.hash_seed or str(row.id)
    if targeting is not None:
        rules: dict[str, Any] = {
            kind: [] for kind in ("countries", "ipRanges", "deviceTypes", "languages")
        }
        rules.update(row.targeting_rules)
        for name in targeting.model_fields_set:
            value = getattr(targeting, name)
            if name == "segment":
                rules.pop("segment", None)
                if value is not None:
                    rules["segment"] = value.model_dump(
                        mode="json", by_alias=True, exclude_none=True
                    )
            else:
                rules[to_camel(name)] = list(value or [])
        row.targeting_rules = rules
        if "ip_ranges" in targeting.model_fields_set:
            await repo.replace_ip_ranges(session, row.id, targeting.ip_ranges or [])
    await _save(session, row)
    log.info("campaign_changed", campaign_id=str(row.id), fields=sorted(changes))
    return row


async def _regroup(session: AsyncSession, row: MarketingCampaign, group: str | None) -> None:
    """A campaign's players are kept apart from the other campaigns of its exclusion group
    by their log rows, which carry the group. Leaving the group frees them (their rows
    leave it too). Joining a group, or moving to another, cannot take back what players
    already assigned here got in that group's other campaigns: refused once anyone is.

    The campaign's row is locked (FOR UPDATE), and an assignment locks it too (KEY SHARE,
    in the evaluation's insert): one in flight is committed before this looks, and one
    that comes after sees the new group and, decided on the old one, is not written. So
    no row is left with a group its campaign no longer has."""
    if not await repo.has_players(session, row.id):
        return
    if group is None:
        await repo.leave_group(session, row.id)
        return
    message = (
        f"players are already assigned in this campaign, and may be in campaigns of "
        f'"{group}" too: the group can change only before anyone is assigned. Make a new '
        "campaign in that group instead (and deactivate this one), or leave the group (null)"
    )
    raise CampaignHasPlayers(
        message,
        errors=[
            FieldProblem(
                field="exclusionGroup",
                location="body",
                message=message,
                code="campaign_has_players",
            )
        ],
    )


async def delete_campaign(
    session: AsyncSession, campaign_id: uuid.UUID, if_match: str | None
) -> None:
    """Its IP ranges and experiment log go with it (deactivate it to keep the results)."""
    await repo.serialize_writes(session)
    row = await _found(session, MarketingCampaign, campaign_id, lock=True)
    check_if_match(row, if_match, required=False)
    await repo.delete_row(session, row)
    await repo.notify_changed(session, campaign_id)
    log.info("campaign_deleted", campaign_id=str(campaign_id))
