"""A player's in-app notifications."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from gameportal.db import DbReadSession, DbSession
from gameportal.errors import InvalidField, problem_responses
from gameportal.identity.deps import CurrentUser, IdentityDep
from gameportal.kit.pagination import Page, Pagination, split_page
from gameportal.notifications import live, service
from gameportal.notifications.schemas import (
    InboxItem,
    MarkedRead,
    NotificationPreferences,
    UnreadCount,
)

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
    items, next_cursor = split_page(items, page.limit)
    return Page[InboxItem](items=items, next_cursor=next_cursor)


@me_notifications_router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `event: notification` with the item as JSON "
            "and its id as the event id; `: keep-alive` comments; send `Last-Event-ID` "
            "to resume without gaps",
            "content": {"text/event-stream": {}},
        },
        **problem_responses(422),
    },
    summary="Live notifications (Server-Sent Events)",
)
async def stream_notifications(
    request: Request,
    principal: CurrentUser,
    identity: IdentityDep,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    after = None
    if last_event_id:
        try:
            after = uuid.UUID(last_event_id)
        except ValueError:
            raise InvalidField(
                "Last-Event-ID", "must be an event id this stream sent", "uuid_parsing"
            ) from None
    db = request.app.state.db
    events = live.inbox_events(
        request.app.state.inbox_hub,
        db.sessionmaker,
        db.pool,
        user_id=principal.user_id,
        session_id=principal.session_id,
        idle=identity.idle_timeout,
        after=after,
    )

    async def sse() -> AsyncIterator[bytes]:
        yield b"retry: 3000\n\n"
        async for item in events:
            if item is None:
                yield b": keep-alive\n\n"
            else:
                data = item.model_dump_json(by_alias=True)
                yield f"id: {item.id}\nevent: notification\ndata: {data}\n\n".encode()

    return StreamingResponse(
        sse(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
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


preferences_router = APIRouter(
    prefix="/api/v1/me/notification-preferences",
    tags=["me: notifications"],
    responses=problem_responses(401, 500),
)


@preferences_router.get("", response_model=NotificationPreferences)
async def get_preferences(
    principal: CurrentUser, session: DbReadSession
) -> NotificationPreferences:
    return await service.preferences(session, principal.user_id)


@preferences_router.put(
    "",
    response_model=NotificationPreferences,
    responses=problem_responses(413, 422),
    summary="Opt out of categories per channel (transactional and account mail always go)",
)
async def put_preferences(
    body: NotificationPreferences, principal: CurrentUser, session: DbSession
) -> NotificationPreferences:
    return await service.set_preferences(session, principal.user_id, body)


unsubscribe_router = APIRouter(
    prefix="/api/v1/unsubscribe", tags=["notifications"], responses=problem_responses(500)
)


@unsubscribe_router.post(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 422),
    summary="One-click unsubscribe (RFC 8058) with the signed link from a mail; no login",
)
async def unsubscribe(
    session: DbSession,
    identity: IdentityDep,
    token: Annotated[str, Query(min_length=1, max_length=512)],
) -> Response:
    await service.unsubscribe(session, identity.settings.secret_key, token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
