"""Running live operations over HTTP (marketers and admins): A/B rules (variants) at
`/api/v1/admin/ab-rules`, campaigns at `/api/v1/admin/campaigns`."""

from __future__ import annotations

import uuid
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from pydantic import IPvAnyAddress, WithJsonSchema

from gameportal.db import DbReadSession, DbSession
from gameportal.errors import problem_responses
from gameportal.identity.deps import MarketerUser
from gameportal.kit.openapi import headers
from gameportal.kit.pagination import Page, Pagination, split_page
from gameportal.kit.schemas import QueryText
from gameportal.liveops import admin_service as service
from gameportal.liveops.admin_repository import ListFilter
from gameportal.liveops.schemas import (
    GROUP_PATTERN,
    ABRuleCreate,
    ABRuleRead,
    ABRuleUpdate,
    CampaignCreate,
    CampaignRead,
    CampaignUpdate,
)
from gameportal.models import ABRule, MarketingCampaign

liveops_admin_router = APIRouter(
    prefix="/api/v1/admin", tags=["live operations"], responses=problem_responses(500)
)

RULES = "/ab-rules"
CAMPAIGNS = "/campaigns"

IfMatch = Annotated[
    str | None,
    Header(max_length=200, description="The ETag you last read; 412 if it changed since"),
]
Active = Annotated[bool | None, Query(description="Only active (true) or inactive (false)")]
NamePrefix = Annotated[
    QueryText | None,
    Query(
        alias="namePrefix",
        min_length=1,
        max_length=200,
        description="Names that start with this, in any case",
    ),
]
Current = Annotated[
    bool | None,
    Query(description="Only those inside (true) or outside (false) their startAt..endAt now"),
]

STICKY = (
    " Players already assigned keep their variant (assignment is sticky): changed variants, "
    "weights, coverage or hashSeed only change the split for players not yet assigned."
)


def _rule(row: ABRule, response: Response) -> ABRuleRead:
    response.headers["ETag"] = service.etag(row)
    return ABRuleRead.model_validate(row)


def _campaign(row: MarketingCampaign, response: Response) -> CampaignRead:
    response.headers["ETag"] = service.etag(row)
    return CampaignRead.model_validate(row)


# --- A/B rules -------------------------------------------------------------------------------


@liveops_admin_router.post(
    RULES,
    operation_id="admin_ab_rules_create",
    response_model=ABRuleRead,
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"headers": headers("Location", "ETag")},
        **problem_responses(401, 403, 413, 422),
    },
    summary="Create an A/B rule: a variant campaigns can list (marketer)",
)
async def create_rule(
    body: ABRuleCreate, marketer: MarketerUser, session: DbSession, response: Response
) -> ABRuleRead:
    row = await service.create_rule(session, marketer.user_id, body)
    response.headers["Location"] = f"{liveops_admin_router.prefix}{RULES}/{row.id}"
    return _rule(row, response)


@liveops_admin_router.get(
    RULES,
    operation_id="admin_ab_rules_list",
    response_model=Page[ABRuleRead],
    responses=problem_responses(400, 401, 403, 422),
    summary="A/B rules, newest first (marketer)",
)
async def list_rules(
    _: MarketerUser,
    session: DbReadSession,
    page: Pagination,
    active: Active = None,
    name_prefix: NamePrefix = None,
    current: Current = None,
) -> Page[ABRuleRead]:
    f = ListFilter(active=active, name_prefix=name_prefix, current=current)
    rows = await service.list_rules(session, f, after=page.after, limit=page.limit + 1)
    items, cursor = split_page(rows, page.limit)
    return Page[ABRuleRead](items=[ABRuleRead.model_validate(r) for r in items], next_cursor=cursor)


@liveops_admin_router.get(
    RULES + "/{rule_id}",
    operation_id="admin_ab_rules_get",
    response_model=ABRuleRead,
    responses={200: {"headers": headers("ETag")}, **problem_responses(401, 403, 404, 422)},
    summary="An A/B rule, with its ETag (marketer)",
)
async def get_rule(
    rule_id: uuid.UUID, _: MarketerUser, session: DbReadSession, response: Response
) -> ABRuleRead:
    return _rule(await service.get_rule(session, rule_id), response)


