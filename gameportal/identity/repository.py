"""All identity SQL. ORM statements for writes and admin paths; single Core/asyncpg
statements for the hot paths (the per-request session check, refresh rotation, login
throttling), which must also commit on their own when the request answers with an error."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.models import LoginThrottle, SecurityEvent, Session, User, normalize_email

# --- hot paths (asyncpg) -------------------------------------------------------------------

_PRINCIPAL_SQL = """
SELECT u.id, u.email, u.name, u.created_at, u.last_login_at, u.is_blocked, u.country,
       u.roles, u.preferences
FROM sessions s JOIN users u ON u.id = s.user_id
WHERE s.id = $1 AND s.user_id = $2
  AND s.revoked_at IS NULL AND s.expires_at > now()
  AND s.last_used_at > now() - $3::interval
  AND NOT u.is_blocked
"""


async def live_session_user(
    pool: asyncpg.Pool, *, session_id: uuid.UUID, user_id: uuid.UUID, idle: timedelta
) -> asyncpg.Record | None:
    """The user behind a live session, or None when the session ended or the user is
    blocked. Run on every authenticated request, so revocation takes effect at once."""
    row: asyncpg.Record | None = await pool.fetchrow(_PRINCIPAL_SQL, session_id, user_id, idle)
    return row


_ROTATE_SQL = """
WITH rotated AS (
    UPDATE sessions SET refresh_token_hash = $2, last_used_at = now()
    WHERE refresh_token_hash = $1
      AND revoked_at IS NULL AND expires_at > now()
      AND last_used_at > now() - $3::interval
    RETURNING id, user_id, ip, user_agent, device_type, fingerprint, country,
              created_at, last_used_at, expires_at
), spent AS (
    INSERT INTO spent_refresh_tokens (token_hash, session_id)
    SELECT $1, id FROM rotated
)
SELECT r.*, u.roles, u.is_blocked
FROM rotated r JOIN users u ON u.id = r.user_id
"""


async def rotate_refresh_token(
    pool: asyncpg.Pool, *, old_hash: str, new_hash: str, idle: timedelta
) -> asyncpg.Record | None:
    """Spend a refresh token and install its successor in one conditional UPDATE: of any
    number of concurrent callers with the same token, exactly one gets a row."""
    row: asyncpg.Record | None = await pool.fetchrow(_ROTATE_SQL, old_hash, new_hash, idle)
    return row


_REUSE_SQL = """
WITH hit AS (
    SELECT session_id FROM spent_refresh_tokens WHERE token_hash = $1
)
UPDATE sessions s SET revoked_at = coalesce(s.revoked_at, now()),
                      revoked_reason = coalesce(s.revoked_reason, 'refresh_token_reuse')
FROM hit WHERE s.id = hit.session_id
RETURNING s.id, s.user_id
"""


async def revoke_session_of_spent_token(
    pool: asyncpg.Pool, *, token_hash: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(_REUSE_SQL, token_hash)
    return row


async def record_security_event(
    pool: asyncpg.Pool,
    *,
    event_id: uuid.UUID,
    kind: str,
    user_id: uuid.UUID | None,
    session_id: uuid.UUID | None,
    ip: str | None,
    detail: dict[str, Any],
) -> None:
    await pool.execute(
        "INSERT INTO security_events (id, kind, user_id, session_id, ip, detail) "
        "VALUES ($1, $2, $3, $4, $5::inet, $6::jsonb)",
        event_id,
        kind,
        user_id,
        session_id,
        ip,
        detail,
    )


# Every attempt is claimed before its password is checked, so parallel guesses cannot
# outrun the counter: a key whose claimed-and-unsettled attempts reached its limit, or
# that is locked, refuses the attempt unchecked (the WHERE below leaves it uncounted).
# The account lookup rides along: one round trip. ($3/$4: limits for account/ip,
# $5: window.)
_CLAIM_SQL = """
WITH keys (scope, key) AS (
    SELECT v.scope, v.key FROM (VALUES ('account', $1::text), ('ip', $2::text)) AS v (scope, key)
    WHERE v.key IS NOT NULL
), claims AS (
    INSERT INTO login_throttle AS t (scope, key, failures, window_started_at, locked_until)
    SELECT scope, key, 1, now(), NULL FROM keys
    ON CONFLICT (scope, key) DO UPDATE SET
        failures = CASE WHEN t.window_started_at < now() - $5::interval THEN 1
                        ELSE t.failures + 1 END,
        window_started_at = CASE WHEN t.window_started_at < now() - $5::interval THEN now()
                                 ELSE t.window_started_at END
    WHERE NOT coalesce(t.locked_until > now(), false)
      AND NOT (t.window_started_at >= now() - $5::interval
               AND t.failures >= (CASE t.scope WHEN 'account' THEN $3::int ELSE $4::int END))
    RETURNING t.scope
)
SELECT (SELECT count(*) FROM keys) > (SELECT count(*) FROM claims) AS refused,
       (SELECT max(t.locked_until) FROM login_throttle t JOIN keys k USING (scope, key)
        WHERE t.locked_until > now()) AS locked_until,
       u.id, u.password_hash, u.is_blocked
