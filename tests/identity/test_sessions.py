from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.factories import STRONG_PASSWORD, bearer, login, register


async def test_sessions_list_marks_the_current_one(client: httpx.AsyncClient) -> None:
    first = await register(client)
    second = await login(client, first["user"]["email"], **{"X-Device-Fingerprint": "phone"})
    response = await client.get("/api/v1/me/sessions", headers=bearer(second))
    assert response.status_code == 200
    body = response.json()
    assert body["nextCursor"] is None
    sessions = body["items"]
    assert len(sessions) == 2
    current = [s for s in sessions if s["current"]]
    assert [s["id"] for s in current] == [second["session"]["id"]]
    assert current[0]["fingerprint"] == "phone"
    assert set(sessions[0]) >= {
        "id",
        "ip",
        "country",
        "userAgent",
        "deviceType",
        "fingerprint",
        "createdAt",
        "lastUsedAt",
        "expiresAt",
        "current",
    }
    assert "refreshTokenHash" not in sessions[0]


async def test_end_one_session(client: httpx.AsyncClient) -> None:
    first = await register(client)
    second = await login(client, first["user"]["email"])
    response = await client.delete(
        f"/api/v1/me/sessions/{first['session']['id']}", headers=bearer(second)
    )
    assert response.status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(first))).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(second))).status_code == 200
    again = await client.delete(
        f"/api/v1/me/sessions/{first['session']['id']}", headers=bearer(second)
    )
    assert again.status_code == 404


async def test_another_users_session_is_404_and_untouched(client: httpx.AsyncClient) -> None:
    alice = await register(client)
    bob = await register(client)
    response = await client.delete(
        f"/api/v1/me/sessions/{alice['session']['id']}", headers=bearer(bob)
    )
    assert response.status_code == 404
    assert response.json()["type"].endswith("session-not-found")
    assert (await client.get("/api/v1/me", headers=bearer(alice))).status_code == 200
    bad_id = await client.delete("/api/v1/me/sessions/not-a-uuid", headers=bearer(bob))
    assert bad_id.status_code == 422
    assert bad_id.json()["errors"][0]["field"] == "session_id"
    unknown = await client.delete(f"/api/v1/me/sessions/{uuid.uuid4()}", headers=bearer(bob))
    assert unknown.status_code == 404


async def test_end_all_other_sessions(client: httpx.AsyncClient) -> None:
    first = await register(client)
    second = await login(client, first["user"]["email"])
    third = await login(client, first["user"]["email"])
    response = await client.delete("/api/v1/me/sessions", headers=bearer(third))
    assert response.status_code == 200
    assert response.json() == {"ended": 2}
    for ended in (first, second):
        assert (await client.get("/api/v1/me", headers=bearer(ended))).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(third))).status_code == 200


async def test_password_change_ends_every_other_session(client: httpx.AsyncClient) -> None:
    first = await register(client)
    second = await login(client, first["user"]["email"])
    wrong = await client.post(
        "/api/v1/me/password",
        json={"currentPassword": "not-my-password", "newPassword": "amber-falcon-orchard-51"},
        headers=bearer(second),
    )
    assert wrong.status_code == 403
    assert wrong.json()["type"].endswith("wrong-password")
    assert "www-authenticate" not in wrong.headers
    weak = await client.post(
        "/api/v1/me/password",
        json={"currentPassword": STRONG_PASSWORD, "newPassword": "password1"},
        headers=bearer(second),
    )
    assert weak.status_code == 422
    assert weak.json()["errors"][0]["field"] == "newPassword"
    response = await client.post(
        "/api/v1/me/password",
        json={"currentPassword": STRONG_PASSWORD, "newPassword": "amber-falcon-orchard-51"},
        headers=bearer(second),
    )
    assert response.status_code == 200
    assert response.json() == {"ended": 1}
    assert (await client.get("/api/v1/me", headers=bearer(first))).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(second))).status_code == 200
    await login(client, first["user"]["email"], "amber-falcon-orchard-51")
    old = await client.post(
        "/api/v1/auth/login", json={"email": first["user"]["email"], "password": STRONG_PASSWORD}
    )
    assert old.status_code == 401


async def test_delete_account_erases_user_and_sessions(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    data = await register(client)
    keep = await register(client)
    wrong = await client.request(
        "DELETE", "/api/v1/me", json={"password": "wrong-password-9"}, headers=bearer(data)
    )
    assert wrong.status_code == 403
    assert wrong.json()["type"].endswith("wrong-password")
    assert "www-authenticate" not in wrong.headers
    response = await client.request(
        "DELETE", "/api/v1/me", json={"password": STRONG_PASSWORD}, headers=bearer(data)
    )
    assert response.status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(data))).status_code == 401
    assert await db.fetchval("SELECT count(*) FROM users") == 1
    assert (
        await db.fetchval(
            "SELECT count(*) FROM sessions WHERE user_id <> $1", uuid.UUID(keep["user"]["id"])
        )
        == 0
    )


async def test_sessions_are_paginated_newest_first(client: httpx.AsyncClient) -> None:
    first = await register(client)
    logins = [await login(client, first["user"]["email"]) for _ in range(4)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (
            await client.get("/api/v1/me/sessions", params=params, headers=bearer(first))
        ).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    expected = [a["session"]["id"] for a in reversed([first, *logins])]
    assert seen == expected
