"""OWASP's device cookies: someone else's failed logins cannot lock a player out of a device
they have logged in from. A login that brings back the device token of an earlier login
on the account is counted on that token alone; every other attempt keeps the account's
lockout, which stays as hard on guessing as before."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.identity.tokens import DeviceTokens
from tests.conftest import make_settings
from tests.factories import STRONG_PASSWORD, bearer, register

LIMIT = 10  # the defaults: ten failures, locked for a window
NEW_PASSWORD = "amber-falcon-orchard-51"


@pytest.fixture
def from_ip(app: FastAPI) -> Callable[[str], Any]:
    @asynccontextmanager
    async def open_client(ip: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c

    return open_client


async def _login(
    client: httpx.AsyncClient,
    email: str,
    password: str = STRONG_PASSWORD,
    *,
    device: str | None = None,
    header: bool = False,
) -> httpx.Response:
    body: dict[str, str] = {"email": email, "password": password}
    headers = {}
    if device is not None and header:
        headers["X-Device-Token"] = device
    elif device is not None:
        body["deviceToken"] = device
    return await client.post("/api/v1/auth/login", json=body, headers=headers)


async def _attacker_locks(from_ip: Callable[[str], Any], email: str) -> None:
    async with from_ip("203.0.113.9") as attacker:
        for n in range(LIMIT):
            assert (await _login(attacker, email, f"wrong-guess-{n}-xyz")).status_code == 401
        assert (await _login(attacker, email)).status_code == 429  # the account is locked


async def test_a_trusted_device_logs_in_while_the_account_is_locked(
    client: httpx.AsyncClient, from_ip: Callable[[str], Any]
) -> None:
    player = await register(client)
    email = player["user"]["email"]
    earlier = await _login(client, email)
    assert earlier.status_code == 200
    device = earlier.json()["deviceToken"]
    assert device and device != player["deviceToken"]  # each login gives a new one

    await _attacker_locks(from_ip, email)

    # Without the token, the player is locked out as before.
    assert (await _login(client, email)).status_code == 429
    # With it (in the body or the header), the player's device still gets in.
    again = await _login(client, email, device=device)
    assert again.status_code == 200, again.text
    assert (await client.get("/api/v1/me", headers=bearer(again.json()))).status_code == 200
    header = await _login(client, email, device=again.json()["deviceToken"], header=True)
    assert header.status_code == 200, header.text
    # The token from registration works as well.
    assert (await _login(client, email, device=player["deviceToken"])).status_code == 200


async def test_a_device_token_is_locked_after_its_own_failures(
    client: httpx.AsyncClient, from_ip: Callable[[str], Any], db: asyncpg.Pool
) -> None:
    player = await register(client)
    email = player["user"]["email"]
    device = player["deviceToken"]
    for n in range(LIMIT):
        wrong = await _login(client, email, f"wrong-guess-{n}-xyz", device=device)
        assert wrong.status_code == 401
    # Its failures went on the token alone: other devices are not locked out...
    async with from_ip("198.51.100.7") as other:
        assert (await _login(other, email)).status_code == 200
    # ...and the locked token no longer exempts: it counts as an unknown device now.
    locked = await db.fetchval(
        "SELECT locked_until > now() FROM login_throttle WHERE scope = 'device'"
    )
    assert locked is True
    await _attacker_locks(from_ip, email)
    refused = await _login(client, email, device=device)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    events = await db.fetch("SELECT detail FROM security_events WHERE kind = 'login_lockout'")
    assert sorted(e["detail"]["scope"] for e in events) == ["account", "device"]


async def test_parallel_guesses_with_a_device_token_cannot_outrun_its_count(
    client: httpx.AsyncClient,
) -> None:
    player = await register(client)
    email, device = player["user"]["email"], player["deviceToken"]
    guesses = [_login(client, email, f"wrong-{n}-abcdef", device=device) for n in range(25)]
    statuses = sorted(r.status_code for r in await asyncio.gather(*guesses))
    assert statuses.count(401) <= LIMIT, statuses


async def test_a_token_is_the_accounts_own_and_unforgeable(
    client: httpx.AsyncClient, from_ip: Callable[[str], Any], database_url: str
) -> None:
    victim = await register(client)
    other = await register(client)
    email = victim["user"]["email"]
    await _attacker_locks(from_ip, email)

    signed_elsewhere = DeviceTokens(make_settings(database_url, secret_key="x" * 40)).issue(
        email=email, password_hash="whatever", now=datetime.now(UTC)
    )
    body, _, signature = victim["deviceToken"].rpartition(".")
    nonce, expires, mark = body.split(".")
    tampered = f"{nonce}.{int(expires) + 1}.{mark}.{signature}"
    for token in (other["deviceToken"], signed_elsewhere, tampered, "x.y.z.w", "garbage"):
        assert (await _login(client, email, device=token)).status_code == 429, token


async def test_an_expired_token_is_not_trusted(
    client: httpx.AsyncClient, from_ip: Callable[[str], Any], app: FastAPI
) -> None:
    player = await register(client)
    email = player["user"]["email"]
    hash_ = await app.state.identity.passwords.hash(STRONG_PASSWORD)
    expired = app.state.identity.devices.issue(
        email=email, password_hash=hash_, now=datetime.now(UTC) - timedelta(days=400)
    )
    assert int(expired.split(".")[1]) < time.time()
    await _attacker_locks(from_ip, email)
    assert (await _login(client, email, device=expired)).status_code == 429


async def test_a_password_change_retires_the_tokens_earned_with_the_old_one(
    client: httpx.AsyncClient, from_ip: Callable[[str], Any]
) -> None:
    player = await register(client)
    email, stolen = player["user"]["email"], player["deviceToken"]
    changed = await client.post(
        "/api/v1/me/password",
        json={"currentPassword": STRONG_PASSWORD, "newPassword": NEW_PASSWORD},
        headers=bearer(player),
    )
    assert changed.status_code == 200, changed.text
    await _attacker_locks(from_ip, email)
    assert (await _login(client, email, NEW_PASSWORD, device=stolen)).status_code == 429
