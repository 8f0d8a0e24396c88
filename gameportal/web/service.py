"""What an account page needs to know about a mailed link before the person acts on it:
whether the link still works, and the language of its account. Nothing here uses a link
up: mail scanners open links, so only the page's POST (through the same identity and
notification services as the API) acts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.identity import repository as identity_repo
from gameportal.identity.tokens import hash_refresh_token
from gameportal.notifications import unsubscribe as unsubscribe_links
from gameportal.notifications.schemas import OPTIONAL_CATEGORIES

# A mailed token is 43 characters; anything much longer is not one of ours.
MAX_TOKEN_LENGTH = 512


@dataclass(frozen=True)
class AccountLink:
    live: bool
    language: str | None = None  # the account's own language, when the link names one
    # The account's address, for a live link only: the reset form names it for password
    # managers (whoever holds the link may set the account's password anyway).
    email: str | None = None


async def user_language(session: AsyncSession, user_id: uuid.UUID | None) -> str | None:
    if user_id is None:
        return None
    user = await identity_repo.get_user(session, user_id)
    if user is None:
        return None
    language = (user.preferences or {}).get("language")
    return language if isinstance(language, str) else None


async def account_link(session: AsyncSession, token: str, *, purpose: str) -> AccountLink:
    """A verification or reset link: live (unused, unexpired, its account not blocked
    from resetting) or not."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return AccountLink(live=False)
    token_hash = hash_refresh_token(token)
    owner = await identity_repo.live_account_token_owner(session, token_hash, purpose=purpose)
    if owner is None:
        # A used or expired link still says whose it was: its page speaks their language.
        known = await identity_repo.account_token_owner(session, token_hash, purpose=purpose)
        return AccountLink(live=False, language=await user_language(session, known))
    user = await identity_repo.get_user(session, owner)
    if user is None:
        return AccountLink(live=False)
    language = (user.preferences or {}).get("language")
    blocked = purpose == "password_reset" and user.is_blocked
    return AccountLink(
        live=not blocked,
        language=language if isinstance(language, str) else None,
        email=None if blocked else user.email,
    )


@dataclass(frozen=True)
class UnsubscribeLink:
    target: unsubscribe_links.Unsubscribe | None  # None: not a link we signed
    language: str | None


async def unsubscribe_link(session: AsyncSession, secret_key: str, token: str) -> UnsubscribeLink:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return UnsubscribeLink(target=None, language=None)
    target = unsubscribe_links.verify(secret_key, token)
    if target is None or target.category not in OPTIONAL_CATEGORIES:
        return UnsubscribeLink(target=None, language=None)
    return UnsubscribeLink(target=target, language=await user_language(session, target.user_id))