@liveops_admin_router.patch(
    RULES + "/{rule_id}",
    operation_id="admin_ab_rules_update",
    response_model=ABRuleRead,
    responses={
        200: {"headers": headers("ETag")},
        **problem_responses(401, 403, 404, 409, 412, 413, 422, 428),
    },
    summary="Change an A/B rule; needs If-Match (marketer)",
    description="Only the fields sent change; in `rule`, only the keys sent. 409 when a "
    "campaign that lists the rule would be left with weights that sum to 0." + STICKY,
)
async def update_rule(
    rule_id: uuid.UUID,
    body: ABRuleUpdate,
    _: MarketerUser,
    session: DbSession,
    response: Response,
    if_match: IfMatch = None,
) -> ABRuleRead:
    return _rule(await service.update_rule(session, rule_id, body, if_match), response)


@liveops_admin_router.delete(
    RULES + "/{rule_id}",
    operation_id="admin_ab_rules_delete",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
    summary="Delete an A/B rule no campaign lists and no player was assigned (marketer)",
)
async def delete_rule(
    rule_id: uuid.UUID, _: MarketerUser, session: DbSession, if_match: IfMatch = None
) -> Response:
    await service.delete_rule(session, rule_id, if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@liveops_admin_router.post(
    RULES + "/{rule_id}/activate",
    operation_id="admin_ab_rules_activate",
    response_model=ABRuleRead,
    responses={200: {"headers": headers("ETag")}, **problem_responses(401, 403, 404, 412, 422)},
    summary="Let the variant take new players again (marketer)",
)
async def activate_rule(
    rule_id: uuid.UUID,
    _: MarketerUser,
    session: DbSession,
    response: Response,
    if_match: IfMatch = None,
) -> ABRuleRead:
    row = await service.set_active(session, ABRule, rule_id, True, if_match)
    return _rule(row, response)


@liveops_admin_router.post(
    RULES + "/{rule_id}/deactivate",
    operation_id="admin_ab_rules_deactivate",
    response_model=ABRuleRead,
    responses={200: {"headers": headers("ETag")}, **problem_responses(401, 403, 404, 412, 422)},
    summary="No new players for the variant; assigned players keep it (marketer)",
)
async def deactivate_rule(
    rule_id: uuid.UUID,
    _: MarketerUser,
    session: DbSession,
    response: Response,
    if_match: IfMatch = None,
) -> ABRuleRead:
    row = await service.set_active(session, ABRule, rule_id, False, if_match)
    return _rule(row, response)


# --- campaigns -------------------------------------------------------------------------------


@liveops_admin_router.post(
    CAMPAIGNS,
    operation_id="admin_campaigns_create",
    response_model=CampaignRead,
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"headers": headers("Location", "ETag")},
        **problem_responses(401, 403, 413, 422),
    },
    summary="Create a campaign, inactive unless `active` says otherwise (marketer)",
)
async def create_campaign(
    body: CampaignCreate, marketer: MarketerUser, session: DbSession, response: Response
) -> CampaignRead:
    row = await service.create_campaign(session, marketer.user_id, body)
    response.headers["Location"] = f"{liveops_admin_router.prefix}{CAMPAIGNS}/{row.id}"
    return _campaign(row, response)


