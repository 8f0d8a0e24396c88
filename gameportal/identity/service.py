"""Identity rules: registration, login, refresh rotation, device sessions, admin changes.

Services flush, never commit; the request's session commits. The few writes that must
survive an error answer (a failed login, a replayed refresh token) go through the pool in
their own statement, by design.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.config import Settings
from gameportal.errors import Conflict, Forbidden, NotFound, PortalError, Unauthorized
from gameportal.identity import repository as repo
from gameportal.identity.devices import country_for
from gameportal.identity.metrics import LOGINS, REFRESHES, REGISTRATIONS
from gameportal.identity.passwords import Passwords, VerifyResult
from gameportal.identity.tokens import (
    AccessTokens,
    hash_refresh_token,
    new_refresh_token,
)
from gameportal.kit.ids import new_id
from gameportal.kit.time import utcnow
from gameportal.models import SecurityEvent, Session, User, normalize_email, normalize_roles

log = structlog.get_logger(__name__)


# --- errors ----------------------------------------------------------------------------------


class InvalidCredentials(Unauthorized):
    slug = "invalid-credentials"
    title = "Invalid email or password"


class AccountBlocked(Forbidden):
    slug = "account-blocked"
    title = "This account is blocked"


class TooManyAttempts(PortalError):
    status = 429
    slug = "too-many-login-attempts"
    title = "Too many failed login attempts"


class InvalidRefreshToken(Unauthorized):
    slug = "invalid-refresh-token"
    title = "Invalid refresh token"


class EmailTaken(Conflict):
    slug = "email-taken"
    title = "Email already registered"


class LastAdmin(Conflict):
    slug = "last-admin"
    title = "The last administrator cannot lose the role"


class SessionNotFound(NotFound):
    slug = "session-not-found"
    title = "Session not found"


class UserNotFound(NotFound):
    slug = "user-not-found"
    title = "User not found"


# --- context -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientInfo:
    """What the request tells about the device it came from."""

    ip: str | None
    user_agent: str | None
    device_type: str
    fingerprint: str | None

    @property
    def country(self) -> str | None:
        return country_for(self.ip)


@dataclass
class Identity:
    """The pieces identity needs, built once per app."""

    settings: Settings
    passwords: Passwords
    tokens: AccessTokens
    session_ttl: timedelta = field(init=False)
    idle_timeout: timedelta = field(init=False)

    def __post_init__(self) -> None:
        self.session_ttl = timedelta(days=self.settings.session_ttl_days)
        self.idle_timeout = timedelta(days=self.settings.session_idle_days)

    @classmethod
    def from_settings(cls, settings: Settings) -> Identity:
        return cls(settings=settings, passwords=Passwords(settings), tokens=AccessTokens(settings))


@dataclass(frozen=True)
class Principal:
    """The caller of an authenticated request, as the database sees it right now."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    roles: tuple[str, ...]
    user: dict[str, Any]

    def has_role(self, role: str) -> bool:
        return role in self.roles or "admin" in self.roles


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class AuthResult:
    user: User | dict[str, Any]
    session: Session | dict[str, Any]
    tokens: IssuedTokens


# --- registration and login ----------------------------------------------------------------


def _issue(
    identity: Identity,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    roles: list[str],
    refresh_token: str,
) -> IssuedTokens:
    access = identity.tokens.issue(
        user_id=user_id, session_id=session_id, roles=roles, now=utcnow()
    )
    return IssuedTokens(
        access_token=access,
        refresh_token=refresh_token,
        expires_in=int(identity.tokens.ttl.total_seconds()),
    )


def _new_session(identity: Identity, client: ClientInfo) -> tuple[repo.NewSessionRow, str]:
    """A device session's values and its refresh token (returned once, stored as a hash)."""
    token = new_refresh_token()
    values = repo.NewSessionRow(
        id=new_id(),
        ip=client.ip,
        user_agent=client.user_agent,
        device_type=client.device_type,
        fingerprint=client.fingerprint,
        country=client.country,
        refresh_token_hash=hash_refresh_token(token),
        ttl=identity.session_ttl,
    )
    return values, token


