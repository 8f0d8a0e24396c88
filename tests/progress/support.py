"""Building a game with its server's API key and some players, through the public API."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from tests.factories import bearer, register, user_with_roles

_keys = itertools.count()


@dataclass
class Game:
    id: str
    key: str
    key_id: str

    @property
    def server(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    def url(self, player: str, tail: str = "progress") -> str:
        return f"/api/v1/games/{self.id}/players/{player}/{tail}"


@dataclass
class World:
    admin: dict[str, str]
    game: Game


async def new_game(
    client: httpx.AsyncClient, admin: dict[str, str], *, publish: bool = True, title: str = "Orbit"
) -> Game:
    created = await client.post(
        "/api/v1/content",
        json={"type": "GAME", "title": f"{title} {uuid.uuid4().hex[:6]}", "content": "A game."},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    game_id = created.json()["id"]
    if publish:
        published = await client.post(f"/api/v1/content/{game_id}/publish", headers=admin)
        assert published.status_code == 200, published.text
    made = await client.post(
        f"/api/v1/admin/games/{game_id}/api-keys", json={"name": "servers"}, headers=admin
    )
    assert made.status_code == 201, made.text
    return Game(id=game_id, key=made.json()["key"], key_id=made.json()["id"])


async def world(client: httpx.AsyncClient, db: asyncpg.Pool) -> World:
    admin = bearer(await user_with_roles(client, db, "admin"))
    return World(admin=admin, game=await new_game(client, admin))


async def player(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """A registered player: their id and their access token's header."""
    auth = await register(client)
    return auth["user"]["id"], bearer(auth)


async def report(
    client: httpx.AsyncClient, game: Game, user_id: str, **body: Any
) -> httpx.Response:
    body.setdefault("idempotencyKey", f"k-{next(_keys)}-{uuid.uuid4().hex[:8]}")
    return await client.post(game.url(user_id), json=body, headers=game.server)


async def achievement(
    client: httpx.AsyncClient, admin: dict[str, str], game: Game, **fields: Any
) -> dict[str, Any]:
    body = {"gameId": game.id, "key": f"a{uuid.uuid4().hex[:8]}", "title": "First steps", **fields}
    made = await client.post("/api/v1/admin/achievements", json=body, headers=admin)
    assert made.status_code == 201, made.text
    found: dict[str, Any] = made.json()
    return found


async def in_app(db: asyncpg.Pool, user_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT payload FROM messages WHERE type = 'IN_APP' AND recipient_user_id = $1 ORDER BY id",
        uuid.UUID(user_id),
    )
    return [dict(r["payload"]) for r in rows]
