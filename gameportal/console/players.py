"""Players: find an account, see it, change its roles, block it, end its sessions.

Admins only (as the API's /api/v1/admin/users routes), and through the same identity
admin service: the last active admin cannot lose the role or be blocked, blocking ends
every session at once, and each change is a security event of the account."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Query, Request
from starlette.responses import Response
from ua_parser import parse as parse_user_agent

from gameportal.console.frame import (
    ROLE_LABELS,
    NavEntry,
    console_form,
    console_router,
    not_found,
    render,
    require_console_role,
    see_other,
)
from gameportal.console.security import event_label, event_tone
from gameportal.db import DbReadSession, DbSession
from gameportal.identity import service as identity_service
from gameportal.identity.service import Identity, LastAdmin, Principal, UserNotFound
from gameportal.identity.service.admin import admin_end_user_session
from gameportal.kit.ids import first_id_at
from gameportal.models import ROLES

router = console_router(
    "/players", nav=NavEntry("Players", "/console/players", roles=("admin",), order=10)
)
Admin = Annotated[Principal, Depends(require_console_role("admin"))]

PAGE_SIZE = 50
STAFF_ROLE_CHOICES = ("editor", "marketer", "admin")


@lru_cache(maxsize=1024)
def browser_label(user_agent: str | None) -> str:
    """ "Chrome 131 on Windows 10" from a user agent, or the start of it when unknown."""
    if not user_agent:
        return "Unknown browser"
    found = parse_user_agent(user_agent)
    agent, system = found.user_agent, found.os
    if agent is None or agent.family == "Other":
        return user_agent[:60] + ("…" if len(user_agent) > 60 else "")
    label = " ".join(filter(None, [agent.family, agent.major]))
    if system is not None and system.family != "Other":
        label += " on " + " ".join(filter(None, [system.family, system.major]))
    return label


def _day_start() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@router.get("")
async def players(
    request: Request,
    admin: Admin,
    session: DbReadSession,
    q: Annotated[str, Query(max_length=320)] = "",
    role: Annotated[str, Query(max_length=16)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    joined: Annotated[str, Query(max_length=16)] = "",
    after: uuid.UUID | None = None,
) -> Response:
    role = role if role in ROLES else ""
    status = status if status in ("active", "blocked") else ""
    joined = joined if joined == "today" else ""
    start = after
    if joined and start is None:
        # Ids are time-ordered (UUIDv7): today's accounts are those above midnight's first id.
        start = first_id_at(_day_start().timestamp())
    users = await identity_service.admin_list_users(
        session,
        email_prefix=q.strip() or None,
        role=role or None,
        is_blocked={"active": False, "blocked": True}.get(status),
        after=start,
        limit=PAGE_SIZE + 1,
    )
    next_after = users[PAGE_SIZE - 1].id if len(users) > PAGE_SIZE else None
    filters = {"q": q, "role": role, "status": status, "joined": joined}
    return render(
        request,
        "console/players/list.html",
        users=users[:PAGE_SIZE],
        filters=filters,
        query_without_cursor=urlencode({k: v for k, v in filters.items() if v}),
        next_after=next_after,
        roles=ROLES,
        role_labels=ROLE_LABELS,
        paged=after is not None,
    )


async def _player_page(
    request: Request, admin: Principal, session: DbReadSession, user_id: uuid.UUID
) -> Response:
    identity: Identity = request.app.state.identity
    try:
        user = await identity_service.admin_get_user(session, user_id)
    except UserNotFound:
        raise not_found("player") from None
    sessions = await identity_service.admin_user_sessions(
        session, identity, user_id, before=None, limit=100
    )
    events = await identity_service.admin_security_events(session, user_id, before=None, limit=25)
    return render(
        request,
        "console/players/detail.html",
        player=user,
        sessions=sessions,
        events=events,
        staff_role_choices=STAFF_ROLE_CHOICES,
        event_label=event_label,
        event_tone=event_tone,
        own_session_id=admin.session_id,
        browser_label=browser_label,
        is_self=user.id == admin.user_id,
    )


@router.get("/{user_id}")
async def player(
    user_id: uuid.UUID, request: Request, admin: Admin, session: DbReadSession
) -> Response:
    return await _player_page(request, admin, session, user_id)


def _back(user_id: uuid.UUID) -> str:
    return f"/console/players/{user_id}"


@router.post("/{user_id}/roles")
async def change_roles(
    user_id: uuid.UUID, request: Request, admin: Admin, session: DbSession
) -> Response:
    form = await console_form(request)
    wanted = [r for r in form.getlist("roles") if isinstance(r, str) and r in STAFF_ROLE_CHOICES]
    try:
        user = await identity_service.admin_update_user(
            session, admin, user_id, roles=["user", *wanted], is_blocked=None
        )
    except LastAdmin:
        return see_other(
            request,
            _back(user_id),
            flash_message="This is the last active administrator: appoint another one "
            "before removing the Admin role.",
            flash_kind="error",
        )
    except UserNotFound:
        raise not_found("player") from None
    names = ", ".join(ROLE_LABELS[r] for r in user.roles if r != "user") or "Player only"
    return see_other(request, _back(user_id), flash_message=f"Roles saved: {names}.")


@router.post("/{user_id}/block")
async def block(user_id: uuid.UUID, request: Request, admin: Admin, session: DbSession) -> Response:
    try:
        await identity_service.admin_update_user(
            session, admin, user_id, roles=None, is_blocked=True
        )
    except LastAdmin:
        return see_other(
            request,
            _back(user_id),
            flash_message="This is the last active administrator and cannot be blocked: "
            "appoint another one first.",
            flash_kind="error",
        )
    except UserNotFound:
        raise not_found("player") from None
    return see_other(
        request,
        _back(user_id),
        flash_message="Blocked. Every session of this account has ended.",
    )


@router.post("/{user_id}/unblock")
async def unblock(
    user_id: uuid.UUID, request: Request, admin: Admin, session: DbSession
) -> Response:
    try:
        await identity_service.admin_update_user(
            session, admin, user_id, roles=None, is_blocked=False
        )
    except UserNotFound:
        raise not_found("player") from None
    return see_other(request, _back(user_id), flash_message="Unblocked: the account may sign in.")


@router.post("/{user_id}/sessions/end-all")
async def end_all_sessions(
    user_id: uuid.UUID, request: Request, admin: Admin, session: DbSession
) -> Response:
    try:
        ended = await identity_service.admin_end_user_sessions(session, admin, user_id)
    except UserNotFound:
        raise not_found("player") from None
    noun = "session" if ended == 1 else "sessions"
    return see_other(request, _back(user_id), flash_message=f"Ended {ended} {noun}.")


@router.post("/{user_id}/sessions/{session_id}/end")
async def end_session(
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    request: Request,
    admin: Admin,
    session: DbSession,
) -> Response:
    try:
        await admin_end_user_session(session, admin, user_id, session_id)
    except UserNotFound:
        raise not_found("player") from None
    except identity_service.SessionNotFound:
        return see_other(
            request,
            _back(user_id),
            flash_message="That session had already ended.",
            flash_kind="info",
        )
    return see_other(request, _back(user_id), flash_message="Session ended.")
