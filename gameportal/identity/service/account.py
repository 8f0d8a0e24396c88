"""The caller's own account: profile, password, erasure, device sessions."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.errors import Unauthorized
from gameportal.identity import repository as repo
from gameportal.identity.service.auth import _checked_password
from gameportal.identity.service.context import Identity, Principal
from gameportal.identity.service.errors import LastAdmin, SessionNotFound, WrongPassword
from gameportal.models import Session, User

log = structlog.get_logger(__name__)


async def _load_self(session: AsyncSession, principal: Principal, *, lock: bool = False) -> User:
    user = await repo.get_user(session, principal.user_id, lock=lock)
    if user is None:
        raise Unauthorized("the account no longer exists")
    return user


async def update_me(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str | None,
    preferences: dict[str, Any] | None,
) -> User:
    user = await _load_self(session, principal, lock=True)
    if name is not None and name != user.name:
        user.name = name
        await repo.announce_user_changed(session, user.id)  # leaderboards show the name
    if preferences is not None:
        merged = {**user.preferences, **preferences}
        user.preferences = {k: v for k, v in merged.items() if v is not None}
    await session.flush()
    return user


async def _confirm_password(
    pool: asyncpg.Pool, identity: Identity, user: User, password: str, ip: str | None
) -> None:
    """Re-entered passwords are throttled like logins: a stolen access token must not
    become a way to guess the password."""
    _, result = await _checked_password(
        pool, identity, email=user.email, ip=ip, password=password, stored_hash=user.password_hash
    )
    if not result.ok:
        raise WrongPassword("the password given to confirm this change is wrong")
    await repo.login_attempt_succeeded(pool, email=user.email, ip=ip)


async def change_password(
    session: AsyncSession,
    pool: asyncpg.Pool,
    identity: Identity,
    principal: Principal,
    *,
    current_password: str,
    new_password: str,
    ip: str | None,
) -> int:
    user = await _load_self(session, principal)
    await _confirm_password(pool, identity, user, current_password, ip)
    identity.passwords.check_strength(
        new_password, field="newPassword", user_inputs=[user.email, user.name]
    )
    new_hash = await identity.passwords.hash(new_password)
    # Locked only now: the check above writes through the pool (a lockout's security
    # event references this row), which a lock held here would wait on for good. Locked
    # before the tokens change, as every change to them is (repository.account_tokens).
    await _load_self(session, principal, lock=True)
    user.password_hash = new_hash
    # A reset link mailed before the change must not undo it.
    await repo.void_account_tokens(session, user.id, purpose="password_reset")
    ended = await repo.revoke_sessions(
        session, user_id=user.id, keep=principal.session_id, reason="password_changed"
    )
    repo.add_security_event(
        session, kind="password_changed", user_id=user.id, session_id=principal.session_id
    )
    await session.flush()
    return ended


async def delete_me(
    session: AsyncSession,
    pool: asyncpg.Pool,
    identity: Identity,
    principal: Principal,
    *,
    password: str,
    ip: str | None,
) -> None:
    user = await _load_self(session, principal)
    await _confirm_password(pool, identity, user, password, ip)
    if "admin" in user.roles and not user.is_blocked:
        admins = await repo.lock_unblocked_admins(session)
        if admins == [user.id]:
            raise LastAdmin("appoint another administrator before erasing this account")
    await repo.delete_user(session, user.id)
    await repo.announce_user_changed(session, user.id)  # leaves every leaderboard
    log.info("account_erased", user_id=str(user.id))


async def my_sessions(
    session: AsyncSession,
    identity: Identity,
    principal: Principal,
    *,
    before: uuid.UUID | None,
    limit: int,
) -> list[Session]:
    return await repo.list_live_sessions(
        session, principal.user_id, idle=identity.idle_timeout, before=before, limit=limit
    )


async def end_my_session(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID
) -> None:
    ended = await repo.revoke_sessions(
        session, user_id=principal.user_id, only=session_id, reason="ended_by_user"
    )
    if not ended:
        # Another user's session, an unknown id and an ended one look the same.
        raise SessionNotFound(f"no live session {session_id} on this account")


async def end_my_other_sessions(session: AsyncSession, principal: Principal) -> int:
    return await repo.revoke_sessions(
        session, user_id=principal.user_id, keep=principal.session_id, reason="ended_by_user"
    )