async def register(
    session: AsyncSession,
    identity: Identity,
    *,
    email: str,
    password: str,
    name: str,
    preferences: dict[str, Any],
    client: ClientInfo,
) -> AuthResult:
    email = normalize_email(email)
    identity.passwords.check_strength(password, field="password", user_inputs=[email, name])
    if await repo.email_taken(session, email):
        raise EmailTaken(f"{email} is already registered; log in or reset the password")
    password_hash = await identity.passwords.hash(password)
    now = utcnow()
    user = new_user(
        email=email,
        name=name,
        password_hash=password_hash,
        country=client.country,
        preferences=preferences,
        now=now,
    )
    user.last_login_at = now
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        # Lost a race with a concurrent registration of the same address.
        raise EmailTaken(f"{email} is already registered; log in or reset the password") from None
    values, token = _new_session(identity, client)
    row = Session(
        id=values.id,
        user_id=user.id,
        ip=values.ip,
        user_agent=values.user_agent,
        device_type=values.device_type,
        fingerprint=values.fingerprint,
        country=values.country,
        refresh_token_hash=values.refresh_token_hash,
        created_at=now,
        last_used_at=now,
        expires_at=now + values.ttl,
    )
    session.add(row)
    await session.flush()
    REGISTRATIONS.inc()
    log.info("user_registered", user_id=str(user.id), session_id=str(row.id))
    tokens = _issue(
        identity, user_id=user.id, session_id=row.id, roles=user.roles, refresh_token=token
    )
    return AuthResult(user=user, session=row, tokens=tokens)


def new_user(
    *,
    email: str,
    name: str,
    password_hash: str,
    now: datetime,
    roles: list[str] | None = None,
    country: str | None = None,
    preferences: dict[str, Any] | None = None,
) -> User:
    return User(
        id=new_id(),
        email=normalize_email(email),
        name=name,
        password_hash=password_hash,
        created_at=now,
        updated_at=now,
        is_blocked=False,
        country=country,
        roles=normalize_roles(roles or []),
        preferences=preferences or {},
    )


class WrongPassword(Forbidden):
    """The account's own password, re-entered to confirm a sensitive change, was wrong.
    Not a 401: the access token is fine and the client must not discard it."""

    slug = "wrong-password"
    title = "The password is wrong"


def _limits(identity: Identity) -> repo.ThrottleLimits:
    s = identity.settings
    return repo.ThrottleLimits(
        account=s.login_max_failures_per_account,
        ip=s.login_max_failures_per_ip,
        window=timedelta(seconds=s.login_failure_window_seconds),
        lockout=timedelta(seconds=s.login_lockout_seconds),
    )


def _too_many(locked_until: datetime) -> TooManyAttempts:
    seconds = max(1, math.ceil((locked_until - utcnow()).total_seconds()))
    LOGINS.labels("throttled").inc()
    return TooManyAttempts(
        f"too many failed attempts; try again in {seconds} seconds",
        headers={"Retry-After": str(seconds)},
    )


async def _checked_password(
    pool: asyncpg.Pool,
    identity: Identity,
    *,
    email: str,
    ip: str | None,
    password: str,
    stored_hash: str | None = None,
) -> tuple[asyncpg.Record, VerifyResult]:
    """One throttled password check: the attempt is counted (and refused when over the
    limit) before argon2 runs, and a failure may lock the account and the IP. No
    connection is held while argon2 runs."""
    limits = _limits(identity)
    claim = await repo.claim_login_attempt(pool, email=email, ip=ip, limits=limits)
    if claim["refused"]:
        # Locked, or as many attempts as allowed are still being checked: in the second
        # case they settle within a second (they lock the key if they all fail).
        raise _too_many(claim["locked_until"] or utcnow() + timedelta(seconds=1))
    result = await identity.passwords.verify(stored_hash or claim["password_hash"], password)
    if not result.ok or claim["id"] is None:
        locked = await repo.login_attempt_failed(pool, email=email, ip=ip, limits=limits)
        if locked is not None and claim["id"] is not None:
            await repo.record_security_event(
                pool,
                event_id=new_id(),
                kind="login_lockout",
                user_id=claim["id"],
                session_id=None,
                ip=ip,
                detail={"until": locked.isoformat()},
            )
    return claim, result


