"""Web Push subscriptions: a player's browsers register where pushes go, one per device
session. The PUSH channel (channels/push.py) reads them; this module owns writing them."""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.config import Settings
from gameportal.errors import Conflict, InvalidField, NotFound
from gameportal.kit.time import utcnow
from gameportal.models import PushSubscription
from gameportal.notifications import push_repository as repo
from gameportal.notifications.schemas import PushSubscriptionCreate, PushSubscriptionRead
from gameportal.notifications.vapid import b64url_decode


def check_endpoint(settings: Settings, endpoint: str) -> None:
    """Only the browsers' push services: the worker POSTs to this URL, so an arbitrary
    one would let any player make the server call into its own network."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in endpoint):
        # urlsplit drops tabs and newlines silently; the HTTP client would not.
        raise InvalidField(
            "endpoint", "must not contain spaces or control characters", "url_parsing"
        )
    try:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        raise InvalidField("endpoint", "must be an absolute URL", "url_parsing") from None
    allowed_schemes = ("https", "http") if settings.push_allow_http else ("https",)
    if parts.scheme not in allowed_schemes or not host:
        raise InvalidField("endpoint", "must be an https:// URL of a push service", "url_scheme")
    if parts.username or parts.password:
        raise InvalidField("endpoint", "must not carry credentials", "url_credentials")
    allowed = [h.lower().lstrip(".") for h in settings.push_endpoint_hosts]
    if not any(host == h or host.endswith("." + h) for h in allowed):
        raise InvalidField(
            "endpoint",
            "is not on a known push service; the operator can allow more hosts with "
            "GAMEPORTAL_PUSH_ENDPOINT_HOSTS",
            "push_service_unknown",
        )


class EndpointTaken(Conflict):
    slug = "push-endpoint-taken"
    title = "This push endpoint belongs to another account"


def _same_keys(holder: PushSubscription, body: PushSubscriptionCreate) -> bool:
    """The keys as bytes (base64url may come with or without padding), compared in
    constant time: the auth secret is one."""
    try:
        stored = b64url_decode(holder.p256dh) + b64url_decode(holder.auth)
    except ValueError:
        return False
    offered = b64url_decode(body.keys.p256dh) + b64url_decode(body.keys.auth)
    return hmac.compare_digest(stored, offered)


async def subscribe(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    body: PushSubscriptionCreate,
) -> tuple[PushSubscription, bool]:
    """Register (or replace) this device session's subscription. Returns it and whether
    it is new."""
    check_endpoint(settings, body.endpoint)
    expires_at = (
        datetime.fromtimestamp(body.expiration_time / 1000, UTC)
        if body.expiration_time is not None
        else None
    )
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidField("expirationTime", "is in the past", "expired")
    # The endpoint names one browser profile: held by another session (another account
    # that logged in there, or an earlier login), it moves to this one. Between accounts
    # only with the same keys: they are what that browser's subscription holds, while the
    # URL alone may be known to others (logs, a shared device), and a move with other keys
    # would take the pushes away from the account that registered it.
    holder = await repo.endpoint_held_elsewhere(session, body.endpoint, session_id)
    if holder is not None and holder.user_id != user_id and not _same_keys(holder, body):
        raise EndpointTaken(
            "this push endpoint is registered to another account with other keys; "
            "the browser must register its own subscription"
        )
    await repo.release_endpoint(session, body.endpoint, session_id)
    try:
        return await repo.upsert(
            session,
            user_id=user_id,
            session_id=session_id,
            endpoint=body.endpoint,
            p256dh=body.keys.p256dh,
            auth=body.keys.auth,
            expires_at=expires_at,
        )
    except IntegrityError:
        # Another session registered the same endpoint at the same moment.
        raise Conflict("this endpoint was registered concurrently; try again") from None


async def list_subscriptions(
    session: AsyncSession, user_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[PushSubscription]:
    """Subscriptions of live sessions only: a logged-out device gets no pushes, and its
    row goes when `gameportal prune` deletes the ended session."""
    return await repo.live_of_user(session, user_id, after=after, limit=limit)


async def unsubscribe(
    session: AsyncSession, user_id: uuid.UUID, subscription_id: uuid.UUID
) -> None:
    if not await repo.delete_owned(session, user_id, subscription_id):
        raise NotFound("no such push subscription")  # someone else's id reads as unknown


def as_read(subscription: PushSubscription, current_session: uuid.UUID) -> PushSubscriptionRead:
    return PushSubscriptionRead(
        id=subscription.id,
        endpoint=subscription.endpoint,
        session_id=subscription.session_id,
        current=subscription.session_id == current_session,
        created_at=subscription.created_at,
        last_success_at=subscription.last_success_at,
        expires_at=subscription.expires_at,
    )