@liveops_admin_router.get(
    CAMPAIGNS,
    operation_id="admin_campaigns_list",
    response_model=Page[CampaignRead],
    responses=problem_responses(400, 401, 403, 422),
    summary="Campaigns, newest first (marketer)",
)
async def list_campaigns(
    _: MarketerUser,
    session: DbReadSession,
    page: Pagination,
    active: Active = None,
    name_prefix: NamePrefix = None,
    current: Current = None,
    exclusion_group: Annotated[
        str | None, Query(alias="exclusionGroup", pattern=GROUP_PATTERN)
    ] = None,
    ip: Annotated[
        IPvAnyAddress | None,
        WithJsonSchema(
            {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]}
        ),
        Query(
            description="Only campaigns with an IP range that contains this address (an "
            "IPv4-mapped IPv6 address is looked up as IPv4); campaigns without IP ranges, "
            "which match every address, are not listed"
        ),
    ] = None,
) -> Page[CampaignRead]:
    address: IPv4Address | IPv6Address | None = ip
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    f = ListFilter(
        active=active,
        name_prefix=name_prefix,
        current=current,
        exclusion_group=exclusion_group,
        ip=address,
    )
    rows = await service.list_campaigns(session, f, after=page.after, limit=page.limit + 1)
    items, cursor = split_page(rows, page.limit)
    return Page[CampaignRead](
        items=[CampaignRead.model_validate(r) for r in items], next_cursor=cursor
    )


@liveops_admin_router.get(
    CAMPAIGNS + "/{campaign_id}",
    operation_id="admin_campaigns_get",
    response_model=CampaignRead,
    responses={200: {"headers": headers("ETag")}, **problem_responses(401, 403, 404, 422)},
    summary="A campaign, with its ETag (marketer)",
)
async def get_campaign(
    campaign_id: uuid.UUID, _: MarketerUser, session: DbReadSession, response: Response
) -> CampaignRead:
    return _campaign(await service.get_campaign(session, campaign_id), response)


@liveops_admin_router.patch(
    CAMPAIGNS + "/{campaign_id}",
    operation_id="admin_campaigns_update",
    response_model=CampaignRead,
    responses={
        200: {"headers": headers("ETag")},
        **problem_responses(401, 403, 404, 409, 412, 413, 422, 428),
    },
    summary="Change a campaign; needs If-Match (marketer)",
    description="Only the fields sent change; in `targetingRules`, only the kinds sent "
    "(null empties a kind)." + STICKY + " `exclusionGroup` can change only until a player "
    "is assigned (409 `campaign-has-players` after); leaving the group (null) is always "
    "allowed and frees the campaign's players for the group's other campaigns.",
)
async def update_campaign(
    campaign_id: uuid.UUID,
    body: CampaignUpdate,
    _: MarketerUser,
    session: DbSession,
    response: Response,
    if_match: IfMatch = None,
) -> CampaignRead:
    row = await service.update_campaign(session, campaign_id, body, if_match)
    return _campaign(row, response)


@liveops_admin_router.delete(
    CAMPAIGNS + "/{campaign_id}",
    operation_id="admin_campaigns_delete",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 412, 422),
    summary="Delete a campaign with its experiment log; deactivate to keep results (marketer)",
)
async def delete_campaign(
    campaign_id: uuid.UUID, _: MarketerUser, session: DbSession, if_match: IfMatch = None
) -> Response:
    await service.delete_campaign(session, campaign_id, if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@liveops_admin_router.post(
    CAMPAIGNS + "/{campaign_id}/activate",
    operation_id="admin_campaigns_activate",
    response_model=CampaignRead,
    responses={200: {"headers": headers("ETag")}, **problem_responses(401, 403, 404, 412, 422)},
    summary="Start matching and assigning players (inside its window) (marketer)",
)
async def activate_campaign(
    campaign_id: uuid.UUID,
    _: MarketerUser,
    session: DbSession,
    response: Response,
    if_match: IfMatch = None,
) -> CampaignRead:
    row = await service.set_active(session, MarketingCampaign, campaign_id, True, if_match)
    return _campaign(row, response)


@liveops_admin_router.post(
    CAMPAIGNS + "/{campaign_id}/deactivate",
    operation_id="admin_campaigns_deactivate",
    response_model=CampaignRead,
    responses={200: {"headers": headers("ETag")}, **problem_responses(401, 403, 404, 412, 422)},
    summary="Stop matching players; the experiment log and results stay (marketer)",
)
async def deactivate_campaign(
    campaign_id: uuid.UUID,
    _: MarketerUser,
    session: DbSession,
    response: Response,
    if_match: IfMatch = None,
) -> CampaignRead:
    row = await service.set_active(session, MarketingCampaign, campaign_id, False, if_match)
    return _campaign(row, response)
