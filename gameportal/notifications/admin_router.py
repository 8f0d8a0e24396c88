"""Operators' view of the queue: send, inspect, retry, cancel, and the numbers."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from gameportal.db import DbPool, DbReadSession, DbSession
from gameportal.errors import problem_responses
from gameportal.identity.deps import AdminUser
from gameportal.kit.pagination import Page, Pagination, split_page
from gameportal.notifications import service
from gameportal.notifications.schemas import MessageCreate, MessageRead, MessageType, QueueStats

admin_notifications_router = APIRouter(
    prefix="/api/v1/admin/notifications",
    tags=["admin: notifications"],
    responses=problem_responses(401, 403, 500),
)

Status = Annotated[str | None, Query(pattern="^(PENDING|PROCESSING|SENT|FAILED)$")]


@admin_notifications_router.post(
    "",
    operation_id="admin_notifications_create",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageRead,
    responses=problem_responses(413, 422),
    summary="Queue a message: one recipient, or a broadcast when recipientUserId is null",
)
async def create_message(body: MessageCreate, admin: AdminUser, session: DbSession) -> MessageRead:
    return MessageRead.model_validate(await service.admin_create(session, admin.user_id, body))


@admin_notifications_router.get(
    "",
    operation_id="admin_notifications_list",
    response_model=Page[MessageRead],
    responses=problem_responses(400, 422),
    summary="Messages, newest first",
)
async def list_messages(
    _: AdminUser,
    session: DbReadSession,
    page: Pagination,
    status_filter: Annotated[Status, Query(alias="status")] = None,
    message_type: Annotated[MessageType | None, Query(alias="type")] = None,
    recipient_user_id: Annotated[uuid.UUID | None, Query(alias="recipientUserId")] = None,
) -> Page[MessageRead]:
    rows = await service.admin_list(
        session,
        status=status_filter,
        message_type=message_type,
        recipient_user_id=recipient_user_id,
        before=page.after,
        limit=page.limit + 1,
    )
    rows, next_cursor = split_page(rows, page.limit)
    return Page[MessageRead](
        items=[MessageRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@admin_notifications_router.get(
    "/stats",
    operation_id="admin_notifications_stats",
    response_model=QueueStats,
    summary="Counts by type and status, the oldest due message's age, the last minute's work",
)
async def queue_stats(_: AdminUser, db: DbPool) -> QueueStats:
    return await service.stats(db.pool)


# `:uuid` in the path of the routes beside /stats: "stats" is not an id, so DELETE /stats
# is a 405 for /stats, not a 422 for a malformed id.
@admin_notifications_router.get(
    "/{message_id:uuid}",
    operation_id="admin_notifications_get",
    response_model=MessageRead,
    responses=problem_responses(404, 422),
)
async def get_message(message_id: uuid.UUID, _: AdminUser, session: DbReadSession) -> MessageRead:
    return MessageRead.model_validate(await service.admin_get(session, message_id))


@admin_notifications_router.post(
    "/{message_id}/retry",
    operation_id="admin_notifications_retry",
    response_model=MessageRead,
    responses=problem_responses(404, 409, 422),
    summary="Give a FAILED message a fresh set of attempts",
)
async def retry_message(message_id: uuid.UUID, _: AdminUser, session: DbSession) -> MessageRead:
    return MessageRead.model_validate(await service.admin_retry(session, message_id))


@admin_notifications_router.delete(
    "/{message_id:uuid}",
    operation_id="admin_notifications_cancel",
    response_model=MessageRead,
    responses=problem_responses(404, 409, 422),
    summary="Cancel a PENDING message (it ends FAILED, with the reason; nothing is deleted)",
)
async def cancel_message(
    message_id: uuid.UUID, admin: AdminUser, session: DbSession
) -> MessageRead:
    return MessageRead.model_validate(
        await service.admin_cancel(session, admin.user_id, message_id)
    )
