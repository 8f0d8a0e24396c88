"""Hostile and careless clients of browser support: the refresh cookie's CSRF defence,
stream tickets that are raced, replayed or sent with a bad resume point, and secrets
(tickets, tokens, cookies) that must stay out of every log line."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from gameportal.kit.log_redaction import redact_query_secrets
from tests.factories import STRONG_PASSWORD, bearer, register, unique_email
from tests.net import free_port
from tests.notifications.sse import STREAM, open_stream, served

FRONT_END = "https://play.example.com"
COOKIE = "__Secure-gameportal-refresh"
FROM_PAGE = {"Origin": FRONT_END, "X-CSRF": "1"}
REFRESH = "/api/v1/auth/refresh"
TICKET = "/api/v1/me/notifications/stream-ticket"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # INFO: every line the app writes, so that the log checks below see them all.
    return {"cors_origins": [FRONT_END], "log_level": "INFO"}


async def _browser_login(client: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    email = unique_email()
    await register(client, email=email)
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": STRONG_PASSWORD, "sessionMode": "cookie"},
        headers=FROM_PAGE,
    )
    assert response.status_code == 200, response.text
    return response.json(), response.cookies[COOKIE]


async def _ticket(client: httpx.AsyncClient, auth: dict[str, Any]) -> str:
    response = await client.post(TICKET, headers=bearer(auth))
    assert response.status_code == 200, response.text
    ticket: str = response.json()["ticket"]
    return ticket


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:gameportal:problem:cross-site-request"


# --- the refresh cookie ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Origin": FRONT_END}, None),  # no X-CSRF: what a form sends
        ({"Origin": FRONT_END, "X-CSRF": ""}, None),
        ({"Origin": "https://evil.example", "X-CSRF": "1"}, None),
        ({"Origin": "null", "X-CSRF": "1"}, None),  # a sandboxed frame, a data: URL
        ({"Origin": f"{FRONT_END}.evil.example", "X-CSRF": "1"}, None),
        ({"Origin": "https://play.example.com@evil.example", "X-CSRF": "1"}, None),
        ({"Origin": f"{FRONT_END}/path", "X-CSRF": "1"}, None),
        ({"Referer": f"https://evil.example/{FRONT_END}", "X-CSRF": "1"}, None),
        ({"Origin": "https://evil.example", "Referer": f"{FRONT_END}/", "X-CSRF": "1"}, None),
        ({"X-CSRF": "1"}, None),  # neither Origin nor Referer
        ({"Origin": "https://evil.example"}, b"null"),  # a JSON null body is no body
        ({"Origin": "https://evil.example"}, b""),
    ],
)
async def test_the_cookie_refreshes_only_from_an_allowed_page(
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    headers: dict[str, str],
    body: bytes | None,
) -> None:
    _, token = await _browser_login(client)
    extra = {"Content-Type": "application/json"} if body is not None else {}
    response = await client.post(
        REFRESH, content=body, headers={**headers, **extra, "Cookie": f"{COOKIE}={token}"}
    )
    _refused(response)
    assert "set-cookie" not in response.headers
    # Nothing was rotated: the page's own refresh still works with the same cookie.
    fine = await client.post(REFRESH, headers={**FROM_PAGE, "Cookie": f"{COOKIE}={token}"})
    assert fine.status_code == 200, fine.text


# --- stream tickets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "headers", "field", "location"),
    [
        ({"lastEventId": "nope"}, {}, "lastEventId", "query"),
        ({}, {"Last-Event-ID": "nope"}, "Last-Event-ID", "header"),
        ({"lastEventId": "x" * 65}, {}, "lastEventId", "query"),
        ({}, {"Last-Event-ID": "x" * 65}, "last-event-id", "header"),
    ],
)
async def test_a_refused_resume_point_leaves_the_ticket_unspent(
    app: FastAPI,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    params: dict[str, str],
    headers: dict[str, str],
    field: str,
    location: str,
) -> None:
    """EventSource reconnects with whatever id it last saw: a 422 for it must not also
    cost the page its ticket (single-use), nor name the wrong part of the request."""
    alice = await register(client)
    ticket = await _ticket(client, alice)
    assert await app.state.inbox_hub.wait_connected(within=5)
    refused = await client.get(STREAM, params={"ticket": ticket, **params}, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    (error,) = refused.json()["errors"]
    assert (error["field"], error["location"]) == (field, location)
    assert ticket not in refused.text
    assert await db.fetchval("SELECT count(*) FROM stream_tickets") == 1
    # The same ticket, with a good resume point (or none), opens the stream once.
    async with served(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        async with open_stream(http, {}, params={"ticket": ticket}) as stream:
            await stream.wait(lambda s: len(s.retries) == 1)
        again = await http.get(STREAM, params={"ticket": ticket})
        assert again.status_code == 401
    assert await db.fetchval("SELECT count(*) FROM stream_tickets") == 0


async def test_two_concurrent_uses_of_a_ticket_open_one_stream(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    alice = await register(client)
    ticket = await _ticket(client, alice)
    async with served(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        assert await app.state.inbox_hub.wait_connected(within=5)

        async def attempt() -> int:
            async with http.stream("GET", STREAM, params={"ticket": ticket}) as response:
                return response.status_code

        for _ in range(3):  # each round a new ticket, raced by two
            statuses = await asyncio.gather(attempt(), attempt())
            assert sorted(statuses) == [200, 401]
            ticket = await _ticket(client, alice)


# --- secrets in logs ---------------------------------------------------------------------------


def test_percent_encoded_secret_names_are_redacted() -> None:
    """Starlette decodes parameter names as it decodes values: `%74icket` is `ticket`."""
    for line in (
        "GET /api/v1/me/notifications/stream?%74icket=SECRET HTTP/1.1",
        "GET /api/v1/me/notifications/stream?lastEventId=x&tick%65t=SECRET HTTP/1.1",
        "GET /verify-email?%54OKEN=SECRET HTTP/1.1",
        "GET /reset-password?token=SECRET#top",
    ):
        assert "SECRET" not in redact_query_secrets(line), line
        assert "=[redacted]" in redact_query_secrets(line)
    # Other parameters stay as they were, however they are written.
    kept = "GET /api/v1/campaigns/active?language=pt-BR&ticketing=1&%2574icket=x HTTP/1.1"
    assert redact_query_secrets(kept) == kept


async def test_no_ticket_token_or_cookie_reaches_any_log_line(
    app: FastAPI, client: httpx.AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    """uvicorn with its access log on (as `uvicorn gameportal.app:create_app` runs by
    default) and the app at INFO, through cookie login, refresh, a grace replay, a reuse
    that ends the session, and tickets used, refused, raced and sent under an encoded
    name."""
    secrets: list[str] = []
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="info")
    )
    capfd.readouterr()
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(250):  # bounded: 5 s
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started
        assert await app.state.inbox_hub.wait_connected(within=5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            body, cookie = await _browser_login(http)
            secrets += [body["accessToken"], cookie]
            rotated = await http.post(
                REFRESH, headers={**FROM_PAGE, "Cookie": f"{COOKIE}={cookie}"}
            )
            assert rotated.status_code == 200
            secrets += [rotated.json()["accessToken"], rotated.cookies[COOKIE]]
            replay = await http.post(REFRESH, headers={**FROM_PAGE, "Cookie": f"{COOKIE}={cookie}"})
            assert replay.status_code == 200  # the grace window: the same successor
            reuse = await http.post(
                REFRESH,
                headers={**FROM_PAGE, "Cookie": f"{COOKIE}={cookie}", "User-Agent": "elsewhere"},
            )
            assert reuse.status_code == 401  # another device: the session ends (a warning)
            alice = await register(http)
            secrets += [alice["accessToken"], alice["refreshToken"]]
            tickets = [await _ticket(http, alice) for _ in range(4)]
            secrets += tickets
            async with open_stream(http, {}, params={"ticket": tickets[0]}) as stream:
                await stream.wait(lambda s: len(s.retries) == 1)
            assert (await http.get(STREAM, params={"ticket": tickets[0]})).status_code == 401
            await http.get(STREAM, params={"ticket": tickets[1], "lastEventId": "nope"})
            # Read as `ticket` (names are decoded as values are): it opens the stream.
            async with http.stream("GET", f"{STREAM}?%74icket={tickets[2]}") as encoded:
                assert encoded.status_code == 200
            await http.get(f"{STREAM}?lastEventId=x&TICKET={tickets[3]}")
            await http.post(REFRESH, json={"refreshToken": alice["refreshToken"] + "x"})
    finally:
        server.should_exit = True
        await serving
    for handler in logging.getLogger("uvicorn.access").handlers:
        handler.flush()
    out, err = capfd.readouterr()
    logged = out + err
    assert "/api/v1/me/notifications/stream" in logged  # the access log did write lines
    assert "refresh_token_reuse" in logged  # and the app's own warning
    for secret in secrets:
        assert secret not in logged, secret[:8]
