"""Live operations over HTTP, player side: the campaigns a request matches, conversions
(by the player, or by a game server on the player's behalf), and the marketers' preview."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from gameportal.errors import problem_responses
from gameportal.identity.deps import CurrentUser, MarketerUser
from gameportal.identity.service import Identity
from gameportal.kit.routing import answer_directly
from gameportal.kit.schemas import LANGUAGE_TAG_PATTERN
from gameportal.liveops import conversions, evaluation
from gameportal.liveops.player_schemas import (
    ActiveCampaigns,
    ConversionCreate,
    ConversionRead,
    PreviewRead,
    PreviewRequest,
)
from gameportal.liveops.preview import preview
from gameportal.liveops.snapshot import CampaignSnapshots
from gameportal.progress.deps import GameKey
from gameportal.progress.service.runtime import runtime

JSON = "application/json"

campaigns_router = APIRouter(
    prefix="/api/v1/campaigns", tags=["campaigns"], responses=problem_responses(500)
)

_ACTIVE_DESCRIPTION = """
The live campaigns this request matches, each with the caller's variant (its id and
payload) and the published content it promotes; ordered by campaign creation.

The caller is a logged-in player (`Authorization: Bearer <accessToken>`) or a visitor
who has not logged in, named by `X-Anonymous-Id` (a UUID the client makes once and keeps).
With neither, 401. A visitor's assignments pass to the account
when the client logs in or registers with the same `X-Anonymous-Id`.

Matching: the country of the client's address (`X-Forwarded-For` counts only from the
trusted proxies, GAMEPORTAL_TRUSTED_PROXIES), IP ranges, the device type from the
User-Agent, the languages of `?language=` or else Accept-Language, the schedule, and a
player's progress (segments; visitors match no campaign with a segment).

