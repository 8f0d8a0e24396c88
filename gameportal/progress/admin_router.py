"""Administering progress over HTTP: a game's API keys (admin), achievements and level
thresholds (editor)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from gameportal.db import DbReadSession, DbSession
from gameportal.errors import problem_responses
from gameportal.identity.deps import AdminUser, EditorUser
from gameportal.kit.openapi import headers
from gameportal.kit.pagination import Page, Pagination, split_page
from gameportal.progress.schemas import (
    AchievementCreate,
    AchievementRead,
    AchievementUpdate,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    LevelsPut,
    LevelsRead,
)
from gameportal.progress.service import admin as service

admin_progress_router = APIRouter(
    prefix="/api/v1/admin", tags=["progress administration"], responses=problem_responses(500)
)

# --- API keys --------------------------------------------------------------------------------


@admin_progress_router.post(
    "/games/{game_id}/api-keys",
    operation_id="admin_games_api_keys_create",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 404, 422),
    summary="A new API key for a game's servers, shown this once (admin)",
)
async def create_api_key(
    game_id: uuid.UUID, body: ApiKeyCreate, admin: AdminUser, session: DbSession
) -> ApiKeyCreated:
    row, key = await service.create_key(session, admin.user_id, game_id, body.name)
    return ApiKeyCreated.model_validate({**ApiKeyRead.model_validate(row).model_dump(), "key": key})


@admin_progress_router.get(
    "/games/{game_id}/api-keys",
    operation_id="admin_games_api_keys_list",
    response_model=Page[ApiKeyRead],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="A game's API keys, newest first (admin)",
)
async def list_api_keys(
    game_id: uuid.UUID, _: AdminUser, session: DbReadSession, page: Pagination
) -> Page[ApiKeyRead]:
    rows = await service.list_keys(session, game_id, before=page.after, limit=page.limit + 1)
    items, cursor = split_page(rows, page.limit)
    return Page[ApiKeyRead](items=[ApiKeyRead.model_validate(r) for r in items], next_cursor=cursor)


@admin_progress_router.delete(
    "/games/{game_id}/api-keys/{key_id}",
    operation_id="admin_games_api_keys_revoke",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 422),
    summary="Revoke an API key: the next request with it is refused (admin)",
)
async def revoke_api_key(
    game_id: uuid.UUID, key_id: uuid.UUID, admin: AdminUser, session: DbSession
) -> Response:
    await service.revoke_key(session, admin.user_id, game_id, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- achievements ----------------------------------------------------------------------------


@admin_progress_router.post(
    "/achievements",
    operation_id="admin_achievements_create",
    response_model=AchievementRead,
    status_code=status.HTTP_201_CREATED,
    responses={201: {"headers": headers("Location")}, **problem_responses(401, 403, 409, 422)},
    summary="Create an achievement (editor)",
)
async def create_achievement(
    body: AchievementCreate, _: EditorUser, session: DbSession, response: Response
) -> AchievementRead:
    item = await service.create_achievement(session, body)
    response.headers["Location"] = f"/api/v1/admin/achievements/{item.id}"
    return item


@admin_progress_router.get(
    "/achievements",
    operation_id="admin_achievements_list",
    response_model=Page[AchievementRead],
    responses=problem_responses(400, 401, 403, 422),
    summary="Achievements, oldest first, of every game or of `gameId` (editor)",
)
async def list_achievements(
    _: EditorUser,
    session: DbReadSession,
    page: Pagination,
    game_id: Annotated[uuid.UUID | None, Query(alias="gameId")] = None,
) -> Page[AchievementRead]:
    rows = await service.list_achievements(
        session, game_id=game_id, after=page.after, limit=page.limit + 1
    )
    items, cursor = split_page(rows, page.limit)
    return Page[AchievementRead](items=items, next_cursor=cursor)


@admin_progress_router.get(
    "/achievements/{achievement_id}",
    operation_id="admin_achievements_get",
    response_model=AchievementRead,
    responses=problem_responses(401, 403, 404, 422),
    summary="An achievement, hidden or not (editor)",
)
async def get_achievement(
    achievement_id: uuid.UUID, _: EditorUser, session: DbReadSession
) -> AchievementRead:
    return await service.get_achievement(session, achievement_id)


@admin_progress_router.patch(
    "/achievements/{achievement_id}",
    operation_id="admin_achievements_update",
    response_model=AchievementRead,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Change an achievement's fields (editor)",
)
async def update_achievement(
    achievement_id: uuid.UUID, body: AchievementUpdate, _: EditorUser, session: DbSession
) -> AchievementRead:
    return await service.update_achievement(session, achievement_id, body)


@admin_progress_router.delete(
    "/achievements/{achievement_id}",
    operation_id="admin_achievements_delete",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 422),
    summary="Delete an achievement and its unlocks; the points it gave stay (editor)",
)
async def delete_achievement(
    achievement_id: uuid.UUID, _: EditorUser, session: DbSession
) -> Response:
    await service.delete_achievement(session, achievement_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- levels ----------------------------------------------------------------------------------


@admin_progress_router.put(
    "/games/{game_id}/levels",
    operation_id="admin_games_levels_replace",
    response_model=LevelsRead,
    responses=problem_responses(401, 403, 404, 422),
    summary="Set a game's level thresholds: levels then follow experience or points (editor)",
)
async def put_levels(
    game_id: uuid.UUID, body: LevelsPut, _: EditorUser, session: DbSession
) -> LevelsRead:
    return LevelsRead.model_validate(await service.put_levels(session, game_id, body))


@admin_progress_router.get(
    "/games/{game_id}/levels",
    operation_id="admin_games_levels_get",
    response_model=LevelsRead,
    responses=problem_responses(401, 403, 404, 422),
    summary="A game's level thresholds (editor)",
)
async def get_levels(game_id: uuid.UUID, _: EditorUser, session: DbReadSession) -> LevelsRead:
    return LevelsRead.model_validate(await service.get_levels(session, game_id))


@admin_progress_router.delete(
    "/games/{game_id}/levels",
    operation_id="admin_games_levels_delete",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 422),
    summary="Remove a game's thresholds: game servers set levels again (editor)",
)
async def delete_levels(game_id: uuid.UUID, _: EditorUser, session: DbSession) -> Response:
    await service.delete_levels(session, game_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
