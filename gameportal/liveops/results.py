"""A campaign's experiment results: the counts from SQL, the statistics from stats.py.

The counts are read from `ab_experiment_counts`, which triggers on the experiment log keep
per campaign, variant, UTC day and writer slot in the same transaction as every change to
the log (migration 0011). A campaign's results therefore sum at most variants x days x 16
rows, however many players it has: with 1,000,000 log rows the GROUP BY over the log itself
took 100-230 ms on the 2-core benchmark machine, the counts well under 1 ms
(benchmarks/liveops_results.py measures both).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.kit.time import utcnow
from gameportal.liveops import stats
from gameportal.liveops.errors import CampaignNotFound
from gameportal.liveops.results_schemas import (
    CampaignDaily,
    CampaignResults,
    ComparisonRead,
    DailyCounts,
    DayRead,
    IntervalRead,
    SampleRatioRead,
    VariantName,
    VariantResult,
)
from gameportal.models import ABRule, MarketingCampaign
from gameportal.models.liveops import ABExperimentCount


@dataclass(frozen=True, slots=True)
class Variant:
    id: uuid.UUID
    name: str | None
    weight: float | None  # None when the rule is gone or holds no number
    in_campaign: bool


# --- SQL ---------------------------------------------------------------------------------------


async def _campaign(session: AsyncSession, campaign_id: uuid.UUID) -> tuple[str, list[uuid.UUID]]:
    row = (
        await session.execute(
            select(MarketingCampaign.name, MarketingCampaign.ab_variants).where(
                MarketingCampaign.id == campaign_id
            )
        )
    ).one_or_none()
    if row is None:
        raise CampaignNotFound(f"no campaign {campaign_id}")
    return row.name, list(dict.fromkeys(row.ab_variants or ()))


async def _variants(
    session: AsyncSession, listed: Sequence[uuid.UUID], counted: Sequence[uuid.UUID]
) -> list[Variant]:
    """The campaign's variants in its order, then those with players it no longer lists
    (oldest id first)."""
    unlisted = sorted(set(counted) - set(listed))
    rows = await session.execute(
        select(ABRule.id, ABRule.name, ABRule.rule["weight"].label("weight")).where(
            ABRule.id.in_([*listed, *unlisted])
        )
    )
    rules = {r.id: r for r in rows}

    def variant(variant_id: uuid.UUID, in_campaign: bool) -> Variant:
        rule = rules.get(variant_id)
        weight = rule.weight if rule is not None else None
        if not isinstance(weight, int | float) or isinstance(weight, bool):
            weight = None
        return Variant(
            id=variant_id,
            name=rule.name if rule is not None else None,
            weight=None if weight is None else float(weight),
            in_campaign=in_campaign,
        )

    return [variant(v, True) for v in listed] + [variant(v, False) for v in unlisted]


async def _totals(session: AsyncSession, campaign_id: uuid.UUID) -> dict[uuid.UUID, stats.Arm]:
    counts = ABExperimentCount
    rows = await session.execute(
        select(counts.variant_id, func.sum(counts.assigned), func.sum(counts.conversions))
        .where(counts.campaign_id == campaign_id)
        .group_by(counts.variant_id)
    )
    return {
        variant_id: stats.Arm(int(assigned), int(conversions))
        for variant_id, assigned, conversions in rows
        if assigned or conversions
    }


async def _per_day(
    session: AsyncSession, campaign_id: uuid.UUID
) -> dict[tuple[uuid.UUID, date], tuple[int, int]]:
    counts = ABExperimentCount
    rows = await session.execute(
        select(
            counts.variant_id,
            counts.day,
            func.sum(counts.assigned),
            func.sum(counts.conversions),
        )
        .where(counts.campaign_id == campaign_id)
        .group_by(counts.variant_id, counts.day)
    )
    return {
        (variant_id, day): (int(assigned), int(conversions))
        for variant_id, day, assigned, conversions in rows
        if assigned or conversions
    }


# --- the answers -------------------------------------------------------------------------------


async def campaign_results(session: AsyncSession, campaign_id: uuid.UUID) -> CampaignResults:
    name, listed = await _campaign(session, campaign_id)
    arms = await _totals(session, campaign_id)
    variants = await _variants(session, listed, list(arms))
    return assemble_results(campaign_id, name, variants, arms, utcnow())


async def campaign_daily(session: AsyncSession, campaign_id: uuid.UUID) -> CampaignDaily:
    _, listed = await _campaign(session, campaign_id)
    per_day = await _per_day(session, campaign_id)
    variants = await _variants(session, listed, list({v for v, _ in per_day}))
    return assemble_daily(campaign_id, variants, per_day, utcnow())


def _interval(value: stats.Interval | None) -> IntervalRead | None:
    return None if value is None else IntervalRead(low=value.low, high=value.high)


def _sample_ratio(
    variants: Sequence[Variant], arms: Mapping[uuid.UUID, stats.Arm]
) -> SampleRatioRead:
    listed = [v for v in variants if v.in_campaign]
    assigned = [arms.get(v.id, stats.Arm(0, 0)).assigned for v in listed]
    weights = [v.weight for v in listed]
    why: str | None = None
    p_value: float | None = None
    if len(listed) < 2:
        why = "one variant: there is no split to check"
    elif sum(assigned) == 0:
        why = "no players yet"
    elif any(w is None for w in weights):
        why = "a variant has no weight (its A/B rule is gone or holds no number)"
    else:
        p_value = stats.srm_p_value(assigned, [w for w in weights if w is not None])
        if p_value is None:
            why = "the variants' weights sum to zero"
    return SampleRatioRead(
        p_value=p_value,
        mismatch=p_value is not None and p_value < stats.SRM_THRESHOLD,
        threshold=stats.SRM_THRESHOLD,
        unavailable=why,
    )


def _comparison(control: stats.Arm | None, arm: stats.Arm) -> ComparisonRead:
    if control is None:
        return ComparisonRead(
            uplift=None,
            uplift_interval=None,
            p_value=None,
            chance_to_beat_control=None,
            sequential_interval=None,
            sequential_p_value=None,
            unavailable="the campaign lists no variants, so there is no control",
        )
    got = stats.compare(control, arm)
    return ComparisonRead(
        uplift=got.uplift,
        uplift_interval=_interval(got.interval),
        p_value=got.p_value,
        chance_to_beat_control=got.chance_to_beat_control,
        sequential_interval=_interval(got.sequential_interval),
        sequential_p_value=got.sequential_p_value,
        unavailable=got.unavailable,
    )


def assemble_results(
    campaign_id: uuid.UUID,
    name: str,
    variants: Sequence[Variant],
    arms: Mapping[uuid.UUID, stats.Arm],
    now: datetime,
) -> CampaignResults:
    """The answer from the counts (no I/O). The control is the first listed variant."""
    control_id = variants[0].id if variants and variants[0].in_campaign else None
    control = arms.get(control_id, stats.Arm(0, 0)) if control_id is not None else None
    weight_sum = sum(v.weight or 0 for v in variants if v.in_campaign)
    results = []
    for variant in variants:
        arm = arms.get(variant.id, stats.Arm(0, 0))
        is_control = variant.id == control_id
        share = (
            variant.weight / weight_sum
            if variant.in_campaign and variant.weight is not None and weight_sum > 0
            else None
        )
        results.append(
            VariantResult(
                variant_id=variant.id,
                name=variant.name,
                control=is_control,
                in_campaign=variant.in_campaign,
                weight=variant.weight,
                expected_share=share,
                assigned=arm.assigned,
                conversions=arm.conversions,
                conversion_rate=arm.rate if arm.assigned else None,
                conversion_rate_interval=_interval(stats.rate_interval(arm)),
                vs_control=None if is_control else _comparison(control, arm),
            )
        )
    return CampaignResults(
        campaign_id=campaign_id,
        name=name,
        computed_at=now,
        confidence_level=1 - stats.ALPHA,
        sequential_tuning=stats.SEQUENTIAL_TUNING,
        assigned=sum(r.assigned for r in results),
        conversions=sum(r.conversions for r in results),
        sample_ratio=_sample_ratio(variants, arms),
        variants=results,
    )


def assemble_daily(
    campaign_id: uuid.UUID,
    variants: Sequence[Variant],
    per_day: Mapping[tuple[uuid.UUID, date], tuple[int, int]],
    now: datetime,
) -> CampaignDaily:
    """Every day from the first with counts to the last, zeros filled in (no I/O)."""
    control_id = variants[0].id if variants and variants[0].in_campaign else None
    days: list[DayRead] = []
    if per_day:
        first = min(day for _, day in per_day)
        last = max(day for _, day in per_day)
        running = {v.id: (0, 0) for v in variants}
        for offset in range((last - first).days + 1):
            day = first + timedelta(days=offset)
            counts = []
            for variant in variants:
                assigned, conversions = per_day.get((variant.id, day), (0, 0))
                total_assigned, total_conversions = running[variant.id]
                running[variant.id] = (total_assigned + assigned, total_conversions + conversions)
                counts.append(
                    DailyCounts(
                        variant_id=variant.id,
                        assigned=assigned,
                        conversions=conversions,
                        cumulative_assigned=running[variant.id][0],
                        cumulative_conversions=running[variant.id][1],
                    )
                )
            days.append(DayRead(day=day, variants=counts))
    return CampaignDaily(
        campaign_id=campaign_id,
        computed_at=now,
        variants=[
            VariantName(
                variant_id=v.id,
                name=v.name,
                control=v.id == control_id,
                in_campaign=v.in_campaign,
            )
            for v in variants
        ],
        days=days,
    )
