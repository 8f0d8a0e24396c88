"""Only the newest mailed link works: a newer reset request, a reset and a password change
void every reset link mailed before them; a verified address voids its other
verification links.

The links are put in place as the service stores them (only the token's SHA-256), so
that each test holds a raw token it knows; asking for a new one goes through the API."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from gameportal.identity.admin_cli import create_or_promote_admin
from gameportal.identity.tokens import hash_refresh_token
from tests.conftest import make_settings
from tests.factories import STRONG_PASSWORD, bearer, register

NEW_PASSWORD = "amber-falcon-orchard-51"
OTHER_PASSWORD = "copper-meadow-lantern-74"


async def _mailed(
    db: asyncpg.Pool, user: dict[str, Any], purpose: str = "password_reset", *, age: int = 120
) -> str:
    """A link mailed `age` seconds ago, live for another half hour: its raw token."""
    token = secrets.token_urlsafe(32)
    await db.execute(
        "INSERT INTO account_tokens (token_hash, purpose, user_id, created_at, expires_at) "
        "VALUES ($1, $2, $3, now() - make_interval(secs => $4), now() + interval '30 minutes')",
        hash_refresh_token(token),
        purpose,
        uuid.UUID(user["user"]["id"]),
        age,
    )
    return token


async def _reset(client: httpx.AsyncClient, token: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/password-reset", json={"token": token, "newPassword": password}
    )


def _refused(response: httpx.Response) -> bool:
    return response.status_code == 400 and response.json()["type"].endswith("invalid-reset-token")


async def test_a_newer_reset_request_voids_earlier_links(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    user = await register(client)
    earlier = await _mailed(db, user)
    asked = await client.post(
        "/api/v1/auth/password-reset/request", json={"email": user["user"]["email"]}
    )
    assert asked.status_code == 202
    newest = await db.fetchval(
        "SELECT count(*) FROM account_tokens WHERE purpose = 'password_reset' "
        "AND used_at IS NULL AND expires_at > now()"
    )
    assert newest == 1  # the new link only
    assert _refused(await _reset(client, earlier, NEW_PASSWORD))


async def test_a_used_link_voids_every_other_link(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    user = await register(client)
    first, second = await _mailed(db, user, age=300), await _mailed(db, user, age=200)
    used = await _reset(client, second, NEW_PASSWORD)
    assert used.status_code == 200, used.text
    assert _refused(await _reset(client, first, OTHER_PASSWORD))
    assert _refused(await _reset(client, second, OTHER_PASSWORD))  # single use, as before
    login = await client.post(
        "/api/v1/auth/login", json={"email": user["user"]["email"], "password": NEW_PASSWORD}
    )
    assert login.status_code == 200


async def test_a_password_change_voids_earlier_links(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    user = await register(client)
    earlier = await _mailed(db, user)
    changed = await client.post(
        "/api/v1/me/password",
        json={"currentPassword": STRONG_PASSWORD, "newPassword": NEW_PASSWORD},
        headers=bearer(user),
    )
    assert changed.status_code == 200, changed.text
    assert _refused(await _reset(client, earlier, OTHER_PASSWORD))


async def test_promoting_with_a_new_password_voids_earlier_links(
    client: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    user = await register(client)
    earlier = await _mailed(db, user)
    await create_or_promote_admin(
        make_settings(database_url),
        database_url,
        email=user["user"]["email"],
        name="Admin",
        password=NEW_PASSWORD,
    )
    assert _refused(await _reset(client, earlier, OTHER_PASSWORD))


async def test_two_links_used_at_once_reset_the_password_once(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    user = await register(client)
    tokens = [await _mailed(db, user, age=100 + n) for n in range(2)]
    answers = await asyncio.gather(
        _reset(client, tokens[0], NEW_PASSWORD), _reset(client, tokens[1], OTHER_PASSWORD)
    )
    assert sorted(a.status_code for a in answers) == [200, 400], [a.text for a in answers]


async def test_a_verified_address_voids_its_other_verification_links(
    client: httpx.AsyncClient, db: asyncpg.Pool, app: FastAPI
) -> None:
    user = await register(client)
    first = await _mailed(db, user, "verify_email", age=300)
    second = await _mailed(db, user, "verify_email", age=200)
    verified = await client.post("/api/v1/auth/verify-email", json={"token": second})
    assert verified.status_code == 200, verified.text
    assert verified.json()["emailVerifiedAt"] is not None
    stale = await client.post("/api/v1/auth/verify-email", json={"token": first})
    assert stale.status_code == 400
    assert stale.json()["type"].endswith("invalid-verification-token")


async def test_a_newer_verification_request_voids_earlier_links(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    user = await register(client)
    # Registration mailed one a moment ago: make it old enough for a new one to be sent.
    await db.execute("UPDATE account_tokens SET created_at = created_at - interval '2 minutes'")
    earlier = await _mailed(db, user, "verify_email")
    asked = await client.post("/api/v1/auth/verify-email/request", headers=bearer(user))
    assert asked.status_code == 202
    stale = await client.post("/api/v1/auth/verify-email", json={"token": earlier})
    assert stale.status_code == 400
