"""Security events of every account (failed sign-ins, lockouts, replayed refresh tokens,
blocks, role changes), newest first, filtered by kind: the overview's figures link here."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.responses import Response

from gameportal.console import repository
from gameportal.console.frame import NavEntry, console_router, render, require_console_role
from gameportal.db import DbReadSession
from gameportal.identity.service import Principal

router = console_router(
    "/security-events", nav=NavEntry("Security events", "/console/security-events", ("admin",), 15)
)
Admin = Annotated[Principal, Depends(require_console_role("admin"))]

EVENT_LABELS = {
    "login_failed": "Failed sign-in",
    "login_lockout": "Sign-in locked",
    "refresh_token_reuse": "Refresh token replayed",
    "roles_changed": "Roles changed",
    "blocked": "Blocked",
    "unblocked": "Unblocked",
    "sessions_ended_by_admin": "Sessions ended by an admin",
    "session_ended_by_admin": "Session ended by an admin",
    "password_changed": "Password changed",
    "password_reset": "Password reset",
}
# Badge colour per kind (console.css): what an operator should look at stands out.
EVENT_TONES = {
    "login_failed": "warn",
    "login_lockout": "danger",
    "refresh_token_reuse": "danger",
    "blocked": "danger",
    "roles_changed": "info",
}

PAGE_SIZE = 50


def event_label(kind: str) -> str:
    return EVENT_LABELS.get(kind, kind.replace("_", " ").capitalize())


def event_tone(kind: str) -> str:
    return EVENT_TONES.get(kind, "neutral")


@router.get("")
async def security_events(
    request: Request,
    admin: Admin,
    session: DbReadSession,
    kind: Annotated[str | None, Query(max_length=48)] = None,
    before: uuid.UUID | None = None,
) -> Response:
    rows = await repository.security_events(
        session, kind=kind or None, before=before, limit=PAGE_SIZE + 1
    )
    next_before = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    return render(
        request,
        "console/security/list.html",
        events=rows[:PAGE_SIZE],
        kind=kind or "",
        kinds=sorted(set(EVENT_LABELS) | set(await repository.event_kinds(session))),
        next_before=next_before,
        event_label=event_label,
        event_tone=event_tone,
    )
