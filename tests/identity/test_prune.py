import uuid
from datetime import timedelta

import asyncpg
import httpx
from fastapi import FastAPI

from gameportal.identity import repository as repo
from tests.factories import bearer, login, register


async def test_prune_deletes_only_what_no_rule_needs(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    data = await register(client)
    live = await login(client, data["user"]["email"])
    old_revoked = await login(client, data["user"]["email"])
    recent_revoked = await login(client, data["user"]["email"])
    old_expired = await login(client, data["user"]["email"])
    old_idle = await login(client, data["user"]["email"])
    await client.post("/api/v1/auth/refresh", json={"refreshToken": old_revoked["refreshToken"]})
    await client.post("/api/v1/auth/logout", headers=bearer(old_revoked))
    await client.post("/api/v1/auth/logout", headers=bearer(recent_revoked))
    await db.execute(
        "UPDATE sessions SET revoked_at = now() - interval '31 days' WHERE id = $1",
        uuid.UUID(old_revoked["session"]["id"]),
    )
    await db.execute(
        "UPDATE sessions SET expires_at = now() - interval '31 days' WHERE id = $1",
        uuid.UUID(old_expired["session"]["id"]),
    )
    await db.execute(  # idle for 14 days since day -45: ended 31 days ago
        "UPDATE sessions SET last_used_at = now() - interval '45 days' WHERE id = $1",
        uuid.UUID(old_idle["session"]["id"]),
    )
    await db.execute(
        "INSERT INTO login_throttle VALUES ('ip', '1.2.3.4', 3, now() - interval '1 day', NULL),"
        " ('ip', '5.6.7.8', 0, now() - interval '1 day', now() + interval '1 hour'),"
        " ('ip', '9.9.9.9', 2, now(), NULL)"
    )

    async with app.state.db.sessionmaker() as session, session.begin():
        pruned = await repo.prune(
            session,
            retention=timedelta(days=30),
            idle=timedelta(days=14),
            window=timedelta(minutes=15),
        )
    assert pruned == repo.Pruned(sessions=3, throttle_rows=1)
    left = {str(r["id"]) for r in await db.fetch("SELECT id FROM sessions")}
    assert left == {data["session"]["id"], live["session"]["id"], recent_revoked["session"]["id"]}
    assert await db.fetchval("SELECT count(*) FROM spent_refresh_tokens") == 0
    keys = {r["key"] for r in await db.fetch("SELECT key FROM login_throttle")}
    # Still locked; windows still open (the test client's own IP counter included).
    assert keys == {"5.6.7.8", "9.9.9.9", "8.8.8.8"}
    assert (await client.get("/api/v1/me", headers=bearer(live))).status_code == 200
