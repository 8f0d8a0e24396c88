"""Shapes of a campaign's experiment results: per variant, and per day for charts."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from pydantic import ConfigDict, Field

from gameportal.kit.schemas import Schema, UtcDatetime


def _example(value: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [value]})


class IntervalRead(Schema):
    low: float
    high: float


class ComparisonRead(Schema):
    """A variant against the control (the campaign's first variant)."""

    uplift: float | None = Field(
        default=None,
        description="Relative uplift of the conversion rate over the control's: 0.1 is 10% "
        "more conversions per player, -0.2 is 20% fewer",
    )
    uplift_interval: IntervalRead | None = Field(
        default=None,
        description="95% confidence interval of the uplift (delta method, Welch t-test), valid "
        "when read once at a planned end of the experiment",
    )
    p_value: float | None = Field(default=None, description="Two-sided p-value of no difference")
    chance_to_beat_control: float | None = Field(
        default=None,
        description="Bayesian probability that this variant converts better than the control "
        "(GrowthBook's engine, flat prior)",
    )
    sequential_interval: IntervalRead | None = Field(
        default=None,
        description="95% always-valid interval of the uplift (Howard et al. 2021 confidence "
        "sequence, as GrowthBook's sequential testing): holds however often it is read, so "
        "decide on this one when looking every day",
    )
    sequential_p_value: float | None = Field(
        default=None, description="Always-valid p-value of no difference"
    )
    unavailable: str | None = Field(
        default=None,
        description="Why the figures that are null could not be computed (e.g. no conversions "
        "in the control yet)",
    )


class VariantResult(Schema):
    variant_id: uuid.UUID
    name: str | None = Field(default=None, description="The A/B rule's name")
    control: bool = Field(
        description="The campaign's first variant, which the others are compared with"
    )
    in_campaign: bool = Field(
        description="False for a variant players were assigned to that the campaign no longer "
        "lists; it is reported after the listed ones and left out of the sample-ratio check"
    )
    weight: float | None = Field(default=None, description="The A/B rule's current weight")
    expected_share: float | None = Field(
        default=None, description="The share of players the weights give this variant"
    )
    assigned: int = Field(description="Players assigned")
    conversions: int = Field(description="Players who converted")
    conversion_rate: float | None = Field(default=None, description="conversions / assigned")
    conversion_rate_interval: IntervalRead | None = Field(
        default=None, description="95% Wilson score interval of the conversion rate"
    )
    vs_control: ComparisonRead | None = Field(default=None, description="Null for the control")


class SampleRatioRead(Schema):
    p_value: float | None = Field(
        default=None,
        description="Chi-square goodness of fit of the assigned counts against the current weights",
    )
    mismatch: bool = Field(
        description="p below the threshold: the split is not what the weights say, so the "
        "results are suspect (a change of weights during the experiment also causes this)"
    )
    threshold: float
    unavailable: str | None = Field(default=None, description="Why there is no p-value")


RESULTS_EXAMPLE = {
    "campaignId": "0195b0a1-0c2d-7e3f-8a4b-5c6d7e8f9a0b",
    "name": "Spring Promo",
    "computedAt": "2026-04-02T09:30:00Z",
    "confidenceLevel": 0.95,
    "sequentialTuning": 5000,
    "assigned": 20000,
    "conversions": 2100,
    "sampleRatio": {"pValue": 1.0, "mismatch": False, "threshold": 0.001, "unavailable": None},
    "variants": [
        {
            "variantId": "0195b0a0-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
            "name": "Control price",
            "control": True,
            "inCampaign": True,
            "weight": 1,
            "expectedShare": 0.5,
            "assigned": 10000,
            "conversions": 1000,
            "conversionRate": 0.1,
            "conversionRateInterval": {"low": 0.0943, "high": 0.106},
            "vsControl": None,
        },
        {
            "variantId": "0195b0a0-2b3c-7d4e-9f5a-6b7c8d9e0f1a",
            "name": "Discount",
            "control": False,
            "inCampaign": True,
            "weight": 1,
            "expectedShare": 0.5,
            "assigned": 10000,
            "conversions": 1100,
            "conversionRate": 0.11,
            "conversionRateInterval": {"low": 0.1041, "high": 0.1162},
            "vsControl": {
                "uplift": 0.1,
                "upliftInterval": {"low": 0.0109, "high": 0.1891},
                "pValue": 0.0279,
                "chanceToBeatControl": 0.9861,
                "sequentialInterval": {"low": -0.0422, "high": 0.2422},
                "sequentialPValue": 0.549,
                "unavailable": None,
            },
        },
    ],
}


class CampaignResults(Schema):
    model_config = _example(RESULTS_EXAMPLE)

    campaign_id: uuid.UUID
    name: str
    computed_at: UtcDatetime
    confidence_level: float = Field(description="Of every interval here")
    sequential_tuning: float = Field(
        description="The sequential intervals' tuning: they are tightest near this many players"
    )
    assigned: int = Field(description="Players assigned, all variants")
    conversions: int = Field(description="Players who converted, all variants")
    sample_ratio: SampleRatioRead
    variants: list[VariantResult] = Field(
        description="The campaign's variants in its order (the control first), then any "
        "variant no longer listed that still has players"
    )


class VariantName(Schema):
    variant_id: uuid.UUID
    name: str | None = None
    control: bool
    in_campaign: bool


class DailyCounts(Schema):
    variant_id: uuid.UUID
    assigned: int = Field(description="Players assigned that day")
    conversions: int = Field(description="Conversions recorded that day")
    cumulative_assigned: int = Field(description="Players assigned up to and including that day")
    cumulative_conversions: int = Field(description="Conversions up to and including that day")


class DayRead(Schema):
    day: date = Field(description="A UTC calendar day")
    variants: list[DailyCounts] = Field(description="In the order of the answer's `variants`")


DAILY_EXAMPLE = {
    "campaignId": "0195b0a1-0c2d-7e3f-8a4b-5c6d7e8f9a0b",
    "computedAt": "2026-04-02T09:30:00Z",
    "variants": [
        {
            "variantId": "0195b0a0-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
            "name": "Control price",
            "control": True,
            "inCampaign": True,
        },
        {
            "variantId": "0195b0a0-2b3c-7d4e-9f5a-6b7c8d9e0f1a",
            "name": "Discount",
            "control": False,
            "inCampaign": True,
        },
    ],
    "days": [
        {
            "day": "2026-04-01",
            "variants": [
                {
                    "variantId": "0195b0a0-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
                    "assigned": 410,
                    "conversions": 38,
                    "cumulativeAssigned": 410,
                    "cumulativeConversions": 38,
                },
                {
                    "variantId": "0195b0a0-2b3c-7d4e-9f5a-6b7c8d9e0f1a",
                    "assigned": 395,
                    "conversions": 44,
                    "cumulativeAssigned": 395,
                    "cumulativeConversions": 44,
                },
            ],
        }
    ],
}


class CampaignDaily(Schema):
    model_config = _example(DAILY_EXAMPLE)

    campaign_id: uuid.UUID
    computed_at: UtcDatetime
    variants: list[VariantName] = Field(
        description="As in the results: the campaign's variants in order, then any no longer "
        "listed that has players"
    )
    days: list[DayRead] = Field(
        description="Every UTC day from the first with an assignment or conversion to the "
        "last, oldest first (days without any are there with zeros)"
    )
