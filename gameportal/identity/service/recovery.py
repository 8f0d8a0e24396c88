"""Forgotten passwords: a mailed single-use link, answered the same whether or not the
address has an account."""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.errors import PortalError
from gameportal.identity import repository as repo
from gameportal.identity.service.context import Identity
from gameportal.identity.tokens import hash_refresh_token, new_refresh_token
from gameportal.models import normalize_email
from gameportal.notifications.service import enqueue

log = structlog.get_logger(__name__)

# One mail per account per minute at most: a form hammered with someone's address must not
# flood their mailbox.
RESEND_AFTER = timedelta(seconds=60)


class InvalidResetToken(PortalError):
    status = 400
    slug = "invalid-reset-token"
    title = "This reset link is invalid, used or expired"


async def request_password_reset(session: AsyncSession, identity: Identity, *, email: str) -> None:
    user = await repo.user_by_email(session, normalize_email(email))
    if user is None or user.is_blocked:
        log.info("password_reset_ignored")  # no account detail in logs either
        return
    if await repo.recent_reset_exists(session, user.id, within=RESEND_AFTER):
        return
    token = new_refresh_token()  # 256 bits, URL-safe
    ttl = timedelta(minutes=identity.settings.password_reset_ttl_minutes)
    repo.add_reset_token(session, user_id=user.id, token_hash=hash_refresh_token(token), ttl=ttl)
    base = identity.settings.public_base_url.rstrip("/")
    await enqueue(
        session,
        message_type="EMAIL",
        recipient_user_id=user.id,
        payload={
            "template": "password_reset",
            "variables": {
                "link": f"{base}/reset-password?token={token}",
                "minutes": identity.settings.password_reset_ttl_minutes,
            },
            "category": "account",
        },
        priority=10,
        max_attempts=5,
    )
    log.info("password_reset_requested", user_id=str(user.id))


async def reset_password(
    session: AsyncSession, identity: Identity, *, token: str, new_password: str
) -> int:
    """The new password is set and every session of the account ends. Returns how many."""
    user_id = await repo.spend_reset_token(session, hash_refresh_token(token))
    if user_id is None:
        raise InvalidResetToken("ask for a new link")
    user = await repo.get_user(session, user_id, lock=True)
    if user is None or user.is_blocked:
        raise InvalidResetToken("ask for a new link")
    identity.passwords.check_strength(
        new_password, field="newPassword", user_inputs=[user.email, user.name]
    )
    user.password_hash = await identity.passwords.hash(new_password)
    ended = await repo.revoke_sessions(session, user_id=user.id, reason="password_reset")
    repo.add_security_event(
        session, kind="password_reset", user_id=user.id, detail={"sessionsEnded": ended}
    )
    await session.flush()
    return ended