FROM (SELECT 1) AS one LEFT JOIN users u ON u.email = $1
"""


@dataclass(frozen=True)
class ThrottleLimits:
    account: int
    ip: int
    window: timedelta
    lockout: timedelta


async def claim_login_attempt(
    pool: asyncpg.Pool, *, email: str, ip: str | None, limits: ThrottleLimits
) -> asyncpg.Record:
    """Count one password attempt against the account and the IP. `refused`: the attempt
    must be answered 429 unchecked (`locked_until` says until when, if a lock is the
    reason). Also the account's id, hash and block flag."""
    row: asyncpg.Record = await pool.fetchrow(
        _CLAIM_SQL, email, ip, limits.account, limits.ip, limits.window
    )
    return row


# A wrong password: a key whose claimed attempts reached its limit is locked now, and
# starts a fresh count once the lock passes, so nobody is locked out for good.
_FAILED_SQL = """
UPDATE login_throttle t
SET locked_until = now() + $5::interval, failures = 0, window_started_at = now()
FROM (VALUES ('account', $1::text, $3::int), ('ip', $2::text, $4::int)) AS k (scope, key, most)
WHERE t.scope = k.scope AND t.key = k.key AND t.failures >= k.most
  AND (t.locked_until IS NULL OR t.locked_until <= now())
RETURNING t.scope, t.locked_until
"""


async def login_attempt_failed(
    pool: asyncpg.Pool, *, email: str, ip: str | None, limits: ThrottleLimits
) -> datetime | None:
    """When the account got locked by this failure, until when."""
    rows = await pool.fetch(_FAILED_SQL, email, ip, limits.account, limits.ip, limits.lockout)
    locked: datetime | None = next(
        (r["locked_until"] for r in rows if r["scope"] == "account"), None
    )
    return locked


async def login_attempt_succeeded(pool: asyncpg.Pool, *, email: str, ip: str | None) -> None:
    await pool.execute(_SUCCEEDED_SQL, email, ip)


# The right password clears the account's count and gives the IP its attempt back, so a
# busy NAT of honest players does not drift into a lockout.
_SUCCEEDED_SQL = """
WITH cleared AS (
    DELETE FROM login_throttle WHERE scope = 'account' AND key = $1
)
UPDATE login_throttle SET failures = greatest(failures - 1, 0)
WHERE scope = 'ip' AND key = $2 AND (locked_until IS NULL OR locked_until <= now())
"""


# A successful login in one atomic statement: settle the throttle as above, stamp the
# login (and store an upgraded hash), open the device session.
_LOGIN_SQL = """
WITH cleared AS (
    DELETE FROM login_throttle WHERE scope = 'account' AND key = $1
), ip_settled AS (
    UPDATE login_throttle SET failures = greatest(failures - 1, 0)
    WHERE scope = 'ip' AND key = $12 AND (locked_until IS NULL OR locked_until <= now())
), u AS (
    UPDATE users SET last_login_at = now(),
                     password_hash = coalesce($3, password_hash),
                     updated_at = CASE WHEN $3 IS NULL THEN updated_at ELSE now() END
    WHERE id = $2 AND NOT is_blocked
    RETURNING id, email, name, created_at, last_login_at, is_blocked, country, roles,
              preferences
), s AS (
    INSERT INTO sessions (id, user_id, ip, user_agent, device_type, fingerprint, country,
                          refresh_token_hash, created_at, last_used_at, expires_at)
    SELECT $4, u.id, $5::inet, $6, $7, $8, $9, $10, now(), now(), now() + $11::interval
    FROM u
    RETURNING id, ip, user_agent, device_type, fingerprint, country, created_at,
              last_used_at, expires_at
)
SELECT to_jsonb(u) AS "user", to_jsonb(s) AS session FROM u, s
"""


async def open_login_session(
    pool: asyncpg.Pool,
    *,
    email: str,
    user_id: uuid.UUID,
    new_password_hash: str | None,
    session: NewSessionRow,
) -> asyncpg.Record | None:
    """None when the account was erased or blocked since its password was checked."""
    row: asyncpg.Record | None = await pool.fetchrow(
        _LOGIN_SQL,
        email,
        user_id,
        new_password_hash,
        session.id,
        session.ip,
        session.user_agent,
        session.device_type,
        session.fingerprint,
        session.country,
        session.refresh_token_hash,
        session.ttl,
        session.ip,
    )
    return row


@dataclass(frozen=True)
class NewSessionRow:
    id: uuid.UUID
    ip: str | None
    user_agent: str | None
    device_type: str
    fingerprint: str | None
    country: str | None
    refresh_token_hash: str
    ttl: timedelta


# --- ORM (writes, admin) -------------------------------------------------------------------


