"""Plain async factories that go through the public API."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import asyncpg
import httpx

STRONG_PASSWORD = "violet-kettle-harbour-93"
_seq = itertools.count()


def unique_email(prefix: str = "player") -> str:
    return f"{prefix}{next(_seq)}-{uuid.uuid4().hex[:6]}@example.com"


async def register(
    client: httpx.AsyncClient,
    *,
    email: str | None = None,
    password: str = STRONG_PASSWORD,
    name: str = "Player One",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body = {"email": email or unique_email(), "password": password, "name": name, **extra}
    response = await client.post("/api/v1/auth/register", json=body, headers=headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    data["password"] = password
    return data


async def login(
    client: httpx.AsyncClient, email: str, password: str = STRONG_PASSWORD, **headers: str
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def bearer(auth: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth['accessToken']}"}


async def grant_roles(db: asyncpg.Pool, user_id: str, *roles: str) -> None:
    await db.execute(
        "UPDATE users SET roles = $2 WHERE id = $1", uuid.UUID(user_id), ["user", *roles]
    )


async def user_with_roles(
    client: httpx.AsyncClient, db: asyncpg.Pool, *roles: str
) -> dict[str, Any]:
    """A registered user holding `roles`, logged in again so its token carries them."""
    auth = await register(client)
    if roles:
        await grant_roles(db, auth["user"]["id"], *roles)
    return auth
