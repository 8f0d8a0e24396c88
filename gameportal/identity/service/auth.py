"""Registration and login: register, login, refresh rotation, logout, and the login
throttle around every password check."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.identity import repository as repo
from gameportal.identity.metrics import (
    LOGINS,
    REFRESHES,
    REGISTRATIONS,
    REGISTRATIONS_THROTTLED,
)
from gameportal.identity.passwords import VerifyResult
from gameportal.identity.service.account_emails import send_email_verification
from gameportal.identity.service.context import (
    AuthResult,
    ClientInfo,
    Identity,
    IssuedTokens,
    Principal,
)
from gameportal.identity.service.errors import (
    AccountBlocked,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    TooManyAttempts,
    TooManyRegistrations,
)
from gameportal.identity.tokens import (
    DeviceClaim,
    hash_refresh_token,
    new_refresh_token,
)
from gameportal.kit.ids import new_id
from gameportal.kit.time import utcnow
from gameportal.models import Session, User, normalize_email, normalize_roles

log = structlog.get_logger(__name__)


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
    pool: asyncpg.Pool,
    identity: Identity,
    *,
    email: str,
    password: str,
    name: str,
    preferences: dict[str, Any],
    client: ClientInfo,
) -> AuthResult:
    await _claim_registration(pool, identity, client)
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
    # The verification mail is queued in this transaction: no account, no mail.
    await send_email_verification(session, identity, user)
    REGISTRATIONS.inc()
    log.info("user_registered", user_id=str(user.id), session_id=str(row.id))
    tokens = _issue(
        identity, user_id=user.id, session_id=row.id, roles=user.roles, refresh_token=token
    )
    device_token = identity.devices.issue(email=email, password_hash=password_hash, now=now)
    return AuthResult(user=user, session=row, tokens=tokens, device_token=device_token)


async def _claim_registration(pool: asyncpg.Pool, identity: Identity, client: ClientInfo) -> None:
    """Count the attempt against the client's address before any work (a password hash,
    a verification mail), refusing it over the limit. Every attempt counts, failed ones
    too: probing which addresses are taken is throttled alike. Counted on the pool, so
    it stands whatever this request's transaction does."""
    if client.ip is None:  # no address to count under (not seen over TCP)
        return
    settings = identity.settings
    refused_until = await repo.claim_registration(
        pool,
        ip=client.ip,
        most=settings.registration_max_per_ip,
        window=timedelta(seconds=settings.registration_window_seconds),
    )
    if refused_until is not None:
        seconds = max(1, math.ceil((refused_until - utcnow()).total_seconds()))
        REGISTRATIONS_THROTTLED.inc()
        raise TooManyRegistrations(
            f"too many accounts registered from this network; try again in {seconds} seconds",
            headers={"Retry-After": str(seconds)},
        )


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


def _limits(identity: Identity) -> repo.ThrottleLimits:
    s = identity.settings
    return repo.ThrottleLimits(
        account=s.login_max_failures_per_account,
        ip=s.login_max_failures_per_ip,
        window=timedelta(seconds=s.login_failure_window_seconds),
        lockout=timedelta(seconds=s.login_lockout_seconds),
        device=s.login_max_failures_per_device,
    )