Assignment is sticky: the first answer logs the variant (once, whatever the concurrency)
and later answers keep it, even if the campaign's weights change. A campaign whose
coverage leaves the caller out is not listed; of the campaigns of one exclusion group,
the caller is only ever in one.
"""


@campaigns_router.get(
    "/active",
    operation_id="campaigns_active_list",
    response_model=ActiveCampaigns,
    responses=problem_responses(401, 422, 503),
    summary="The campaigns for this player or visitor, with their variants (anyone)",
    description=_ACTIVE_DESCRIPTION,
    openapi_extra={
        "security": [{"AccessToken": []}, {}],
        # Read by the handler itself (see _active); documented here.
        "parameters": [
            {
                "name": "X-Anonymous-Id",
                "in": "header",
                "required": False,
                "description": "A visitor's id, a random UUID the client makes once and "
                "keeps (without an access token); not the nil or max UUID",
                "schema": {"type": "string", "format": "uuid"},
            }
        ],
    },
)
async def active_campaigns(
    request: Request,
    language: Annotated[
        str | None,
        Query(
            max_length=35,
            pattern=LANGUAGE_TAG_PATTERN,
            description="A BCP 47 language tag (`pt-BR`) instead of Accept-Language",
        ),
    ] = None,
) -> Response:
    return await _active(request, b"")


async def _active(request: Request, _: bytes) -> Response:
    # Answered without FastAPI's dependency solving and response model (see
    # answer_directly): this is a hot path. The parameters are read here, as declared.
    state = request.app.state
    headers = request.headers
    peer = request.client.host if request.client else None
    facts = evaluation.request_facts(
        peer=peer,
        forwarded_for=headers.get("x-forwarded-for"),
        proxies=state.trusted_proxies,
        user_agent=headers.get("user-agent"),
        explicit_language=request.query_params.get("language"),
        accept_language=headers.get("accept-language"),
    )
    snapshots: CampaignSnapshots = state.liveops
    authorization = headers.get("authorization")
    if authorization is not None:
        identity: Identity = state.identity
        claims = evaluation.access_claims(identity.tokens, authorization)
        body = await evaluation.for_player(
            state.db.pool, snapshots, claims, facts, idle=identity.idle_timeout
        )
    else:
        visitor = evaluation.anonymous_id(headers.get("x-anonymous-id"))
        body = await evaluation.for_visitor(state.db.pool, snapshots, visitor, facts)
    return Response(body, media_type=JSON)


answer_directly(campaigns_router, active_campaigns, _active)


_CONVERSION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ConversionRead, "description": "Recorded before: its first record"},
}


@campaigns_router.post(
    "/{campaign_id}/conversions",
    operation_id="campaigns_conversions_create",
    status_code=status.HTTP_201_CREATED,
    response_model=ConversionRead,
    responses={**_CONVERSION_RESPONSES, **problem_responses(401, 404, 409, 422)},
    summary="Record that you converted in a campaign you are in, once (user)",
    description="201 the first time; a repeat answers 200 with the first record (its "
    "`event` and `value` kept). 409: you have no variant in this campaign (assignment "
    "happens in GET /api/v1/campaigns/active).",
)
async def convert(
    request: Request, campaign_id: uuid.UUID, body: ConversionCreate, principal: CurrentUser
) -> Response:
    row, first = await conversions.convert(
        request.app.state.db.pool,
        campaign_id,
        principal.user_id,
        event=body.event,
        value=body.value,
    )
    return _conversion(row, first)


def _conversion(row: dict[str, object], first: bool) -> Response:
    return Response(
        ConversionRead.model_validate(row).model_dump_json(by_alias=True),
        status_code=status.HTTP_201_CREATED if first else status.HTTP_200_OK,
        media_type=JSON,
    )


game_server_conversions_router = APIRouter(
    prefix="/api/v1/games/{game_id}/players/{user_id}",
    tags=["game servers"],
    responses=problem_responses(401, 403, 404, 409, 422, 500),
)


@game_server_conversions_router.post(
    "/campaigns/{campaign_id}/conversions",
    operation_id="games_players_campaigns_conversions_create",
    status_code=status.HTTP_201_CREATED,
    response_model=ConversionRead,
    responses=_CONVERSION_RESPONSES,
    summary="Record a player's conversion in a campaign, once (game server)",
    description="As the player's own route, with the game's API key. 404: another game's "
    "key, no such player, or a campaign whose segment is in another game (a campaign "
    "without a segment takes any game's key).",
)
async def convert_for_player(
    request: Request,
    game_id: uuid.UUID,
    user_id: uuid.UUID,
    campaign_id: uuid.UUID,
    body: ConversionCreate,
    key: GameKey,
) -> Response:
    state = request.app.state
    row, first, key_id = await conversions.convert_for_game(
        state.db.pool, key, game_id, user_id, campaign_id, event=body.event, value=body.value
    )
    await runtime(state).key_use.used(state.db.pool, key_id)
    return _conversion(row, first)


admin_preview_router = APIRouter(
    prefix="/api/v1/admin/campaigns",
    tags=["admin: live operations"],
    responses=problem_responses(401, 403, 500),
)


@admin_preview_router.post(
    "/{campaign_id}/preview",
    operation_id="admin_campaigns_preview",
    response_model=PreviewRead,
    responses=problem_responses(404, 422),
    summary="Whether a request would match the campaign, rule by rule (marketer)",
    description="The campaign as stored, whatever its state. `ip` is resolved to a "
    "country with the same offline database as live requests and checked against the "
    "campaign's ranges in PostgreSQL; `userAgent` gives the device type; `userId` a "
    "player's progress for the segment and their variant (the one logged, or the one "
    "they would get).",
)
async def preview_campaign(
    request: Request, campaign_id: uuid.UUID, body: PreviewRequest, _: MarketerUser
) -> PreviewRead:
    state = request.app.state
    snapshots: CampaignSnapshots = state.liveops
    found = await preview(
        state.db.pool,
        campaign_id,
        ip=ipaddress.ip_address(body.ip),
        user_agent=body.user_agent,
        user_id=body.user_id,
        language=body.language,
        now=snapshots.clock(),
    )
    return PreviewRead.model_validate(found)
