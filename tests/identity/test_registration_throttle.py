"""Registration is throttled per client address in PostgreSQL, like logins: a burst from
one address gets 429 problem+json with Retry-After once the window's limit is spent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.identity.repository.throttle import registration_key
from tests.factories import STRONG_PASSWORD, unique_email

LIMIT = 3
WINDOW = 3600


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"registration_max_per_ip": LIMIT, "registration_window_seconds": WINDOW}


@pytest.fixture
def client_from(app: FastAPI) -> Callable[[str], AsyncIterator[httpx.AsyncClient]]:
    @asynccontextmanager
    async def open_client(ip: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c

    return open_client


async def _register(client: httpx.AsyncClient, email: str | None = None) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/register",
        json={"email": email or unique_email(), "password": STRONG_PASSWORD, "name": "P"},
    )


async def test_a_burst_from_one_address_gets_the_limit_and_then_429(
    client: httpx.AsyncClient, client_from: Callable[[str], AsyncIterator[httpx.AsyncClient]]
) -> None:
    answers = await asyncio.gather(*(_register(client) for _ in range(3 * LIMIT)))
    assert sorted(a.status_code for a in answers) == [201] * LIMIT + [429] * (2 * LIMIT)
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("too-many-registrations")
    assert WINDOW - 60 <= int(refused.headers["retry-after"]) <= WINDOW

    async with client_from("9.9.9.9") as elsewhere:  # another address has its own count
        assert (await _register(elsewhere)).status_code == 201


async def test_failed_attempts_count_too(client: httpx.AsyncClient) -> None:
    email = unique_email()
    assert (await _register(client, email)).status_code == 201
    for _ in range(LIMIT - 1):  # probing which addresses are taken
        assert (await _register(client, email)).status_code == 409
    assert (await _register(client)).status_code == 429


async def test_the_count_starts_again_when_the_window_passes(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    for _ in range(LIMIT):
        assert (await _register(client)).status_code == 201
    assert (await _register(client)).status_code == 429
    await db.execute(
        "UPDATE login_throttle SET window_started_at = now() - make_interval(secs => $1) "
        "WHERE scope = 'register'",
        WINDOW + 1,
    )
    assert (await _register(client)).status_code == 201


async def test_an_ipv6_subscriber_counts_as_one_address(
    client_from: Callable[[str], AsyncIterator[httpx.AsyncClient]],
) -> None:
    for n in range(LIMIT):
        async with client_from(f"2001:db8:5:7::{n + 1}") as c:
            assert (await _register(c)).status_code == 201
    async with client_from("2001:db8:5:7:ffff::9") as same_64:
        assert (await _register(same_64)).status_code == 429
    async with client_from("2001:db8:5:8::1") as next_64:
        assert (await _register(next_64)).status_code == 201


def test_registration_keys() -> None:
    assert registration_key("8.8.8.8") == "8.8.8.8"
    assert registration_key("::ffff:8.8.8.8") == "8.8.8.8"
    assert (
        registration_key("2001:db8::1") == registration_key("2001:db8::ffff:1") == ("2001:db8::/64")
    )
