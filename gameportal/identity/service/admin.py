"""Administration: listing, inspecting and changing other users' accounts."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.identity import repository as repo
from gameportal.identity.service.context import Identity, Principal
from gameportal.identity.service.errors import LastAdmin, SessionNotFound, UserNotFound
from gameportal.models import SecurityEvent, Session, User, normalize_roles


async def admin_list_users(
    session: AsyncSession,
    *,
    email_prefix: str | None,
    role: str | None,
    is_blocked: bool | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[User]:
    filters = repo.UserFilter(email_prefix=email_prefix, role=role, is_blocked=is_blocked)
    return await repo.list_users(session, filters, after=after, limit=limit)


async def admin_get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repo.get_user(session, user_id)
    if user is None:
        raise UserNotFound(f"no user {user_id}")
    return user


async def admin_update_user(
    session: AsyncSession,
    admin: Principal,
    user_id: uuid.UUID,
    *,
    roles: list[str] | None,
    is_blocked: bool | None,
) -> User:
    new_roles = normalize_roles(roles) if roles is not None else None
    could_lose_admin = (new_roles is not None and "admin" not in new_roles) or is_blocked is True
    # Lock order matters: the admins first (by id), then the target. Two admins demoting
    # each other then queue instead of deadlocking, and the second sees the first's result.
    admins = await repo.lock_unblocked_admins(session) if could_lose_admin else []
    user = await repo.get_user(session, user_id, lock=True)
    if user is None:
        raise UserNotFound(f"no user {user_id}")
    if could_lose_admin and user.id in admins and len(admins) == 1:
        raise LastAdmin("appoint another administrator first")
    if new_roles is not None and new_roles != user.roles:
        repo.add_security_event(
            session,
            kind="roles_changed",
            user_id=user.id,
            detail={"from": user.roles, "to": new_roles, "by": str(admin.user_id)},
        )
        user.roles = new_roles
    if is_blocked is not None and is_blocked != user.is_blocked:
        user.is_blocked = is_blocked
        repo.add_security_event(
            session,
            kind="blocked" if is_blocked else "unblocked",
            user_id=user.id,
            detail={"by": str(admin.user_id)},
        )
        if is_blocked:
            await repo.revoke_sessions(session, user_id=user.id, reason="blocked")
        await repo.announce_user_changed(session, user.id)  # off (or back on) leaderboards
    await session.flush()
    return user


async def admin_user_sessions(
    session: AsyncSession,
    identity: Identity,
    user_id: uuid.UUID,
    *,
    before: uuid.UUID | None,
    limit: int,
) -> list[Session]:
    await admin_get_user(session, user_id)
    return await repo.list_live_sessions(
        session, user_id, idle=identity.idle_timeout, before=before, limit=limit
    )


async def admin_security_events(
    session: AsyncSession, user_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> list[SecurityEvent]:
    await admin_get_user(session, user_id)
    return await repo.list_security_events(session, user_id, before=before, limit=limit)


async def admin_end_user_sessions(
    session: AsyncSession, admin: Principal, user_id: uuid.UUID
) -> int:
    await admin_get_user(session, user_id)
    ended = await repo.revoke_sessions(session, user_id=user_id, reason="ended_by_admin")
    repo.add_security_event(
        session,
        kind="sessions_ended_by_admin",
        user_id=user_id,
        detail={"by": str(admin.user_id), "count": ended},
    )
    return ended


async def admin_end_user_session(
    session: AsyncSession, admin: Principal, user_id: uuid.UUID, session_id: uuid.UUID
) -> None:
    """End one of a user's device sessions (the console's "end" beside a session)."""
    await admin_get_user(session, user_id)
    ended = await repo.revoke_sessions(
        session, user_id=user_id, only=session_id, reason="ended_by_admin"
    )
    if not ended:
        raise SessionNotFound(f"no live session {session_id} of user {user_id}")
    repo.add_security_event(
        session,
        kind="session_ended_by_admin",
        user_id=user_id,
        session_id=session_id,
        detail={"by": str(admin.user_id)},
    )
