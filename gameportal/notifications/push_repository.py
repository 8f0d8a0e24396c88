"""All Web Push SQL: the subscriptions players register, and what the PUSH channel reads
and records while delivering."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.kit.ids import new_id
from gameportal.models import PushSubscription, Session

# --- subscriptions (the request's ORM session) ---------------------------------------------

_UPSERT = text(
    """
    INSERT INTO push_subscriptions AS s
        (id, user_id, session_id, endpoint, p256dh, auth, expires_at)
    VALUES (:id, :user_id, :session_id, :endpoint, :p256dh, :auth, :expires_at)
    ON CONFLICT (session_id) DO UPDATE SET
        endpoint = excluded.endpoint, p256dh = excluded.p256dh, auth = excluded.auth,
        expires_at = excluded.expires_at, updated_at = now(),
        last_success_at = CASE WHEN s.endpoint = excluded.endpoint
                               THEN s.last_success_at END
    RETURNING s.id, (xmax = 0) AS created
    """
)


async def endpoint_held_elsewhere(
    session: AsyncSession, endpoint: str, session_id: uuid.UUID
) -> PushSubscription | None:
    """The subscription another session holds on this endpoint, locked until commit so
    that the check of its keys and the move that may follow see the same row."""
    found: PushSubscription | None = await session.scalar(
        select(PushSubscription)
        .where(PushSubscription.endpoint == endpoint, PushSubscription.session_id != session_id)
        .with_for_update()
    )
    return found


async def release_endpoint(session: AsyncSession, endpoint: str, session_id: uuid.UUID) -> None:
    """Another session's hold on this endpoint ends (the browser is now this session's)."""
    await session.execute(
        delete(PushSubscription).where(
            PushSubscription.endpoint == endpoint, PushSubscription.session_id != session_id
        )
    )


async def upsert(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    endpoint: str,
    p256dh: str,
    auth: str,
    expires_at: datetime | None,
) -> tuple[PushSubscription, bool]:
    """The session's subscription, and whether it is new. Raises IntegrityError when
    another session took the endpoint at the same moment."""
    row = (
        await session.execute(
            _UPSERT,
            {
                "id": new_id(),
                "user_id": user_id,
                "session_id": session_id,
                "endpoint": endpoint,
                "p256dh": p256dh,
                "auth": auth,
                "expires_at": expires_at,
            },
        )
    ).one()
    subscription = await session.get(PushSubscription, row.id, populate_existing=True)
    if subscription is None:  # it was written by the statement above, in this transaction
        raise RuntimeError("the upserted push subscription is not readable")
    return subscription, bool(row.created)


async def live_of_user(
    session: AsyncSession, user_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[PushSubscription]:
    query = (
        select(PushSubscription)
        .join(Session, Session.id == PushSubscription.session_id)
        .where(
            PushSubscription.user_id == user_id,
            Session.revoked_at.is_(None),
            Session.expires_at > func.now(),
        )
    )
    if after is not None:
        query = query.where(PushSubscription.id < after)
    rows = await session.scalars(query.order_by(PushSubscription.id.desc()).limit(limit))
    return list(rows)


async def delete_owned(
    session: AsyncSession, user_id: uuid.UUID, subscription_id: uuid.UUID
) -> bool:
    deleted = await session.execute(
        delete(PushSubscription)
        .where(PushSubscription.id == subscription_id, PushSubscription.user_id == user_id)
        .returning(PushSubscription.id)
    )
    return deleted.first() is not None


# --- delivery (the worker's pool) ----------------------------------------------------------

# Subscriptions of the recipient's live sessions that do not have this message yet.
_TARGETS_SQL = """
SELECT s.id, s.endpoint, s.p256dh, s.auth
FROM push_subscriptions s
JOIN sessions d ON d.id = s.session_id
WHERE s.user_id = $1
  AND d.revoked_at IS NULL AND d.expires_at > now()
  AND (s.expires_at IS NULL OR s.expires_at > now())
  AND NOT EXISTS (
      SELECT 1 FROM push_deliveries p WHERE p.message_id = $2 AND p.subscription_id = s.id)
"""


async def opt_outs(pool: asyncpg.Pool, user_id: uuid.UUID) -> list[str]:
    found = await pool.fetchval(
        "SELECT opt_outs FROM notification_preferences WHERE user_id = $1", user_id
    )
    return list(found or [])


async def targets(
    pool: asyncpg.Pool, user_id: uuid.UUID, message_id: uuid.UUID
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(_TARGETS_SQL, user_id, message_id)
    return rows


async def record_outcomes(
    pool: asyncpg.Pool,
    message_id: uuid.UUID,
    *,
    sent: list[uuid.UUID],
    gone: list[uuid.UUID],
    remember_sent: bool,
) -> None:
    """Devices reached get their success time; gone ones are deleted; and when a retry is
    coming, the devices reached are remembered so it skips them."""
    async with pool.acquire() as conn, conn.transaction():
        if sent:
            await conn.execute(
                "UPDATE push_subscriptions SET last_success_at = now() WHERE id = ANY($1)", sent
            )
        if gone:
            await conn.execute("DELETE FROM push_subscriptions WHERE id = ANY($1)", gone)
        if remember_sent and sent:
            await conn.execute(
                "INSERT INTO push_deliveries (message_id, subscription_id) "
                "SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING",
                message_id,
                sent,
            )
