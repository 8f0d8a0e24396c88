"""Progress over HTTP: game servers report progress and unlock achievements with their
game's API key; anyone reads a published game's achievements; players read their own."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import ValidationError

from gameportal.content.cache import etag_matches
from gameportal.content.public import digest_etag
from gameportal.errors import problem_responses
from gameportal.identity.deps import CurrentUser, MaybeUser
from gameportal.kit.ids import plain_uuid
from gameportal.kit.openapi import headers
from gameportal.kit.pagination import Page, Pagination
from gameportal.kit.routing import answer_directly
from gameportal.progress.deps import GameKey, game_key
from gameportal.progress.schemas import (
    KEY_PATTERN,
    CatalogueEntry,
    MyAchievement,
    ProgressChange,
    ProgressRead,
    ProgressUpdated,
    UnlockResult,
)
from gameportal.progress.service import reads, updates
from gameportal.progress.service.reads import progress_read
from gameportal.progress.service.runtime import runtime

JSON = "application/json"

# --- game servers ----------------------------------------------------------------------------

game_server_router = APIRouter(
    prefix="/api/v1/games/{game_id}/players/{user_id}",
    tags=["game servers"],
    responses=problem_responses(401, 403, 404, 409, 422, 500),
)


@game_server_router.post(
    "/progress",
    operation_id="games_players_progress_report",
    response_model=ProgressUpdated,
    summary="Report a player's progress: add points, experience, stats; set the level "
    "(game server)",
    description="Applied atomically, once per `idempotencyKey` (a retry gets the first "
    "answer; the key with other changes is 409). Creates the player's progress in the game "
    "on first use. Achievements whose criteria the new state meets unlock in the same "
    "transaction. 404: another game's key, or no such player; 409: the game is not "
    "published, the player is blocked, or `level` is sent for a game with thresholds.",
)
async def report_progress(
    request: Request,
    game_id: uuid.UUID,
    user_id: uuid.UUID,
    body: ProgressChange,
    key: GameKey,
) -> Response:
    state = request.app.state
    answer = await updates.report(state.db.pool, runtime(state), key, game_id, user_id, body)
    return Response(answer, media_type=JSON)


async def _report_directly(request: Request, body: bytes) -> Response | None:
    # A game server's update without FastAPI's dependency solving: on this route it cost
    # as much as the update's own work in this process (profiled at 32 connections). The
    # same model takes the body; anything it refuses, another content type, or an id not
    # in the canonical form goes to the declared route, which answers as ever (a test
    # compares the two).
    if request.headers.get("content-type") != JSON:
        return None
    params = request.scope["path_params"]
    game_id, user_id = plain_uuid(params["game_id"]), plain_uuid(params["user_id"])
    if game_id is None or user_id is None:
        return None
    try:
        change = ProgressChange.model_validate_json(body)
    except ValidationError:
        return None
    key = await game_key(request)
    state = request.app.state
    answer = await updates.report(state.db.pool, runtime(state), key, game_id, user_id, change)
    return Response(answer, media_type=JSON)


answer_directly(game_server_router, report_progress, _report_directly, with_body=True)


@game_server_router.post(
    "/achievements/{achievement_key}",
    operation_id="games_players_achievements_unlock",
    response_model=UnlockResult,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": UnlockResult, "description": "The player already had it"}},
    summary="Unlock an achievement for a player (game server)",
    description="201 when newly unlocked (its points added, the player notified), 200 when "
    "the player already had it; never unlocked twice, whatever the concurrency.",
)
async def unlock_achievement(
    request: Request,
    game_id: uuid.UUID,
    user_id: uuid.UUID,
    achievement_key: Annotated[str, Path(pattern=KEY_PATTERN)],
    key: GameKey,
) -> Response:
    state = request.app.state
    answer, new = await updates.unlock(
        state.db.pool, runtime(state), key, game_id, user_id, achievement_key
    )
    return Response(answer, status_code=201 if new else 200, media_type=JSON)


@game_server_router.get(
    "/progress",
    operation_id="games_players_progress_get",
    response_model=ProgressRead,
    summary="A player's progress in the game (game server)",
)
async def get_player_progress(
    request: Request, game_id: uuid.UUID, user_id: uuid.UUID, key: GameKey
) -> ProgressRead:
    state = request.app.state
    row, held = await updates.server_progress(state.db.pool, runtime(state), key, game_id, user_id)
    return progress_read(row, held)


# --- the public catalogue --------------------------------------------------------------------

games_router = APIRouter(prefix="/api/v1/games", tags=["achievements"])


@games_router.get(
    "/{game_id}/achievements",
    operation_id="games_achievements_list",
    response_model=Page[CatalogueEntry],
    responses={
        200: {"headers": headers("ETag", "Cache-Control")},
        304: {
            "description": "Not modified (If-None-Match)",
            "headers": headers("ETag", "Cache-Control"),
        },
        **problem_responses(400, 401, 404, 422, 500),
    },
    summary="A published game's achievements with unlock rates; yours with a token (anyone)",
    description="Hidden achievements the caller has not unlocked have their key, title, "
    "description, criteria and media withheld. With an access token, each says whether "
    "and when the caller unlocked it. `unlockRate` is the share of the game's players "
    "(those with progress in it) who have it, recounted every few seconds.",
)
async def game_achievements(
    request: Request, game_id: uuid.UUID, page: Pagination, caller: MaybeUser
) -> Response:
    viewer = caller.user_id if caller is not None else None
    items, cursor = await reads.catalogue(
        request.app.state.db.pool,
        runtime(request.app.state),
        game_id,
        viewer=viewer,
        after=page.after,
        limit=page.limit,
    )
    body = Page[CatalogueEntry](items=items, next_cursor=cursor).model_dump_json(by_alias=True)
    encoded = body.encode()
    etag = digest_etag(encoded)
    max_age = request.app.state.settings.content_max_age_seconds
    headers = {
        "ETag": etag,
        # A player's own view is theirs alone; the anonymous one may be shared.
        "Cache-Control": "private, no-cache"
        if viewer is not None
        else f"public, max-age={max_age}, must-revalidate",
        "Vary": "Authorization",
    }
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(encoded, media_type=JSON, headers=headers)


# --- the player's own ------------------------------------------------------------------------

me_progress_router = APIRouter(
    prefix="/api/v1/me", tags=["progress"], responses=problem_responses(401, 422, 500)
)


@me_progress_router.get(
    "/progress",
    operation_id="me_progress_list",
    response_model=Page[ProgressRead],
    responses=problem_responses(400),
    summary="Your progress in every game, most recently started first (user)",
)
async def my_progress_list(
    request: Request, principal: CurrentUser, page: Pagination
) -> Page[ProgressRead]:
    items, cursor = await reads.my_progress_page(
        request.app.state.db.pool, principal.user_id, before=page.after, limit=page.limit
    )
    return Page[ProgressRead](items=items, next_cursor=cursor)


@me_progress_router.get(
    "/progress/{game_id}",
    operation_id="me_progress_get",
    response_model=ProgressRead,
    responses=problem_responses(404),
    summary="Your progress in one game (user)",
)
async def my_progress(request: Request, game_id: uuid.UUID, principal: CurrentUser) -> ProgressRead:
    return await reads.my_progress(request.app.state.db.pool, principal.user_id, game_id)


@me_progress_router.get(
    "/achievements",
    operation_id="me_achievements_list",
    response_model=Page[MyAchievement],
    responses=problem_responses(400),
    summary="Your achievements, newest first, in every game or in `gameId` (user)",
)
async def my_achievements(
    request: Request,
    principal: CurrentUser,
    page: Pagination,
    game_id: Annotated[uuid.UUID | None, Query(alias="gameId")] = None,
) -> Page[MyAchievement]:
    items, cursor = await reads.my_achievements(
        request.app.state.db.pool,
        runtime(request.app.state),
        principal.user_id,
        game_id=game_id,
        before=page.after,
        limit=page.limit,
    )
    return Page[MyAchievement](items=items, next_cursor=cursor)
