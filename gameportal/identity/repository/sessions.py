"""Device sessions: the per-request check, refresh rotation and reuse revocation, the
login that opens a session, listing, revocation, pruning."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.identity.repository.throttle import ThrottleKeys
from gameportal.models import LoginThrottle, Session, SpentRefreshToken

# NOTIFY channel (payload: the user id) sent when sessions of that user end: the live
# notification streams in every API process listen, and end those of ended sessions at once
# instead of at their next session check.
SESSIONS_ENDED_CHANNEL = "gameportal_sessions_ended"

# --- hot paths (asyncpg) -------------------------------------------------------------------

_LIVE_SESSION = """
FROM sessions s JOIN users u ON u.id = s.user_id
WHERE s.id = $1 AND s.user_id = $2
  AND s.revoked_at IS NULL AND s.expires_at > now()
  AND s.last_used_at > now() - $3::interval
  AND NOT u.is_blocked
"""
_PRINCIPAL_SQL = (
    """
SELECT u.id, u.email, u.name, u.created_at, u.last_login_at, u.is_blocked, u.country,
       u.roles, u.preferences, u.email_verified_at"""
    + _LIVE_SESSION
)
_ROLES_SQL = "SELECT u.roles" + _LIVE_SESSION


async def live_session_user(
    pool: asyncpg.Pool, *, session_id: uuid.UUID, user_id: uuid.UUID, idle: timedelta
) -> asyncpg.Record | None:
    """The user behind a live session, or None when the session ended or the user is
    blocked. Run on every authenticated request, so revocation takes effect at once."""
    row: asyncpg.Record | None = await pool.fetchrow(_PRINCIPAL_SQL, session_id, user_id, idle)
    return row


async def live_session_roles(
    pool: asyncpg.Pool, *, session_id: uuid.UUID, user_id: uuid.UUID, idle: timedelta
) -> list[str] | None:
    """live_session_user's check for a caller whose profile is not needed: the user's
    roles, or None. Most authenticated requests; the profile's columns (the preferences'
    JSON above all) cost more to send and decode than the check itself."""
    roles: list[str] | None = await pool.fetchval(_ROLES_SQL, session_id, user_id, idle)
    return roles


_ROTATE_SQL = """
WITH rotated AS (
    UPDATE sessions SET refresh_token_hash = $2, last_used_at = now()
    WHERE refresh_token_hash = $1
      AND revoked_at IS NULL AND expires_at > now()
      AND last_used_at > now() - $3::interval
    RETURNING id, user_id
), spent AS (
    INSERT INTO spent_refresh_tokens (token_hash, session_id)
    SELECT $1, id FROM rotated
)
SELECT r.id, r.user_id, u.roles, u.is_blocked
FROM rotated r JOIN users u ON u.id = r.user_id
"""


async def rotate_refresh_token(
    pool: asyncpg.Pool, *, old_hash: str, new_hash: str, idle: timedelta
) -> asyncpg.Record | None:
    """Spend a refresh token and install its successor in one conditional UPDATE: of any
    number of concurrent callers with the same token, exactly one gets a row (the
    session's id and user, the user's roles and is_blocked: all a new token needs)."""
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
    if row is not None:
        await pool.execute("SELECT pg_notify($1, $2)", SESSIONS_ENDED_CHANNEL, str(row["user_id"]))
    return row


# The session a token spent within the grace window belongs to, if it is still live: what
# a replay of that token may be answered from (service.auth.refresh). Only on the replay
# path, never on a normal refresh.
_RECENTLY_SPENT_SQL = """
SELECT s.id, s.user_id, s.refresh_token_hash, u.roles, u.is_blocked
FROM spent_refresh_tokens sp
JOIN sessions s ON s.id = sp.session_id
JOIN users u ON u.id = s.user_id
WHERE sp.token_hash = $1 AND sp.spent_at > now() - $2::interval
  AND s.revoked_at IS NULL AND s.expires_at > now()
  AND s.last_used_at > now() - $3::interval
"""


async def session_of_recently_spent_token(
    pool: asyncpg.Pool, *, token_hash: str, grace: timedelta, idle: timedelta
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(_RECENTLY_SPENT_SQL, token_hash, grace, idle)
    return row


async def revoke_session_of_refresh_token(
    session: AsyncSession, *, token_hash: str, reason: str
) -> int:
    """End the session a refresh token is, or was, the current token of (browser session
    mode's logout, which has only the cookie): a token spent a moment ago by another tab
    must end the session too, or that tab's refresh would keep it alive."""
    spent = select(SpentRefreshToken.session_id).where(SpentRefreshToken.token_hash == token_hash)
    result = await session.execute(
        update(Session)
        .where(
            Session.revoked_at.is_(None),
            (Session.refresh_token_hash == token_hash) | Session.id.in_(spent.scalar_subquery()),
        )
        .values(revoked_at=func.now(), revoked_reason=reason)
        .returning(Session.user_id)
    )
    users = {row.user_id for row in result}
    for user_id in users:  # delivered when the transaction commits
        await session.execute(select(func.pg_notify(SESSIONS_ENDED_CHANNEL, str(user_id))))
    return len(users)


# A successful login in one atomic statement: settle the throttle (see throttle.py: the
# account's count, or the device token's), stamp the login (and store an upgraded hash),
# open the device session.
_LOGIN_SQL = """
WITH cleared AS (
    DELETE FROM login_throttle
    WHERE (scope = 'account' AND key = $1) OR (scope = 'device' AND key = $13)
), ip_settled AS (
    UPDATE login_throttle SET failures = greatest(failures - 1, 0)
    WHERE scope = 'ip' AND key = $12 AND (locked_until IS NULL OR locked_until <= now())
), u AS (
    UPDATE users SET last_login_at = now(),
                     password_hash = coalesce($3, password_hash),
                     updated_at = CASE WHEN $3 IS NULL THEN updated_at ELSE now() END
    WHERE id = $2 AND NOT is_blocked
    RETURNING id, email, name, created_at, last_login_at, is_blocked, country, roles,
              preferences, email_verified_at
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
    settle: ThrottleKeys,
    user_id: uuid.UUID,
    new_password_hash: str | None,
    session: NewSessionRow,
) -> asyncpg.Record | None:
    """None when the account was erased or blocked since its password was checked."""
    row: asyncpg.Record | None = await pool.fetchrow(
        _LOGIN_SQL,
        settle.account,
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
        settle.ip,
        settle.device,
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
    ended = len(result.all())
    if ended:  # delivered when the transaction commits (NOTIFY is transactional)
        await session.execute(select(func.pg_notify(SESSIONS_ENDED_CHANNEL, str(user_id))))
    return ended


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
