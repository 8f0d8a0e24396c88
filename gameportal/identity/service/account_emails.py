"""Mail that proves control of an address: email verification, and password reset by a
single-use link (answered the same whether or not the address has an account)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gameportal.config import Settings
from gameportal.errors import PortalError
from gameportal.identity import repository as repo
from gameportal.identity.service.context import Identity, Principal
from gameportal.identity.tokens import hash_refresh_token, new_refresh_token
from gameportal.kit.time import utcnow
from gameportal.models import User, normalize_email
from gameportal.notifications.sealed import seal
from gameportal.notifications.service import enqueue
from gameportal.web.links import reset_password_url, verify_email_url

log = structlog.get_logger(__name__)

# One mail per account per minute at most: a form hammered with someone's address must not
# flood their mailbox.
RESEND_AFTER = timedelta(seconds=60)


VERIFY_TTL = timedelta(hours=48)


class InvalidVerificationToken(PortalError):
    status = 400
    slug = "invalid-verification-token"
    title = "This verification link is invalid, used or expired"


async def send_email_verification(session: AsyncSession, identity: Identity, user: User) -> None:
    """Mail a verification link, unless the address is verified or one went out just now."""
    if user.email_verified_at is not None:
        return
    await _mail_token(
        session,
        identity,
        user,
        purpose="verify_email",
        ttl=VERIFY_TTL,
        link_to=verify_email_url,
        variables={"hours": int(VERIFY_TTL.total_seconds() // 3600)},
    )


async def _mail_token(
    session: AsyncSession,
    identity: Identity,
    user: User,
    *,
    purpose: str,
    ttl: timedelta,
    link_to: Callable[[Settings, str], str],
    variables: dict[str, object],
) -> None:
    """Store a new single-use token and queue the mail with its link, in the caller's
    transaction; at most one such mail per account and purpose per RESEND_AFTER."""
    if await repo.recent_token_exists(session, user.id, purpose=purpose, within=RESEND_AFTER):
        return
    # Only the newest link works: one mailed earlier (perhaps to a mailbox read by others
    # since) is void once a new one is asked for.
    await repo.void_account_tokens(session, user.id, purpose=purpose)
    token = new_refresh_token()  # 256 bits, URL-safe
    repo.add_account_token(
        session, user_id=user.id, purpose=purpose, token_hash=hash_refresh_token(token), ttl=ttl
    )
    link = link_to(identity.settings, token)
    await enqueue(
        session,
        message_type="EMAIL",
        recipient_user_id=user.id,
        payload={
            "template": purpose,
            "variables": variables,
            # The link is the token: sealed for the worker alone, so that no admin route,
            # database row or backup shows it, and erased once the mail is out.
            "sealedVariables": seal(identity.settings.secret_key, user.id, {"link": link}),
            "category": "account",
        },
        priority=10,
    )


async def request_email_verification(
    session: AsyncSession, identity: Identity, principal: Principal
) -> None:
    user = await repo.get_user(session, principal.user_id, lock=True)
    if user is not None:
        await send_email_verification(session, identity, user)


async def _spend(session: AsyncSession, token: str, *, purpose: str) -> User | None:
    """The token's account, row-locked, if the token was live; it is spent from now on.
    The account is locked before the token is spent (see repository.account_tokens)."""
    token_hash = hash_refresh_token(token)
    owner = await repo.account_token_owner(session, token_hash, purpose=purpose)
    user = await repo.get_user(session, owner, lock=True) if owner else None
    if user is None or not await repo.spend_account_token(session, token_hash, purpose=purpose):
        return None
    return user


async def verify_email(session: AsyncSession, *, token: str) -> User:
    user = await _spend(session, token, purpose="verify_email")
    if user is None:
        raise InvalidVerificationToken("ask for a new link")
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    # The address is proven: the other links mailed for it have nothing left to prove.
    await repo.void_account_tokens(session, user.id, purpose="verify_email")
    await session.flush()
    return user


class InvalidResetToken(PortalError):
    status = 400
    slug = "invalid-reset-token"
    title = "This reset link is invalid, used or expired"


async def request_password_reset(session: AsyncSession, identity: Identity, *, email: str) -> None:
    user = await repo.user_by_email(session, normalize_email(email))
    if user is None or user.is_blocked:
        log.info("password_reset_ignored")  # no account detail in logs either
        return
    minutes = identity.settings.password_reset_ttl_minutes
    await _mail_token(
        session,
        identity,
        user,
        purpose="password_reset",
        ttl=timedelta(minutes=minutes),
        link_to=reset_password_url,
        variables={"minutes": minutes},
    )
    log.info("password_reset_requested", user_id=str(user.id))


_JITTER_MIN_S = 0.005
_JITTER_SPAN_MS = 20


async def request_password_reset_after_answer(
    sessions: async_sessionmaker[AsyncSession], identity: Identity, *, email: str
) -> None:
    """request_password_reset in a transaction of its own, run once the 202 has been sent.

    Whether an address has an account must not show in how long the answer takes: an
    account costs a lookup, a new token and a queued mail; no account, one lookup (about
    a millisecond apart, enough to tell them apart from afar). Answering first makes
    every request the same until its answer is out. A failure here reaches no client;
    the requester asks again, as for a lost mail."""
    # The work starts a little later, at a random moment: on a busy machine, work right
    # behind the answer would still slow its delivery (and the client's next request) by
    # the CPU it takes, which differs between the two cases.
    await asyncio.sleep(_JITTER_MIN_S + secrets.randbelow(_JITTER_SPAN_MS) / 1000)
    try:
        async with sessions() as session, session.begin():
            await request_password_reset(session, identity, email=email)
    except Exception as exc:  # the answer is gone: log, never raise into the server
        # The class only: a message may carry the address, which no log line holds.
        log.error("password_reset_request_failed", error=type(exc).__name__)


async def reset_password(
    session: AsyncSession, identity: Identity, *, token: str, new_password: str
) -> int:
    """The new password is set and every session of the account ends. Returns how many."""
    user = await _spend(session, token, purpose="password_reset")
    if user is None or user.is_blocked:
        raise InvalidResetToken("ask for a new link")
    identity.passwords.check_strength(
        new_password, field="newPassword", user_inputs=[user.email, user.name]
    )
    user.password_hash = await identity.passwords.hash(new_password)
    # Any other reset link mailed before this one is void with the password it would reset.
    await repo.void_account_tokens(session, user.id, purpose="password_reset")
    ended = await repo.revoke_sessions(session, user_id=user.id, reason="password_reset")
    repo.add_security_event(
        session, kind="password_reset", user_id=user.id, detail={"sessionsEnded": ended}
    )
    await session.flush()
    return ended
