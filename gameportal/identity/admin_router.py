"""Administration of users and their device sessions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from gameportal.db import DbReadSession, DbSession
from gameportal.errors import problem_responses
from gameportal.identity import service
from gameportal.identity.deps import AdminUser, IdentityDep
from gameportal.identity.router import SessionsEnded
from gameportal.identity.schemas import (
    AdminUserUpdate,
    Role,
    SecurityEventRead,
    SessionRead,
    UserRead,
)
from gameportal.kit.pagination import Page, Pagination, split_page
from gameportal.kit.schemas import QueryText

admin_router = APIRouter(
    prefix="/api/v1/admin/users", tags=["admin"], responses=problem_responses(500)
)

_ADMIN = problem_responses(401, 403)


@admin_router.get(
    "",
    operation_id="admin_users_list",
    response_model=Page[UserRead],
    responses=problem_responses(400, 401, 403, 422),
)
async def list_users(
    _: AdminUser,
    session: DbReadSession,
    page: Pagination,
    email_prefix: Annotated[
        QueryText | None,
        Query(alias="emailPrefix", max_length=320, description="Case-insensitive email prefix"),
    ] = None,
    role: Role | None = None,
    is_blocked: Annotated[bool | None, Query(alias="isBlocked")] = None,
) -> Page[UserRead]:
    users = await service.admin_list_users(
        session,
        email_prefix=email_prefix,
        role=role,
        is_blocked=is_blocked,
        after=page.after,
        limit=page.limit + 1,
    )
    users, next_cursor = split_page(users, page.limit)
    return Page[UserRead](
        items=[UserRead.model_validate(u) for u in users], next_cursor=next_cursor
    )


@admin_router.get(
    "/{user_id}",
    operation_id="admin_users_get",
    response_model=UserRead,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_user(user_id: uuid.UUID, _: AdminUser, session: DbReadSession) -> UserRead:
    return UserRead.model_validate(await service.admin_get_user(session, user_id))


@admin_router.patch(
    "/{user_id}",
    operation_id="admin_users_update",
    response_model=UserRead,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Change roles or block; blocking ends every session at once",
)
async def update_user(
    user_id: uuid.UUID, body: AdminUserUpdate, admin: AdminUser, session: DbSession
) -> UserRead:
    user = await service.admin_update_user(
        session,
        admin,
        user_id,
        roles=list(body.roles) if body.roles is not None else None,
        is_blocked=body.is_blocked,
    )
    return UserRead.model_validate(user)


@admin_router.get(
    "/{user_id}/sessions",
    operation_id="admin_users_sessions_list",
    response_model=Page[SessionRead],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="A user's live device sessions, newest first",
)
async def user_sessions(
    user_id: uuid.UUID,
    _: AdminUser,
    session: DbReadSession,
    identity: IdentityDep,
    page: Pagination,
) -> Page[SessionRead]:
    rows = await service.admin_user_sessions(
        session, identity, user_id, before=page.after, limit=page.limit + 1
    )
    rows, next_cursor = split_page(rows, page.limit)
    return Page[SessionRead](
        items=[SessionRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@admin_router.get(
    "/{user_id}/security-events",
    operation_id="admin_users_security_events_list",
    response_model=Page[SecurityEventRead],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="What happened to an account: replayed tokens, lockouts, blocks, role changes",
)
async def user_security_events(
    user_id: uuid.UUID, _: AdminUser, session: DbReadSession, page: Pagination
) -> Page[SecurityEventRead]:
    rows = await service.admin_security_events(
        session, user_id, before=page.after, limit=page.limit + 1
    )
    rows, next_cursor = split_page(rows, page.limit)
    return Page[SecurityEventRead](
        items=[SecurityEventRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@admin_router.delete(
    "/{user_id}/sessions",
    operation_id="admin_users_sessions_end",
    response_model=SessionsEnded,
    responses=problem_responses(401, 403, 404, 422),
)
async def end_user_sessions(
    user_id: uuid.UUID, admin: AdminUser, session: DbSession
) -> SessionsEnded:
    return SessionsEnded(ended=await service.admin_end_user_sessions(session, admin, user_id))