async def email_taken(session: AsyncSession, email: str) -> bool:
    found = await session.scalar(select(User.id).where(User.email == email).limit(1))
    return found is not None


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    user: User | None = await session.scalar(
        select(User).where(User.email == email).with_for_update()
    )
    return user


async def get_user(session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False) -> User | None:
    stmt = select(User).where(User.id == user_id)
    if lock:
        stmt = stmt.with_for_update()
    user: User | None = await session.scalar(stmt)
    return user


async def get_session(session: AsyncSession, session_id: uuid.UUID) -> Session | None:
    row: Session | None = await session.get(Session, session_id)
    return row


def live_sessions_of(
    user_id: uuid.UUID, *, idle: timedelta, before: uuid.UUID | None, limit: int
) -> Select[Session]:
    """Newest first; ids are time-ordered, so the id is the cursor."""
    stmt = (
        select(Session)
        .where(
            Session.user_id == user_id,
            Session.revoked_at.is_(None),
            Session.expires_at > func.now(),
            Session.last_used_at > func.now() - idle,
        )
        .order_by(Session.id.desc())
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(Session.id < before)
    return stmt


async def list_live_sessions(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    idle: timedelta,
    before: uuid.UUID | None,
    limit: int,
) -> list[Session]:
    stmt = live_sessions_of(user_id, idle=idle, before=before, limit=limit)
    return list((await session.scalars(stmt)).all())


async def list_security_events(
    session: AsyncSession, user_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> list[SecurityEvent]:
    stmt = (
        select(SecurityEvent)
        .where(SecurityEvent.user_id == user_id)
        .order_by(SecurityEvent.id.desc())
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(SecurityEvent.id < before)
    return list((await session.scalars(stmt)).all())


async def revoke_sessions(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    reason: str,
    only: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
) -> int:
    stmt = (
        update(Session)
        .where(Session.user_id == user_id, Session.revoked_at.is_(None))
        .values(revoked_at=func.now(), revoked_reason=reason)
    )
    if only is not None:
        stmt = stmt.where(Session.id == only)
    if keep is not None:
        stmt = stmt.where(Session.id != keep)
    result = await session.execute(stmt.returning(Session.id))
    return len(result.all())


async def lock_unblocked_admins(session: AsyncSession) -> list[uuid.UUID]:
    """Row-lock every active admin so two concurrent demotions cannot both pass the
    last-admin check."""
    rows = await session.scalars(
        select(User.id)
        .where(User.roles.any_() == "admin", User.is_blocked.is_(False))
        .order_by(User.id)
        .with_for_update()
    )
    return list(rows.all())


@dataclass(frozen=True)
class UserFilter:
    email_prefix: str | None = None
    role: str | None = None
    is_blocked: bool | None = None


def users_page(filters: UserFilter, *, after: uuid.UUID | None, limit: int) -> Select[User]:
    stmt = select(User).order_by(User.id).limit(limit)
    if after is not None:
        stmt = stmt.where(User.id > after)
    if filters.email_prefix:
        escaped = (
            normalize_email(filters.email_prefix)
            .replace("\\", "\\\\")
            .replace("%", "\\%")
            .replace("_", "\\_")
        )
        stmt = stmt.where(User.email.like(escaped + "%", escape="\\"))
    if filters.role:
        stmt = stmt.where(User.roles.any_() == filters.role)
    if filters.is_blocked is not None:
        stmt = stmt.where(User.is_blocked.is_(filters.is_blocked))
    return stmt


async def list_users(
    session: AsyncSession, filters: UserFilter, *, after: uuid.UUID | None, limit: int
) -> list[User]:
    return list((await session.scalars(users_page(filters, after=after, limit=limit))).all())


async def delete_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(delete(User).where(User.id == user_id))


def add_security_event(
    session: AsyncSession,
    *,
    kind: str,
    user_id: uuid.UUID | None,
    session_id: uuid.UUID | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        SecurityEvent(kind=kind, user_id=user_id, session_id=session_id, ip=ip, detail=detail or {})
    )


@dataclass(frozen=True)
class Pruned:
    sessions: int
    throttle_rows: int


async def prune(
    session: AsyncSession, *, retention: timedelta, idle: timedelta, window: timedelta
) -> Pruned:
    """Delete what no rule needs any more: sessions that ended (revoked, expired or idle)
    longer ago than `retention`, with their spent refresh tokens, and throttle counters
    whose window and lock have both passed."""
    ended_at = func.least(
        func.coalesce(Session.revoked_at, Session.expires_at),
        Session.expires_at,
        Session.last_used_at + idle,
    )
    ended = await session.execute(
        delete(Session).where(ended_at < func.now() - retention).returning(Session.id)
    )
    stale = await session.execute(
        delete(LoginThrottle)
        .where(
            LoginThrottle.window_started_at < func.now() - window,
            (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < func.now()),
        )
        .returning(LoginThrottle.key)
    )
    return Pruned(sessions=len(ended.all()), throttle_rows=len(stale.all()))