def _keys(
    claim: asyncpg.Record, *, email: str, ip: str | None, device: DeviceClaim | None
) -> repo.ThrottleKeys:
    """The counters the claim went on (see repository.throttle)."""
    if claim["trusted"] and device is not None:
        return repo.ThrottleKeys(device=device.key)
    return repo.ThrottleKeys(account=email, ip=ip)


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
    device: DeviceClaim | None = None,
) -> tuple[asyncpg.Record, VerifyResult]:
    """One throttled password check: the attempt is counted (and refused when over the
    limit) before argon2 runs, and a failure may lock the account and the IP, or the
    device token when the attempt came with one the account trusts. No connection is
    held while argon2 runs."""
    limits = _limits(identity)
    claim = await repo.claim_login_attempt(pool, email=email, ip=ip, limits=limits, device=device)
    if claim["refused"]:
        # Locked, or as many attempts as allowed are still being checked: in the second
        # case they settle within a second (they lock the key if they all fail).
        raise _too_many(claim["locked_until"] or utcnow() + timedelta(seconds=1))
    result = await identity.passwords.verify(stored_hash or claim["password_hash"], password)
    if not result.ok or claim["id"] is None:
        keys = _keys(claim, email=email, ip=ip, device=device)
        locked = await repo.login_attempt_failed(pool, keys=keys, limits=limits)
        # Counted by the console's overview; for an unknown address too (no account to
        # name, the address tried is not kept), so both failures cost the same.
        await repo.record_security_event(
            pool,
            event_id=new_id(),
            kind="login_failed",
            user_id=claim["id"],
            session_id=None,
            ip=ip,
            detail={},
        )
        for scope in ("account", "device"):
            if scope in locked and claim["id"] is not None:
                await repo.record_security_event(
                    pool,
                    event_id=new_id(),
                    kind="login_lockout",
                    user_id=claim["id"],
                    session_id=None,
                    ip=ip,
                    detail={"until": locked[scope].isoformat(), "scope": scope},
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
    device = identity.devices.read(client.device_token, email=email)
    found, result = await _checked_password(
        pool, identity, email=email, ip=client.ip, password=password, device=device
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
        pool,
        settle=_keys(found, email=email, ip=client.ip, device=device),
        user_id=user_id,
        new_password_hash=result.new_hash,
        session=values,
    )
    if opened is None:  # erased or blocked between the two statements
        raise InvalidCredentials("the email or password is wrong")
    user, row = opened["user"], opened["session"]
    LOGINS.labels("success").inc()
    log.info("login", user_id=str(user_id), session_id=str(values.id), device=client.device_type)
    tokens = _issue(
        identity, user_id=user_id, session_id=values.id, roles=user["roles"], refresh_token=token
    )
    # A fresh device token at every login: this device is trusted from now on.
    device_token = identity.devices.issue(
        email=email, password_hash=result.new_hash or found["password_hash"], now=utcnow()
    )
    return AuthResult(user=user, session=row, tokens=tokens, device_token=device_token)


async def refresh(
    pool: asyncpg.Pool, identity: Identity, *, refresh_token: str, client: ClientInfo
) -> IssuedTokens:
    old_hash = hash_refresh_token(refresh_token)
    # Derived, not drawn: a replay within the grace window can make it again (tokens.py).
    new_token = identity.refresh_tokens.successor(refresh_token, client.device_mark)
    row = await repo.rotate_refresh_token(
        pool, old_hash=old_hash, new_hash=hash_refresh_token(new_token), idle=identity.idle_timeout
    )
    if row is None:
        if identity.refresh_grace:
            again = await _replay_within_grace(pool, identity, refresh_token, client)
            if again is not None:
                return again
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
    return _issue(
        identity,
        user_id=row["user_id"],
        session_id=row["id"],
        roles=list(row["roles"]),
        refresh_token=new_token,
    )


# A replay may follow the session's rotations this far (a third tab refreshing with the
# token the second one was just given).
_GRACE_HOPS = 4


async def _replay_within_grace(
    pool: asyncpg.Pool, identity: Identity, token: str, client: ClientInfo
) -> IssuedTokens | None:
    """The answer to a replay of a token spent within the grace window, from the device
    that spent it: the session's current refresh token (the one the first refresh
    answered, or its own successor if that was refreshed meanwhile, which this device
    can also derive) and an access token for the session. None when the token was not
    spent that recently, its session has ended, or the caller is another device (the
    successor it derives is not the session's): the replay then counts as reuse."""
    session_id = None
    for _ in range(_GRACE_HOPS):
        row = await repo.session_of_recently_spent_token(
            pool,
            token_hash=hash_refresh_token(token),
            grace=identity.refresh_grace,
            idle=identity.idle_timeout,
        )
        if row is None or (session_id is not None and row["id"] != session_id):
            return None
        session_id = row["id"]
        token = identity.refresh_tokens.successor(token, client.device_mark)
        if hash_refresh_token(token) == row["refresh_token_hash"]:
            if row["is_blocked"]:
                REFRESHES.labels("blocked").inc()
                raise AccountBlocked("contact support to have the account reviewed")
            REFRESHES.labels("grace").inc()
            log.info("refresh_token_grace_replay", session_id=str(session_id), ip=client.ip)
            return _issue(
                identity,
                user_id=row["user_id"],
                session_id=session_id,
                roles=list(row["roles"]),
                refresh_token=token,
            )
    return None


async def logout(session: AsyncSession, principal: Principal) -> None:
    await repo.revoke_sessions(
        session, user_id=principal.user_id, only=principal.session_id, reason="logout"
    )


async def logout_by_refresh_token(session: AsyncSession, *, refresh_token: str) -> None:
    """Browser session mode's logout, which may come with the refresh cookie alone (the
    page's access token is lost with a reload): end the session that token is, or until
    a moment ago was, the current token of. A token of no live session ends nothing."""
    await repo.revoke_session_of_refresh_token(
        session, token_hash=hash_refresh_token(refresh_token), reason="logout"
    )
