"""A player's in-app notifications."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from gameportal.db import DbReadSession, DbSession
from gameportal.errors import problem_responses
from gameportal.identity.deps import CurrentUser
from gameportal.kit.pagination import Page, Pagination, encode_cursor
from gameportal.notifications import service
from gameportal.notifications.schemas import InboxItem, MarkedRead, UnreadCount

me_notifications_router = APIRouter(
    prefix="/api/v1/me/notifications",
    tags=["me: notifications"],
    responses=problem_responses(401, 500),
)


@me_notifications_router.get(
    "",
    response_model=Page[InboxItem],
    responses=problem_responses(400, 422),
    summary="Your in-app notifications and broadcasts, newest first",
)
async def list_notifications(
    principal: CurrentUser, session: DbReadSession, page: Pagination, unread: bool = False
) -> Page[InboxItem]:
    items = await service.inbox(
        session, principal.user_id, before=page.after, limit=page.limit + 1, unread_only=unread
    )
    more = len(items) > page.limit
    items = items[: page.limit]
    return Page[InboxItem](
        items=items, next_cursor=encode_cursor(items[-1].id) if more and items else None
    )


@me_notifications_router.get("/unread-count", response_model=UnreadCount)
async def unread_count(principal: CurrentUser, session: DbReadSession) -> UnreadCount:
    return UnreadCount(unread=await service.unread_count(session, principal.user_id))


@me_notifications_router.post(
    "/{notification_id}/read",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 422),
)
async def mark_read(
    notification_id: uuid.UUID, principal: CurrentUser, session: DbSession
) -> Response:
    await service.mark_read(session, principal.user_id, notification_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me_notifications_router.post("/read-all", response_model=MarkedRead)
async def mark_all_read(principal: CurrentUser, session: DbSession) -> MarkedRead:
    return MarkedRead(marked=await service.mark_all_read(session, principal.user_id))