async def login(
    pool: asyncpg.Pool,
    identity: Identity,
    *,
    email: str,
    password: str,
    client: ClientInfo,
) -> AuthResult:
    """Two statements around one argon2 verification: login is bound by hashing, so
    everything else has to be cheap."""
    email = normalize_email(email)
    found, result = await _checked_password(
        pool, identity, email=email, ip=client.ip, password=password
    )
    user_id: uuid.UUID | None = found["id"]
    if user_id is None or not result.ok:
        LOGINS.labels("invalid").inc()
        raise InvalidCredentials("the email or password is wrong")
    if found["is_blocked"]:
        LOGINS.labels("blocked").inc()
        raise AccountBlocked("contact support to have the account reviewed")

    values, token = _new_session(identity, client)
    opened = await repo.open_login_session(
        pool, email=email, user_id=user_id, new_password_hash=result.new_hash, session=values
    )
    if opened is None:  # erased or blocked between the two statements
        raise InvalidCredentials("the email or password is wrong")
    user, row = opened["user"], opened["session"]
    LOGINS.labels("success").inc()
    log.info("login", user_id=str(user_id), session_id=str(values.id), device=client.device_type)
    tokens = _issue(
        identity, user_id=user_id, session_id=values.id, roles=user["roles"], refresh_token=token
    )
    return AuthResult(user=user, session=row, tokens=tokens)


async def refresh(
    pool: asyncpg.Pool, identity: Identity, *, refresh_token: str, client: ClientInfo
) -> tuple[dict[str, Any], IssuedTokens]:
    old_hash = hash_refresh_token(refresh_token)
    new_token = new_refresh_token()
    row = await repo.rotate_refresh_token(
        pool, old_hash=old_hash, new_hash=hash_refresh_token(new_token), idle=identity.idle_timeout
    )
    if row is None:
        replayed = await repo.revoke_session_of_spent_token(pool, token_hash=old_hash)
        if replayed is not None:
            REFRESHES.labels("replayed").inc()
            log.warning(
                "refresh_token_reuse",
                user_id=str(replayed["user_id"]),
                session_id=str(replayed["id"]),
                ip=client.ip,
            )
            await repo.record_security_event(
                pool,
                event_id=new_id(),
                kind="refresh_token_reuse",
                user_id=replayed["user_id"],
                session_id=replayed["id"],
                ip=client.ip,
                detail={"userAgent": client.user_agent},
            )
            raise InvalidRefreshToken(
                "this refresh token was already used; the session has been ended for safety"
            )
        REFRESHES.labels("invalid").inc()
        raise InvalidRefreshToken("the refresh token is unknown, expired or revoked")
    if row["is_blocked"]:
        REFRESHES.labels("blocked").inc()
        raise AccountBlocked("contact support to have the account reviewed")
    REFRESHES.labels("success").inc()
    tokens = _issue(
        identity,
        user_id=row["user_id"],
        session_id=row["id"],
        roles=list(row["roles"]),
        refresh_token=new_token,
    )
    return dict(row), tokens


# --- the caller's own account --------------------------------------------------------------


async def logout(session: AsyncSession, principal: Principal) -> None:
    await repo.revoke_sessions(
        session, user_id=principal.user_id, only=principal.session_id, reason="logout"
    )


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
    if name is not None:
        user.name = name
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
    user.password_hash = await identity.passwords.hash(new_password)
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


# --- administration ------------------------------------------------------------------------


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
