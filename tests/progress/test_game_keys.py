"""Game API keys: made by admins, shown once, kept as SHA-256, acting only on their own
game, refused the moment they are revoked; player tokens are no key."""

from __future__ import annotations

import hashlib
import re
import uuid

import asyncpg
import httpx

from tests.factories import bearer, user_with_roles
from tests.progress.support import new_game, player, report, world


async def test_a_key_is_shown_once_and_only_its_hash_is_kept(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    key = w.game.key
    assert re.fullmatch(r"gpk_[A-Za-z0-9_-]{43}", key)
    stored = await db.fetchrow(
        "SELECT * FROM game_api_keys WHERE id = $1", uuid.UUID(w.game.key_id)
    )
    assert bytes(stored["key_hash"]) == hashlib.sha256(key.encode()).digest()
    assert key not in {str(v) for v in dict(stored).values()}
    listed = await client.get(f"/api/v1/admin/games/{w.game.id}/api-keys", headers=w.admin)
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert item["prefix"] == key[:12] and item["name"] == "servers"
    assert "key" not in item and item["lastUsedAt"] is None


async def test_last_used_is_recorded(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    assert (await report(client, w.game, user_id, pointsDelta=1)).status_code == 200
    listed = await client.get(f"/api/v1/admin/games/{w.game.id}/api-keys", headers=w.admin)
    assert listed.json()["items"][0]["lastUsedAt"] is not None


async def test_a_revoked_key_is_refused_at_once(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    assert (await report(client, w.game, user_id, pointsDelta=1)).status_code == 200
    revoked = await client.delete(
        f"/api/v1/admin/games/{w.game.id}/api-keys/{w.game.key_id}", headers=w.admin
    )
    assert revoked.status_code == 204
    refused = await report(client, w.game, user_id, pointsDelta=1)
    assert refused.status_code == 401
    assert refused.json()["type"].endswith(":invalid-api-key")
    again = await client.delete(
        f"/api/v1/admin/games/{w.game.id}/api-keys/{w.game.key_id}", headers=w.admin
    )
    assert again.status_code == 404


async def test_a_key_acts_on_its_own_game_only(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    w = await world(client, db)
    other = await new_game(client, w.admin)
    user_id, _ = await player(client)
    ach = await client.post(
        "/api/v1/admin/achievements",
        json={"gameId": other.id, "key": "win", "title": "Win"},
        headers=w.admin,
    )
    assert ach.status_code == 201
    body = {"pointsDelta": 5, "idempotencyKey": "x1"}
    for method, url, json in [
        ("POST", other.url(user_id), body),
        ("GET", other.url(user_id), None),
        ("POST", other.url(user_id, "achievements/win"), None),
    ]:
        # Game A's key on game B's routes.
        response = await client.request(method, url, json=json, headers=w.game.server)
        assert response.status_code == 404, (url, response.text)
        assert response.json()["type"].endswith(":game-not-found")
    assert await db.fetchval("SELECT count(*) FROM user_progress") == 0


async def test_a_players_token_cannot_call_game_server_routes(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    user_id, token = await player(client)
    admin_token = w.admin
    for headers in (token, admin_token):
        response = await client.post(
            w.game.url(user_id),
            json={"pointsDelta": 5, "idempotencyKey": "t1"},
            headers=headers,
        )
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "API key" in response.json()["detail"]
    anonymous = await client.post(
        w.game.url(user_id), json={"pointsDelta": 5, "idempotencyKey": "t1"}
    )
    assert anonymous.status_code == 401
    for bogus in ({"X-API-Key": "gpk_nope"}, {"Authorization": "Basic abc"}):
        response = await client.get(w.game.url(user_id), headers=bogus)
        assert response.status_code == 401, response.text
    assert await db.fetchval("SELECT count(*) FROM user_progress") == 0


async def test_bearer_and_header_both_carry_the_key(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    for n, headers in enumerate(
        ({"X-API-Key": w.game.key}, {"Authorization": f"Bearer {w.game.key}"})
    ):
        response = await client.post(
            w.game.url(user_id), json={"pointsDelta": 1, "idempotencyKey": f"b{n}"}, headers=headers
        )
        assert response.status_code == 200, response.text
    assert response.json()["points"] == 2


async def test_keys_are_for_games_and_admins_only(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    news = await client.post(
        "/api/v1/content", json={"type": "NEWS", "title": "Patch notes"}, headers=w.admin
    )
    for game_id in (news.json()["id"], str(uuid.uuid4())):
        made = await client.post(
            f"/api/v1/admin/games/{game_id}/api-keys", json={"name": "x"}, headers=w.admin
        )
        assert made.status_code == 404
        assert made.json()["type"].endswith(":game-not-found")
    editor = bearer(await user_with_roles(client, db, "editor"))
    refused = await client.post(
        f"/api/v1/admin/games/{w.game.id}/api-keys", json={"name": "x"}, headers=editor
    )
    assert refused.status_code == 403
