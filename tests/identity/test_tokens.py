from __future__ import annotations

import asyncio
import base64
import json
import time

import asyncpg
import httpx
import jwt
import pytest

from tests.factories import bearer, register

SECRET = "test-secret-key-0123456789abcdef0123456789"


# A replay from the device that rotated the token, within seconds, is two tabs at once and
# gets the same successor (tests/identity/test_refresh_grace.py); from another, it is reuse.
ANOTHER_DEVICE = {"User-Agent": "Mozilla/5.0 (another device)"}


async def _refresh(
    client: httpx.AsyncClient, token: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refreshToken": token}, headers=headers)


async def test_refresh_rotates_and_the_new_tokens_work(client: httpx.AsyncClient) -> None:
    data = await register(client)
    response = await _refresh(client, data["refreshToken"])
    assert response.status_code == 200, response.text
    fresh = response.json()
    assert fresh["refreshToken"] != data["refreshToken"]
    assert (await client.get("/api/v1/me", headers=bearer(fresh))).status_code == 200
    again = await _refresh(client, fresh["refreshToken"])
    assert again.status_code == 200


async def test_replayed_refresh_token_ends_the_session(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    data = await register(client)
    fresh = (await _refresh(client, data["refreshToken"])).json()
    replay = await _refresh(client, data["refreshToken"], ANOTHER_DEVICE)
    assert replay.status_code == 401
    assert replay.json()["type"].endswith("invalid-refresh-token")
    # The whole session is gone: its newest refresh token and its access tokens too.
    assert (await _refresh(client, fresh["refreshToken"])).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(fresh))).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(data))).status_code == 401
    event = await db.fetchrow("SELECT kind, session_id FROM security_events")
    assert event["kind"] == "refresh_token_reuse"
    assert str(event["session_id"]) == data["session"]["id"]
    reason = await db.fetchval("SELECT revoked_reason FROM sessions")
    assert reason == "refresh_token_reuse"


# Without the grace window (with it: tests/identity/test_refresh_grace.py).
@pytest.mark.parametrize("settings_overrides", [{"refresh_reuse_grace_seconds": 0}])
async def test_50_parallel_refreshes_exactly_one_wins(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    data = await register(client)
    responses = await asyncio.gather(*(_refresh(client, data["refreshToken"]) for _ in range(50)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 1, statuses
    assert statuses.count(401) == 49, statuses
    assert all(
        r.headers["content-type"] == "application/problem+json"
        for r in responses
        if r.status_code == 401
    )
    # Every loser presented a spent token, which is a replay: the session ends.
    revoked = await db.fetchval("SELECT revoked_reason FROM sessions")
    assert revoked == "refresh_token_reuse"


async def test_unknown_refresh_token_is_401(client: httpx.AsyncClient) -> None:
    response = await _refresh(client, "not-a-token")
    assert response.status_code == 401
    assert response.json()["type"].endswith("invalid-refresh-token")


async def test_idle_session_cannot_refresh(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    data = await register(client)
    await db.execute("UPDATE sessions SET last_used_at = now() - interval '15 days'")
    assert (await _refresh(client, data["refreshToken"])).status_code == 401


async def test_expired_session_cannot_refresh(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    data = await register(client)
    await db.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    assert (await _refresh(client, data["refreshToken"])).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(data))).status_code == 401


def _claims(access_token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(access_token, options={"verify_signature": False})
    return claims


async def test_access_token_claims(client: httpx.AsyncClient) -> None:
    data = await register(client)
    claims = _claims(data["accessToken"])
    assert claims["sub"] == data["user"]["id"]
    assert claims["sid"] == data["session"]["id"]
    assert claims["roles"] == ["user"]
    assert claims["iss"] == "gameportal" and claims["aud"] == "gameportal-api"
    assert int(claims["exp"]) - int(claims["iat"]) == 900  # type: ignore[call-overload]


def _b64(obj: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


async def test_hostile_access_tokens_are_refused(client: httpx.AsyncClient) -> None:
    data = await register(client)
    claims = _claims(data["accessToken"])
    now = int(time.time())
    forged = {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "tampered": data["accessToken"][:-4]
        + ("AAAA" if not data["accessToken"].endswith("AAAA") else "BBBB"),
        "wrong key": jwt.encode(claims, "another-secret-another-secret-123", algorithm="HS256"),
        "other algorithm": jwt.encode(claims, SECRET * 2, algorithm="HS512"),
        "foreign audience": jwt.encode(
            {**claims, "aud": "someone-else"}, SECRET, algorithm="HS256"
        ),
        "wrong issuer": jwt.encode({**claims, "iss": "evil"}, SECRET, algorithm="HS256"),
        "expired": jwt.encode(
            {**claims, "iat": now - 3600, "exp": now - 60}, SECRET, algorithm="HS256"
        ),
        "no sid": jwt.encode(
            {k: v for k, v in claims.items() if k != "sid"}, SECRET, algorithm="HS256"
        ),
        "garbage": "abc.def.ghi",
    }
    for label, token in forged.items():
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, label
        assert response.headers["content-type"] == "application/problem+json", label
    no_scheme = await client.get("/api/v1/me", headers={"Authorization": data["accessToken"]})
    assert no_scheme.status_code == 401
    # A well-signed token whose session id belongs to nobody.
    other = jwt.encode(
        {**claims, "sid": "0190f0f0-0000-7000-8000-000000000000"}, SECRET, algorithm="HS256"
    )
    assert (
        await client.get("/api/v1/me", headers={"Authorization": f"Bearer {other}"})
    ).status_code == 401


async def test_logout_ends_the_session_at_once(client: httpx.AsyncClient) -> None:
    data = await register(client)
    response = await client.post("/api/v1/auth/logout", headers=bearer(data))
    assert response.status_code == 204
    # Both session checks: the one that reads the profile (/me), the one that reads roles.
    assert (await client.get("/api/v1/me", headers=bearer(data))).status_code == 401
    assert (await client.get("/api/v1/me/sessions", headers=bearer(data))).status_code == 401
    assert (await _refresh(client, data["refreshToken"])).status_code == 401
