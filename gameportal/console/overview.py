"""The console's first page: how the portal is doing, each figure a link to its list.

What a staff member sees follows their roles: player totals for every staff member;
sign-ins, security events and the delivery queue for admins; content for editors."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from gameportal.console import repository
from gameportal.console.frame import (
    STAFF_ROLES,
    NavEntry,
    console_router,
    render,
    require_console_role,
)
from gameportal.console.security import event_label, event_tone
from gameportal.db import DbReadSession
from gameportal.identity.service import Identity, Principal
from gameportal.models.content import CONTENT_STATUSES
from gameportal.models.message import MESSAGE_TYPES

router = console_router("", nav=NavEntry("Overview", "/console", roles=STAFF_ROLES, order=0))
AnyStaff = Annotated[Principal, Depends(require_console_role(*STAFF_ROLES))]


@router.get("")
async def overview(request: Request, staff: AnyStaff, session: DbReadSession) -> Response:
    identity: Identity = request.app.state.identity
    admin = staff.has_role("admin")
    players = await repository.player_counts(session, idle=identity.idle_timeout)
    queue = await repository.queue_counts(session) if admin else None
    content = await repository.content_counts(session) if staff.has_role("editor") else None
    events = await repository.security_events(session, limit=8) if admin else None
    return render(
        request,
        "console/overview/index.html",
        admin=admin,
        players=players,
        queue=queue,
        queue_types=[t for t in MESSAGE_TYPES if queue is not None],
        content=content,
        content_statuses=CONTENT_STATUSES,
        events=events,
        event_label=event_label,
        event_tone=event_tone,
    )
