"""A player's in-app notifications."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from gameportal.db import DbReadSession, DbSession
from gameportal.errors import InvalidField, Unauthorized, Unavailable, problem_responses
from gameportal.identity.deps import CurrentUser, IdentityDep, get_principal
from gameportal.identity.service import Principal
from gameportal.kit.openapi import headers
from gameportal.kit.pagination import Page, Pagination, split_page
from gameportal.notifications import live, push, service, stream_tickets
from gameportal.notifications.schemas import (
    INBOX_ITEM_EXAMPLE,
    InboxItem,
    MarkedRead,
    NotificationPreferences,
    PushSubscriptionCreate,
    PushSubscriptionRead,
    StreamTicket,
    UnreadCount,
    VapidPublicKey,
)
from gameportal.notifications.vapid import VapidSigner

me_notifications_router = APIRouter(
    prefix="/api/v1/me/notifications",
    tags=["me: notifications"],
    responses=problem_responses(401, 500),
)


@me_notifications_router.get(
    "",
    operation_id="me_notifications_list",
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


async def _live_hub(request: Request) -> live.InboxHub:
    """Checked before the caller is authenticated: during an outage or a shutdown the
    answer is a 503 with Retry-After whatever else the request holds."""
    hub: live.InboxHub = request.app.state.inbox_hub
    hub.check_available()
    return hub


LiveHub = Annotated[live.InboxHub, Depends(_live_hub)]

# What a stream sends, as the document shows it (generated clients get the text).
_SSE_EXAMPLE = (
    "retry: 3000\n\n"
    f"id: {INBOX_ITEM_EXAMPLE['id']}\nevent: notification\n"
    f"data: {orjson.dumps(INBOX_ITEM_EXAMPLE).decode()}\n\n"
    ": keep-alive\n\n"
)

# The two ways to open a stream, as OpenAPI security schemes (either will do): the
# access token in the header, or a stream ticket in the query (browsers' EventSource).
_TICKET = APIKeyQuery(
    name="ticket",
    scheme_name="StreamTicket",
    description="A ticket from `POST /api/v1/me/notifications/stream-ticket`: for "
    "EventSource, which cannot send Authorization. Single-use, short-lived",
    auto_error=False,
)
_ACCESS_TOKEN = HTTPBearer(
    scheme_name=get_principal.scheme_name,
    description=get_principal.model.description,
    auto_error=False,
)


async def _resume_after(
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    last_event_id_query: Annotated[
        str | None,
        Query(
            alias="lastEventId",
            max_length=64,
            description="As the `Last-Event-ID` header (which wins when both are sent), for "
            "a new EventSource, which cannot set that header",
        ),
    ] = None,
) -> uuid.UUID | None:
    """The event a reconnecting stream resumes after, if it says one."""
    if last_event_id:
        field, location, value = "Last-Event-ID", "header", last_event_id
    elif last_event_id_query:
        field, location, value = "lastEventId", "query", last_event_id_query
    else:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidField(
            field, "must be an event id this stream sent", "uuid_parsing", location=location
        ) from None


ResumeAfter = Annotated[uuid.UUID | None, Depends(_resume_after)]


@dataclass(frozen=True, slots=True)
class StreamStart:
    principal: Principal
    after: uuid.UUID | None  # the last event the client saw, if it says


async def _stream_caller(
    request: Request,
    after: ResumeAfter,
    ticket: Annotated[str | None, Depends(_TICKET)],
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_ACCESS_TOKEN)],
) -> StreamStart:
    """The caller by stream ticket when the URL has one (spending it), else by access
    token as on every other route. The resume point is checked first: a request refused
    for it must leave the ticket unspent for the client's next try (FastAPI does not call
    a dependency whose own dependencies failed)."""
    if ticket is None:
        return StreamStart(await get_principal(request), after)
    identity = request.app.state.identity
    principal = await stream_tickets.redeem(
        request.app.state.db.pool, ticket, identity.idle_timeout
    )
    if principal is None:
        raise Unauthorized(
            "the stream ticket is unknown, already used or expired, or its session has "
            "ended; ask for a new one (POST /api/v1/me/notifications/stream-ticket)"
        )
    return StreamStart(principal, after)


StreamCaller = Annotated[StreamStart, Depends(_stream_caller)]


@me_notifications_router.post(
    "/stream-ticket",
    operation_id="me_notifications_stream_ticket_create",
    response_model=StreamTicket,
    summary="A single-use ticket that opens the live stream from a browser's EventSource",
    description="EventSource cannot send an `Authorization` header, and an access token "
    "must never be put in a URL. Ask for a ticket with the access token just before "
    "connecting, then open `GET /api/v1/me/notifications/stream?ticket=…`. A ticket works "
    "once, within `GAMEPORTAL_STREAM_TICKET_TTL_SECONDS` (30 s), and only while this "
    "session lasts; ask for a new one for each (re)connection, passing the last event "
    "id as `lastEventId`.",
)
async def stream_ticket(
    principal: CurrentUser, identity: IdentityDep, request: Request
) -> StreamTicket:
    issued = await stream_tickets.issue(
        request.app.state.db.pool,
        principal,
        timedelta(seconds=identity.settings.stream_ticket_ttl_seconds),
    )
    return StreamTicket(ticket=issued.ticket, expires_at=issued.expires_at)


@me_notifications_router.get(
    "/stream",
    operation_id="me_notifications_stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `event: notification` with the item as JSON "
            "and its id as the event id; `: keep-alive` comments. Reconnect with "
            "`Last-Event-ID` to get every notification delivered after that one, in order of "
            "delivery (a scheduled one is delivered after those created after it); one "
            "delivered shortly before it may come again, so tell them apart by `id`. The "
            "server "
            "ends the stream when the session ends, and, with a last `retry:` saying how "
            "many milliseconds to wait before reconnecting, when it shuts down or loses "
            "its database",
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "string",
                        "description": "An event stream (text/event-stream, WHATWG HTML "
                        "§9.2): each `notification` event's `data` is an InboxItem as JSON",
                    },
                    "example": _SSE_EXAMPLE,
                }
            },
            "headers": headers("Cache-Control"),
        },
        **problem_responses(422, 503),
    },
    summary="Live notifications (Server-Sent Events)",
    description="Authenticate with `Authorization: Bearer <accessToken>`, or, from a "
    "browser's EventSource, with `?ticket=` from `POST .../stream-ticket`.",
)
async def stream_notifications(
    hub: LiveHub,
    request: Request,
    start: StreamCaller,
    identity: IdentityDep,
) -> StreamingResponse:
    events = live.inbox_events(
        hub,
        request.app.state.db.pool,
        user_id=start.principal.user_id,
        session_id=start.principal.session_id,
        idle=identity.idle_timeout,
        after=start.after,
    )

    async def sse() -> AsyncIterator[bytes]:
        yield b"retry: 3000\n\n"
        async for event in events:
            if isinstance(event, InboxItem):
                data = event.model_dump_json(by_alias=True)
                yield f"id: {event.id}\nevent: notification\ndata: {data}\n\n".encode()
            elif isinstance(event, live.Ending):
                if event.retry_ms is not None:
                    yield f"retry: {event.retry_ms}\n\n".encode()
                return
            else:
                yield b": keep-alive\n\n"

    return StreamingResponse(
        sse(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@me_notifications_router.get(
    "/unread-count", operation_id="me_notifications_unread_count", response_model=UnreadCount
)
async def unread_count(principal: CurrentUser, session: DbReadSession) -> UnreadCount:
    return UnreadCount(unread=await service.unread_count(session, principal.user_id))


@me_notifications_router.post(
    "/{notification_id}/read",
    operation_id="me_notifications_mark_read",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 422),
)
async def mark_read(
    notification_id: uuid.UUID, principal: CurrentUser, session: DbSession
) -> Response:
    await service.mark_read(session, principal.user_id, notification_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me_notifications_router.post(
    "/read-all", operation_id="me_notifications_mark_all_read", response_model=MarkedRead
)
async def mark_all_read(principal: CurrentUser, session: DbSession) -> MarkedRead:
    return MarkedRead(marked=await service.mark_all_read(session, principal.user_id))


preferences_router = APIRouter(
    prefix="/api/v1/me/notification-preferences",
    tags=["me: notifications"],
    responses=problem_responses(401, 500),
)


@preferences_router.get(
    "", operation_id="me_notification_preferences_get", response_model=NotificationPreferences
)
async def get_preferences(
    principal: CurrentUser, session: DbReadSession
) -> NotificationPreferences:
    return await service.preferences(session, principal.user_id)


@preferences_router.put(
    "",
    operation_id="me_notification_preferences_replace",
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
    operation_id="unsubscribe_one_click",
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


push_router = APIRouter(
    prefix="/api/v1/me/push-subscriptions",
    tags=["me: notifications"],
    responses=problem_responses(401, 500),
)


async def _vapid(request: Request) -> VapidSigner:
    signer: VapidSigner | None = request.app.state.vapid
    if signer is None:
        raise Unavailable("Web Push is not configured on this server (no VAPID key)")
    return signer


Vapid = Annotated[VapidSigner, Depends(_vapid)]


@push_router.post(
    "",
    operation_id="me_push_subscriptions_create",
    response_model=PushSubscriptionRead,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": PushSubscriptionRead, "description": "This device's subscription, replaced"},
        **problem_responses(409, 413, 422, 503),
    },
    summary="Register this device's browser push subscription (one per device session)",
)
async def subscribe_push(
    body: PushSubscriptionCreate,
    principal: CurrentUser,
    session: DbSession,
    response: Response,
    identity: IdentityDep,
    _: Vapid,
) -> PushSubscriptionRead:
    subscription, created = await push.subscribe(
        session, identity.settings, principal.user_id, principal.session_id, body
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return push.as_read(subscription, principal.session_id)


@push_router.get(
    "",
    operation_id="me_push_subscriptions_list",
    response_model=Page[PushSubscriptionRead],
    responses=problem_responses(400, 422),
    summary="Your devices' push subscriptions, newest first",
)
async def list_push_subscriptions(
    principal: CurrentUser, session: DbReadSession, page: Pagination
) -> Page[PushSubscriptionRead]:
    rows = await push.list_subscriptions(
        session, principal.user_id, after=page.after, limit=page.limit + 1
    )
    rows, next_cursor = split_page(rows, page.limit)
    return Page[PushSubscriptionRead](
        items=[push.as_read(row, principal.session_id) for row in rows], next_cursor=next_cursor
    )


@push_router.delete(
    "/{subscription_id}",
    operation_id="me_push_subscriptions_delete",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 422),
)
async def delete_push_subscription(
    subscription_id: uuid.UUID, principal: CurrentUser, session: DbSession
) -> Response:
    await push.unsubscribe(session, principal.user_id, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


vapid_router = APIRouter(
    prefix="/api/v1/push", tags=["notifications"], responses=problem_responses(500)
)


@vapid_router.get(
    "/vapid-public-key",
    operation_id="push_vapid_public_key_get",
    response_model=VapidPublicKey,
    responses=problem_responses(503),
    summary="The key browsers subscribe with (`applicationServerKey`); no login",
)
async def vapid_public_key(signer: Vapid) -> VapidPublicKey:
    return VapidPublicKey(public_key=signer.public_key)
