"""Refresh from two tabs: a replay of the refresh token rotated a moment ago, from the device
that rotated it, gets the same successor instead of ending the session; after the grace
window, or from another device, a replay is reuse and ends the session as before."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.identity import repository as repo
from gameportal.identity.tokens import RefreshTokens, device_mark
from tests.conftest import PLAYER_IP, make_settings
from tests.factories import bearer, register

REFRESH = "/api/v1/auth/refresh"


async def _refresh(
    client: httpx.AsyncClient, token: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(REFRESH, json={"refreshToken": token}, headers=headers)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def from_ip(app: FastAPI) -> Callable[[str], Any]:
    @asynccontextmanager
    async def open_client(ip: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c

    return open_client


async def _live(db: asyncpg.Pool, session_id: str) -> bool:
    revoked = await db.fetchval(
        "SELECT revoked_at FROM sessions WHERE id = $1", uuid.UUID(session_id)
    )
    return revoked is None


async def test_a_second_tab_replaying_the_token_gets_the_same_successor(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    data = await register(client)
    first = await _refresh(client, data["refreshToken"])
    assert first.status_code == 200, first.text
    second = await _refresh(client, data["refreshToken"])  # the other tab, a moment later
    assert second.status_code == 200, second.text
    assert second.json()["refreshToken"] == first.json()["refreshToken"]
    # Both access tokens are the session's, and the session goes on.
    for answer in (first, second):
        me = await client.get("/api/v1/me", headers=bearer(answer.json()))
        assert me.status_code == 200
    assert await _live(db, data["session"]["id"])
    assert await db.fetchval("SELECT count(*) FROM security_events") == 0
    # The successor is the session's one live refresh token, and rotates as any other.
    successor = first.json()["refreshToken"]
    stored = await db.fetchval("SELECT refresh_token_hash FROM sessions")
    assert stored == _hash(successor)
    onward = await _refresh(client, successor)
    assert onward.status_code == 200
    assert onward.json()["refreshToken"] not in (successor, data["refreshToken"])


async def test_a_replay_after_the_window_ends_the_session(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    data = await register(client)
    fresh = (await _refresh(client, data["refreshToken"])).json()
    # Eleven seconds later (the default window is ten).
    await db.execute("UPDATE spent_refresh_tokens SET spent_at = now() - interval '11 seconds'")
    replay = await _refresh(client, data["refreshToken"])
    assert replay.status_code == 401
    assert replay.json()["type"].endswith("invalid-refresh-token")
    assert not await _live(db, data["session"]["id"])
    assert await db.fetchval("SELECT revoked_reason FROM sessions") == "refresh_token_reuse"
    assert await db.fetchval("SELECT kind FROM security_events") == "refresh_token_reuse"
    assert (await _refresh(client, fresh["refreshToken"])).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(fresh))).status_code == 401


@pytest.mark.parametrize(
    "elsewhere",
    [
        {"ip": "203.0.113.7"},
        {"headers": {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}},
        {"headers": {"X-Device-Fingerprint": "another-device"}},
    ],
    ids=["other-address", "other-browser", "other-fingerprint"],
)
async def test_a_replay_from_another_device_within_the_window_ends_the_session(
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    from_ip: Callable[[str], Any],
    elsewhere: dict[str, Any],
) -> None:
    data = await register(client)
    fresh = await _refresh(client, data["refreshToken"])
    assert fresh.status_code == 200
    async with from_ip(elsewhere.get("ip", PLAYER_IP)) as thief:
        replay = await _refresh(thief, data["refreshToken"], elsewhere.get("headers"))
    assert replay.status_code == 401
    assert not await _live(db, data["session"]["id"])
    event = await db.fetchrow("SELECT kind, ip FROM security_events")
    assert event["kind"] == "refresh_token_reuse"
    assert str(event["ip"]) == elsewhere.get("ip", PLAYER_IP)
    assert (await _refresh(client, fresh.json()["refreshToken"])).status_code == 401


async def test_an_ipv6_client_is_one_device_across_its_64(
    from_ip: Callable[[str], Any], db: asyncpg.Pool
) -> None:
    # Privacy addresses change within the network's /64; another /64 is another device.
    async with from_ip("2001:db8:1:2::10") as tab_a, from_ip("2001:db8:1:2::99") as tab_b:
        data = await register(tab_a)
        first = await _refresh(tab_a, data["refreshToken"])
        second = await _refresh(tab_b, data["refreshToken"])
    assert second.status_code == 200
    assert second.json()["refreshToken"] == first.json()["refreshToken"]
    async with from_ip("2001:db8:1:3::10") as elsewhere:
        again = await _refresh(elsewhere, data["refreshToken"])
    assert again.status_code == 401
    assert not await _live(db, data["session"]["id"])


async def test_a_third_tab_gets_the_sessions_newest_token(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    data = await register(client)
    t1 = (await _refresh(client, data["refreshToken"])).json()["refreshToken"]
    t2 = (await _refresh(client, t1)).json()["refreshToken"]
    late = await _refresh(client, data["refreshToken"])
    assert late.status_code == 200, late.text
    assert late.json()["refreshToken"] == t2
    assert await db.fetchval("SELECT refresh_token_hash FROM sessions") == _hash(t2)
    assert await _live(db, data["session"]["id"])


async def test_50_parallel_refreshes_leave_exactly_one_live_successor(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    data = await register(client)
    responses = await asyncio.gather(*(_refresh(client, data["refreshToken"]) for _ in range(50)))
    assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses]
    successors = {r.json()["refreshToken"] for r in responses}
    assert len(successors) == 1  # one successor, answered fifty times
    (successor,) = successors
    assert await db.fetchval("SELECT count(*) FROM sessions WHERE revoked_at IS NULL") == 1
    assert await db.fetchval("SELECT refresh_token_hash FROM sessions") == _hash(successor)
    # The token was rotated once: one spent token, no reuse recorded.
    assert await db.fetchval("SELECT count(*) FROM spent_refresh_tokens") == 1
    assert await db.fetchval("SELECT count(*) FROM security_events") == 0
    for r in responses:
        assert (await client.get("/api/v1/me", headers=bearer(r.json()))).status_code == 200
    assert (await _refresh(client, successor)).status_code == 200


async def test_a_replay_for_an_ended_session_is_refused(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    data = await register(client)
    fresh = (await _refresh(client, data["refreshToken"])).json()
    logout = await client.post("/api/v1/auth/logout", headers=bearer(fresh))
    assert logout.status_code == 204
    assert (await _refresh(client, data["refreshToken"])).status_code == 401


async def test_a_replay_for_a_blocked_player_is_refused(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    data = await register(client)
    await _refresh(client, data["refreshToken"])
    await db.execute("UPDATE users SET is_blocked = true")
    replay = await _refresh(client, data["refreshToken"])
    assert replay.status_code == 403
    assert replay.json()["type"].endswith("account-blocked")


@pytest.mark.parametrize("settings_overrides", [{"refresh_reuse_grace_seconds": 0}])
async def test_without_a_window_every_replay_ends_the_session(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    data = await register(client)
    assert (await _refresh(client, data["refreshToken"])).status_code == 200
    assert (await _refresh(client, data["refreshToken"])).status_code == 401
    assert not await _live(db, data["session"]["id"])


async def test_a_normal_refresh_makes_no_grace_lookup(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The grace check runs only for a token that no longer rotates: a normal refresh stays
    # one statement.
    async def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("grace lookup on a normal refresh")

    data = await register(client)
    monkeypatch.setattr(repo, "session_of_recently_spent_token", refuse)
    token = data["refreshToken"]
    for _ in range(3):
        response = await _refresh(client, token)
        assert response.status_code == 200
        token = response.json()["refreshToken"]


# --- the successor ---------------------------------------------------------------------------


def test_successors_are_derived_per_token_and_device() -> None:
    settings = make_settings("postgresql://unused/db")
    tokens = RefreshTokens(settings)
    here = device_mark("198.51.100.4", "Firefox", None)
    successor = tokens.successor("token-a", here)
    assert successor == tokens.successor("token-a", here)
    assert len(successor) == 43  # as long as a random token (256 bits)
    others = {
        tokens.successor("token-b", here),
        tokens.successor("token-a", device_mark("198.51.100.5", "Firefox", None)),
        tokens.successor("token-a", device_mark("198.51.100.4", "Chrome", None)),
        tokens.successor("token-a", device_mark("198.51.100.4", "Firefox", "fp")),
        RefreshTokens(make_settings("postgresql://unused/db", secret_key="k" * 40)).successor(
            "token-a", here
        ),
    }
    assert successor not in others and len(others) == 5
    # An IPv6 client is marked by its /64.
    assert device_mark("2001:db8::1", None, None) == device_mark("2001:db8::ffff:1", None, None)
    assert device_mark("2001:db8::1", None, None) != device_mark("2001:db8:0:1::1", None, None)
