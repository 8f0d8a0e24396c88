"""Stream tickets: how a browser's EventSource, which cannot send Authorization, opens the
live notification stream. Through a real uvicorn on loopback, as a browser would."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from tests.factories import STRONG_PASSWORD, bearer, login, register, user_with_roles
from tests.net import free_port
from tests.notifications.sse import STREAM, open_stream, served
from tests.notifications.support import running_workers

TICKET = "/api/v1/me/notifications/stream-ticket"


async def _ticket(client: httpx.AsyncClient, auth: dict[str, Any]) -> str:
    response = await client.post(TICKET, headers=bearer(auth))
    assert response.status_code == 200, response.text
    ticket: str = response.json()["ticket"]
    return ticket


async def _notify(client: httpx.AsyncClient, admin: dict[str, Any], to: dict[str, Any]) -> None:
    response = await client.post(
        "/api/v1/admin/notifications",
        headers=bearer(admin),
        json={"type": "IN_APP", "recipientUserId": to["user"]["id"], "payload": {"subject": "hi"}},
    )
    assert response.status_code == 201, response.text


async def test_a_ticket_opens_the_stream_once(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    admin = await user_with_roles(client, db, "admin")
    alice = await register(client)
    response = await client.post(TICKET, headers=bearer(alice))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"ticket", "expiresAt"}
    ticket = body["ticket"]
    left = datetime.fromisoformat(body["expiresAt"]) - datetime.now(UTC)
    assert 25 < left.total_seconds() <= 31  # GAMEPORTAL_STREAM_TICKET_TTL_SECONDS: 30
    # Kept only as its hash, bound to the session that asked.
    rows = await db.fetch("SELECT ticket_hash, session_id, user_id FROM stream_tickets")
    assert [tuple(r) for r in rows] == [
        (
            hashlib.sha256(ticket.encode()).hexdigest(),
            uuid.UUID(alice["session"]["id"]),
            uuid.UUID(alice["user"]["id"]),
        )
    ]

    async with (
        served(app) as base,
        running_workers(app, database_url, builtins=True),
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):
        assert await app.state.inbox_hub.wait_connected(within=5)
        # No Authorization header: the ticket alone, as EventSource sends it.
        async with open_stream(http, {}, params={"ticket": ticket}) as stream:
            await stream.wait(lambda s: len(s.retries) == 1)
            await _notify(client, admin, alice)
            await stream.wait(lambda s: len(s.ids) == 1)
            first = stream.ids[0]

            again = await http.get(STREAM, params={"ticket": ticket})
            assert again.status_code == 401
            assert again.headers["content-type"] == "application/problem+json"
            assert "ticket" in again.json()["detail"]
        assert await db.fetchval("SELECT count(*) FROM stream_tickets") == 0

        # A reconnect takes a new ticket, and resumes after the last event it saw with
        # `lastEventId` (a new EventSource cannot set Last-Event-ID).
        await _notify(client, admin, alice)
        resumed = {"ticket": await _ticket(client, alice), "lastEventId": first}
        async with open_stream(http, {}, params=resumed) as stream:
            await stream.wait(lambda s: len(s.ids) == 1)
            assert stream.ids[0] != first

        # The header keeps working, without a ticket.
        async with open_stream(http, bearer(alice)) as stream:
            await stream.wait(lambda s: len(s.retries) == 1)


async def test_concurrent_uses_of_one_ticket_open_one_stream(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    alice = await register(client)
    ticket = await _ticket(client, alice)
    async with served(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        assert await app.state.inbox_hub.wait_connected(within=5)

        async def attempt() -> int:
            async with http.stream("GET", STREAM, params={"ticket": ticket}) as response:
                return response.status_code

        statuses = await asyncio.gather(*(attempt() for _ in range(10)))
    assert sorted(statuses) == [200] + [401] * 9


async def test_expired_unknown_and_foreign_tickets_are_refused(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    alice = await register(client)
    anonymous = await client.post(TICKET)
    assert anonymous.status_code == 401
    expired = await _ticket(client, alice)
    await db.execute("UPDATE stream_tickets SET expires_at = now() - interval '1 second'")
    async with served(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        assert await app.state.inbox_hub.wait_connected(within=5)
        for ticket in (expired, "not-a-ticket", "x" * 5000, alice["accessToken"]):
            response = await http.get(STREAM, params={"ticket": ticket})
            assert response.status_code == 401, (ticket[:20], response.text)
            assert ticket not in response.text
    # The expired one is gone, and a new ticket clears the session's expired ones.
    assert await db.fetchval("SELECT count(*) FROM stream_tickets") == 0
    await _ticket(client, alice)
    await db.execute("UPDATE stream_tickets SET expires_at = now() - interval '1 second'")
    await _ticket(client, alice)
    assert await db.fetchval("SELECT count(*) FROM stream_tickets") == 1


async def _logout(client: httpx.AsyncClient, me: dict[str, Any], **_: Any) -> None:
    assert (await client.post("/api/v1/auth/logout", headers=bearer(me))).status_code == 204


async def _admin_ends_sessions(
    client: httpx.AsyncClient, me: dict[str, Any], admin: dict[str, Any]
) -> None:
    response = await client.delete(
        f"/api/v1/admin/users/{me['user']['id']}/sessions", headers=bearer(admin)
    )
    assert response.status_code == 200, response.text


async def _block(client: httpx.AsyncClient, me: dict[str, Any], admin: dict[str, Any]) -> None:
    response = await client.patch(
        f"/api/v1/admin/users/{me['user']['id']}", headers=bearer(admin), json={"isBlocked": True}
    )
    assert response.status_code == 200, response.text


async def _password_change_elsewhere(
    client: httpx.AsyncClient, me: dict[str, Any], **_: Any
) -> None:
    other = await login(client, me["user"]["email"])
    response = await client.post(
        "/api/v1/me/password",
        headers=bearer(other),
        json={"currentPassword": STRONG_PASSWORD, "newPassword": "amber-lantern-orchard-71"},
    )
    assert response.status_code == 200, response.text


async def _erase(client: httpx.AsyncClient, me: dict[str, Any], **_: Any) -> None:
    response = await client.request(
        "DELETE", "/api/v1/me", headers=bearer(me), json={"password": STRONG_PASSWORD}
    )
    assert response.status_code == 204, response.text


ENDINGS = [_logout, _admin_ends_sessions, _block, _password_change_elsewhere, _erase]


@pytest.mark.parametrize("end", ENDINGS)
async def test_ending_the_session_ends_its_tickets(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, end: Any
) -> None:
    admin = await user_with_roles(client, db, "admin")
    me = await register(client)
    ticket = await _ticket(client, me)
    await end(client, me=me, admin=admin)
    async with served(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        assert await app.state.inbox_hub.wait_connected(within=5)
        response = await http.get(STREAM, params={"ticket": ticket})
    assert response.status_code == 401


@pytest.mark.parametrize("end", ENDINGS)
async def test_a_stream_opened_by_ticket_closes_within_a_second_when_its_session_ends(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, end: Any
) -> None:
    admin = await user_with_roles(client, db, "admin")
    me = await register(client)
    ticket = await _ticket(client, me)
    async with (
        served(app) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):
        assert await app.state.inbox_hub.wait_connected(within=5)
        async with open_stream(http, {}, params={"ticket": ticket}) as stream:
            await stream.wait(lambda s: len(s.retries) == 1)
            await end(client, me=me, admin=admin)
            took = await stream.wait_ended(within=1.0)
    assert stream.clean and took < 1.0


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"log_level": "INFO"}  # every line the app writes, access lines included


async def test_tickets_never_reach_the_logs(
    app: FastAPI, client: httpx.AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    """uvicorn with its access log on (as `uvicorn gameportal.app:create_app` runs by
    default) and the app's own logs at INFO: no ticket in any line, used or refused."""
    alice = await register(client)
    tickets = [await _ticket(client, alice) for _ in range(3)]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="info")
    )
    capfd.readouterr()
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(250):  # bounded: 5 s
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started
        assert await app.state.inbox_hub.wait_connected(within=5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            async with open_stream(http, {}, params={"ticket": tickets[0]}) as stream:
                await stream.wait(lambda s: len(s.retries) == 1)
            refused = await http.get(STREAM, params={"ticket": tickets[0]})  # used
            assert refused.status_code == 401
            await http.get(STREAM, params={"ticket": tickets[1], "lastEventId": "nope"})
            await http.get(f"{STREAM}?lastEventId=x&TICKET={tickets[2]}")
    finally:
        server.should_exit = True
        await serving
    for handler in logging.getLogger("uvicorn.access").handlers:
        handler.flush()
    out, err = capfd.readouterr()
    logged = out + err
    assert "/api/v1/me/notifications/stream" in logged  # the access log did write lines
    assert "ticket=[redacted]" in logged
    for ticket in tickets:
        assert ticket not in logged
