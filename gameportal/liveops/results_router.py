"""A campaign's experiment results over HTTP (marketers and admins)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from gameportal.db import DbReadSession
from gameportal.errors import problem_responses
from gameportal.identity.deps import MarketerUser
from gameportal.liveops import results
from gameportal.liveops.results_schemas import CampaignDaily, CampaignResults

results_router = APIRouter(
    prefix="/api/v1/admin", tags=["live operations"], responses=problem_responses(500)
)


@results_router.get(
    "/campaigns/{campaign_id}/results",
    response_model=CampaignResults,
    responses=problem_responses(401, 403, 404, 422),
    operation_id="admin_campaigns_results_get",
    summary="A campaign's experiment results per variant (marketer)",
    description="Per variant: players assigned, conversions, the conversion rate with its "
    "95% Wilson interval; against the control (the first variant): the relative uplift with "
    "its 95% interval (delta method) and two-sided p-value, the Bayesian chance to beat the "
    "control, and an always-valid (sequential) interval and p-value that stay sound however "
    "often they are read. A sample-ratio check compares the split with the weights and flags "
    "p < 0.001. The methods are GrowthBook's (gbstats); the README cites them.",
)
async def get_results(
    campaign_id: uuid.UUID, _: MarketerUser, session: DbReadSession
) -> CampaignResults:
    return await results.campaign_results(session, campaign_id)


@results_router.get(
    "/campaigns/{campaign_id}/results/daily",
    response_model=CampaignDaily,
    responses=problem_responses(401, 403, 404, 422),
    operation_id="admin_campaigns_results_daily_get",
    summary="A campaign's assignments and conversions per UTC day and variant (marketer)",
    description="For charts: each day's new players and conversions per variant, and the "
    "running totals. A player counts on the day they were assigned, a conversion on the day "
    "it happened.",
)
async def get_daily_results(
    campaign_id: uuid.UUID, _: MarketerUser, session: DbReadSession
) -> CampaignDaily:
    return await results.campaign_daily(session, campaign_id)
