from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.factories import STRONG_PASSWORD, login, register


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {
        "login_max_failures_per_account": 3,
        "login_max_failures_per_ip": 5,
        "login_lockout_seconds": 2,
    }


async def _attempt(
    client: httpx.AsyncClient, email: str, password: str, ip_headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=ip_headers
    )


async def test_account_locks_after_failures_then_recovers(client: httpx.AsyncClient) -> None:
    data = await register(client)
    email = data["user"]["email"]
    for _ in range(3):
        assert (await _attempt(client, email, "wrong-password-x")).status_code == 401
    locked = await _attempt(client, email, STRONG_PASSWORD)
    assert locked.status_code == 429
    assert locked.headers["content-type"] == "application/problem+json"
    retry_after = int(locked.headers["retry-after"])
    assert 1 <= retry_after <= 2
    await asyncio.sleep(retry_after + 0.2)
    # Never locked out for good: the right password works once the lock passes.
    await login(client, email)


async def test_success_resets_the_account_counter(client: httpx.AsyncClient) -> None:
    data = await register(client)
    email = data["user"]["email"]
    for _ in range(2):
        await _attempt(client, email, "wrong-password-x")
    await login(client, email)
    for _ in range(2):
        assert (await _attempt(client, email, "wrong-password-x")).status_code == 401
    await login(client, email)


async def test_unknown_accounts_count_too(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await _attempt(client, "ghost@example.com", "whatever-123")).status_code == 401
    assert (await _attempt(client, "ghost@example.com", "whatever-123")).status_code == 429


async def test_one_ip_spraying_many_accounts_is_throttled(client: httpx.AsyncClient) -> None:
    victim = await register(client)
    for n in range(5):
        response = await _attempt(client, f"spray{n}@example.com", "whatever-123")
        assert response.status_code == 401
    # The IP is now locked, even for an account that had no failures.
    blocked = await _attempt(client, victim["user"]["email"], STRONG_PASSWORD)
    assert blocked.status_code == 429
