from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from tests.factories import bearer, register, unique_email, user_with_roles


async def test_list_users_paginates_and_filters(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await user_with_roles(client, db, "admin")
    for _ in range(5):
        await register(client, email=unique_email("zed"))
    blocked = await register(client, email=unique_email("zed"))
    await db.execute(
        "UPDATE users SET is_blocked = true WHERE id = $1", uuid.UUID(blocked["user"]["id"])
    )

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "emailPrefix": "ZED"}
        if cursor:
            params["cursor"] = cursor
        page = await client.get("/api/v1/admin/users", params=params, headers=bearer(admin))
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [u["id"] for u in body["items"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6

    only_blocked = await client.get(
        "/api/v1/admin/users", params={"isBlocked": "true"}, headers=bearer(admin)
    )
    assert [u["id"] for u in only_blocked.json()["items"]] == [blocked["user"]["id"]]
    admins = await client.get(
        "/api/v1/admin/users", params={"role": "admin"}, headers=bearer(admin)
    )
    assert [u["id"] for u in admins.json()["items"]] == [admin["user"]["id"]]
    bad_cursor = await client.get(
        "/api/v1/admin/users", params={"cursor": "!!!"}, headers=bearer(admin)
    )
    assert bad_cursor.status_code == 422  # the schema's pattern for cursors
    assert bad_cursor.json()["errors"][0]["field"] == "cursor"
    bad_role = await client.get(
        "/api/v1/admin/users", params={"role": "god"}, headers=bearer(admin)
    )
    assert bad_role.status_code == 422
    assert bad_role.json()["errors"][0]["field"] == "role"
    too_many = await client.get(
        "/api/v1/admin/users", params={"limit": 1000}, headers=bearer(admin)
    )
    assert too_many.status_code == 422


async def test_roles_change_takes_effect_at_once(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await user_with_roles(client, db, "admin")
    player = await register(client)
    url = f"/api/v1/admin/users/{player['user']['id']}"
    response = await client.patch(url, json={"roles": ["editor"]}, headers=bearer(admin))
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["user", "editor"]
    # The player's existing token now passes an admin check? No: editor is not admin.
    assert (await client.get("/api/v1/admin/users", headers=bearer(player))).status_code == 403
    await client.patch(url, json={"roles": ["admin"]}, headers=bearer(admin))
    # Same old access token, new role, no re-login needed.
    assert (await client.get("/api/v1/admin/users", headers=bearer(player))).status_code == 200
    unknown = await client.patch(
        f"/api/v1/admin/users/{uuid.uuid4()}", json={"roles": ["editor"]}, headers=bearer(admin)
    )
    assert unknown.status_code == 404


async def test_blocking_ends_every_session_at_once(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await user_with_roles(client, db, "admin")
    player = await register(client)
    url = f"/api/v1/admin/users/{player['user']['id']}"
    response = await client.patch(url, json={"isBlocked": True}, headers=bearer(admin))
    assert response.status_code == 200
    assert response.json()["isBlocked"] is True
    assert (await client.get("/api/v1/me", headers=bearer(player))).status_code == 401
    assert (await client.get("/api/v1/me/progress", headers=bearer(player))).status_code == 401
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": player["refreshToken"]}
    )
    assert refresh.status_code == 401
    live = await db.fetchval(
        "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
        uuid.UUID(player["user"]["id"]),
    )
    assert live == 0
    sessions = await client.get(f"{url}/sessions", headers=bearer(admin))
    assert sessions.json() == {"items": [], "nextCursor": None}


async def test_last_admin_cannot_lose_the_role(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    admin = await user_with_roles(client, db, "admin")
    url = f"/api/v1/admin/users/{admin['user']['id']}"
    demote = await client.patch(url, json={"roles": ["user"]}, headers=bearer(admin))
    assert demote.status_code == 409
    assert demote.json()["type"].endswith("last-admin")
    block = await client.patch(url, json={"isBlocked": True}, headers=bearer(admin))
    assert block.status_code == 409
    erase = await client.request(
        "DELETE", "/api/v1/me", json={"password": admin["password"]}, headers=bearer(admin)
    )
    assert erase.status_code == 409
    assert await db.fetchval(
        "SELECT roles FROM users WHERE id = $1", uuid.UUID(admin["user"]["id"])
    ) == ["user", "admin"]


async def test_two_admins_demoting_each_other_concurrently_leave_one(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    for _ in range(5):  # a lock-order deadlock shows up as a 500 in some rounds, not all
        await db.execute("UPDATE users SET roles = ARRAY['user']")
        a = await user_with_roles(client, db, "admin")
        b = await user_with_roles(client, db, "admin")
        results = await asyncio.gather(
            client.patch(
                f"/api/v1/admin/users/{a['user']['id']}",
                json={"roles": ["user"]},
                headers=bearer(b),
            ),
            client.patch(
                f"/api/v1/admin/users/{b['user']['id']}",
                json={"roles": ["user"]},
                headers=bearer(a),
            ),
        )
        statuses = sorted(r.status_code for r in results)
        assert statuses in ([200, 403], [200, 409]), [r.text for r in results]
        remaining = await db.fetchval("SELECT count(*) FROM users WHERE 'admin' = ANY(roles)")
        assert remaining == 1


async def test_admin_lists_and_ends_user_sessions(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await user_with_roles(client, db, "admin")
    player = await register(client)
    url = f"/api/v1/admin/users/{player['user']['id']}"
    got = await client.get(url, headers=bearer(admin))
    assert got.status_code == 200 and got.json()["email"] == player["user"]["email"]
    sessions = await client.get(f"{url}/sessions", headers=bearer(admin))
    assert [s["id"] for s in sessions.json()["items"]] == [player["session"]["id"]]
    ended = await client.delete(f"{url}/sessions", headers=bearer(admin))
    assert ended.json() == {"ended": 1}
    assert (await client.get("/api/v1/me", headers=bearer(player))).status_code == 401
    assert (
        await client.get(f"/api/v1/admin/users/{uuid.uuid4()}/sessions", headers=bearer(admin))
    ).status_code == 404


async def test_security_events_tell_what_happened(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await user_with_roles(client, db, "admin")
    player = await register(client)
    url = f"/api/v1/admin/users/{player['user']['id']}"
    await client.post("/api/v1/auth/refresh", json={"refreshToken": player["refreshToken"]})
    await client.post(  # replayed from another device: reuse
        "/api/v1/auth/refresh",
        json={"refreshToken": player["refreshToken"]},
        headers={"User-Agent": "another device"},
    )
    await client.patch(url, json={"isBlocked": True}, headers=bearer(admin))
    events = await client.get(f"{url}/security-events", params={"limit": 1}, headers=bearer(admin))
    assert events.status_code == 200, events.text
    body = events.json()
    assert [e["kind"] for e in body["items"]] == ["blocked"]  # newest first
    older = await client.get(
        f"{url}/security-events", params={"cursor": body["nextCursor"]}, headers=bearer(admin)
    )
    reuse = older.json()["items"]
    assert [e["kind"] for e in reuse] == ["refresh_token_reuse"]
    assert reuse[0]["sessionId"] == player["session"]["id"]
    assert reuse[0]["ip"] == "8.8.8.8"
    assert older.json()["nextCursor"] is None
