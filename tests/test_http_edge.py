"""The API's HTTP edge, in process: security headers on every answer (hand-built ones too),
no caching of token responses, /metrics behind a token, redirects that never name the
client's Host, the caller checked before a body is read, and bodies sent too slowly cut off.
(The server's own limits, on headers and connections, are in tests/test_serve_limits.py.)"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from starlette.types import Message, Receive, Scope, Send

from gameportal.identity.deps import _needs
from gameportal.kit.routing import _relative_location
from gameportal.progress.deps import game_key
from tests.conftest import METRICS_AUTH, PLAYER_IP
from tests.factories import bearer, register, user_with_roles

SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def _secured(response: httpx.Response, cache_control: str | None = "no-store") -> None:
    where = f"{response.request.method} {response.request.url.path}"
    for name, value in SECURITY.items():
        assert response.headers.get_list(name) == [value], (where, name)
    [csp] = response.headers.get_list("content-security-policy")
    assert "frame-ancestors 'none'" in csp, where
    if cache_control is not None:
        assert response.headers.get_list("cache-control") == [cache_control], where


# --- security headers --------------------------------------------------------------------


async def test_token_responses_are_never_stored_and_every_answer_has_security_headers(
    client: httpx.AsyncClient,
) -> None:
    registered = await client.post(
        "/api/v1/auth/register",
        json={"email": "h@example.com", "password": "violet-kettle-harbour-93", "name": "H"},
    )
    assert registered.status_code == 201
    _secured(registered)
    # login, refresh and /me are answered by hand (kit.routing.answer_directly).
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": "h@example.com", "password": "violet-kettle-harbour-93"},
    )
    assert login.status_code == 200
    _secured(login)
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": login.json()["refreshToken"]}
    )
    assert refreshed.status_code == 200
    _secured(refreshed)
    me = await client.get("/api/v1/me", headers=bearer(refreshed.json()))
    assert me.status_code == 200
    _secured(me)
    # Errors of every kind: the app's, a route's refusal, the middleware's own.
    _secured(await client.get("/api/v1/me"))  # 401
    _secured(await client.get("/api/v1/no-such-thing"))  # 404
    _secured(await client.post("/api/v1/auth/login", json={}))  # 422
    too_big = await client.post(
        "/api/v1/auth/login",
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert too_big.status_code == 413
    _secured(too_big)
    assert too_big.headers["connection"] == "close"
    _secured(await client.get("/healthz"))
    _secured(await client.get("/openapi.json"))


async def test_public_reads_keep_their_caching_and_get_the_security_headers(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    editor = bearer(await user_with_roles(client, db, "editor"))
    created = await client.post(
        "/api/v1/content",
        json={"type": "NEWS", "title": "Headers", "content": "x"},
        headers=editor,
    )
    published = await client.post(f"/api/v1/content/{created.json()['id']}/publish", headers=editor)
    assert published.status_code == 200
    # The first read goes through the app, the next come from the process's cache.
    for _ in range(3):
        read = await client.get("/api/v1/content/NEWS/headers")
        assert read.status_code == 200
        _secured(read, cache_control="public, max-age=60, must-revalidate")
        again = await client.get(
            "/api/v1/content/NEWS/headers", headers={"If-None-Match": read.headers["etag"]}
        )
        assert again.status_code == 304
        _secured(again, cache_control="public, max-age=60, must-revalidate")


async def test_docs_pages_have_a_csp_that_allows_their_own_scripts_only(
    client: httpx.AsyncClient,
) -> None:
    # (Their assets and the rest of their policy: tests/web/test_api_docs.py.)
    for path in ("/docs", "/redoc"):
        page = await client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        _secured(page)
        [csp] = page.headers.get_list("content-security-policy")
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"
        assert not re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page.text), path


async def test_a_route_that_sets_its_own_headers_keeps_them_without_duplicates(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def own(request: Request) -> Any:
        from starlette.responses import PlainTextResponse

        return PlainTextResponse(
            "x",
            headers={
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "public, max-age=5",
                "X-Frame-Options": "SAMEORIGIN",
            },
        )

    app.add_route("/test-own-headers", own)
    response = await client.get("/test-own-headers")
    assert response.headers.get_list("content-security-policy") == ["default-src 'none'; sandbox"]
    assert response.headers.get_list("cache-control") == ["public, max-age=5"]
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


# --- /metrics ------------------------------------------------------------------------------


async def test_metrics_need_the_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    basic = await client.get(
        "/metrics",
        headers={"Authorization": METRICS_AUTH["Authorization"].replace("Bearer", "Basic")},
    )
    assert basic.status_code == 401
    scraped = await client.get("/metrics", headers=METRICS_AUTH)
    assert scraped.status_code == 200
    assert "gameportal_http_requests_total" in scraped.text
    _secured(scraped)


@pytest.mark.parametrize("settings_overrides", [{"metrics_token": None}])
async def test_without_a_token_there_are_no_metrics(client: httpx.AsyncClient) -> None:
    for headers in ({}, METRICS_AUTH):
        response = await client.get("/metrics", headers=headers)
        assert response.status_code == 404
        assert "GAMEPORTAL_METRICS_TOKEN" in response.json()["detail"]


# --- HEAD ----------------------------------------------------------------------------------


async def test_head_is_answered_as_get_without_the_body(client: httpx.AsyncClient) -> None:
    # FastAPI's routes take GET only: HEAD /healthz, a load balancer's probe, was a 405.
    got = await client.get("/healthz")
    head = await client.head("/healthz")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(got.content))
    assert head.headers["content-type"] == got.headers["content-type"]
    _secured(head)

    player = await register(client)
    me = await client.head("/api/v1/me", headers=bearer(player))
    assert me.status_code == 200 and me.content == b""
    refused = await client.head("/api/v1/me")
    assert refused.status_code == 401 and refused.content == b""
    assert refused.headers["www-authenticate"].startswith("Bearer")

    # Where GET is not taken, neither is HEAD; where it is, Allow names both.
    login = await client.head("/api/v1/auth/login")
    assert login.status_code == 405 and login.headers["allow"] == "POST"
    post = await client.post("/healthz")
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"

    # Counted as what it was.
    metrics = (await client.get("/metrics", headers=METRICS_AUTH)).text
    assert 'gameportal_http_requests_total{method="HEAD",route="/healthz",status="200"}' in metrics


# --- redirects -----------------------------------------------------------------------------


async def test_the_trailing_slash_redirect_never_names_the_clients_host(
    client: httpx.AsyncClient,
) -> None:
    for host in ("evil.example", "evil.example:443", "testserver"):
        moved = await client.get("/api/v1/me/?a=1&b=%2F", headers={"Host": host})
        assert moved.status_code == 307
        assert moved.headers["location"] == "/api/v1/me?a=1&b=%2F"
    assert _relative_location({"path": "//evil.example/x/", "query_string": b""}) == (
        "/evil.example/x/"
    )
    assert _relative_location({"path": "/a\\b?#/", "query_string": b""}) == "/a%5Cb%3F%23/"


async def test_redirects_other_code_builds_from_the_request_stay_on_this_server(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def to_healthz(request: Request) -> RedirectResponse:
        return RedirectResponse(str(request.url.replace(path="/healthz")))

    async def to_the_bucket(request: Request) -> RedirectResponse:
        return RedirectResponse("https://bucket.s3.example/media/x.png")

    app.add_route("/test-redirect", to_healthz)
    app.add_route("/test-elsewhere", to_the_bucket)
    poisoned = await client.get("/test-redirect?x=1", headers={"Host": "evil.example"})
    assert poisoned.headers["location"] == "/healthz?x=1"
    elsewhere = await client.get("/test-elsewhere", headers={"Host": "evil.example"})
    assert elsewhere.headers["location"] == "https://bucket.s3.example/media/x.png"


# --- the caller before the body ------------------------------------------------------------


class BodyCounter:
    """The app, counting the body bytes it takes in."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.taken = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            self.taken += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


def _concrete(path: str) -> str:
    return re.sub(r"{number}", "1", re.sub(r"{(?!number)[^}]+}", str(uuid.uuid4()), path))


async def test_no_body_is_read_before_the_caller_is_known(app: FastAPI) -> None:
    counter = BodyCounter(app)
    transport = httpx.ASGITransport(app=counter, client=(PLAYER_IP, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as anonymous:
        # An anonymous 20 MiB upload: 401, and not a byte of it taken in.
        upload = await anonymous.post(
            "/api/v1/media",
            files={"file": ("big.png", b"\x89PNG" + b"\0" * (20 * 1024 * 1024 - 4))},
        )
        assert upload.status_code == 401, upload.text
        assert counter.taken == 0
        assert upload.headers["connection"] == "close"

        # Every other route that takes a body and needs a caller alike.
        checked = []
        for route in app.routes:
            if not isinstance(route, APIRoute) or route.body_field is None:
                continue
            needed, _, others = _needs(route.dependant, (game_key,))
            if not needed and not others:
                continue
            for method in route.methods:
                response = await anonymous.request(
                    method, _concrete(route.path), json={"padding": "x" * 100_000}
                )
                assert response.status_code == 401, (method, route.path, response.text)
                checked.append(f"{method} {route.path}")
        assert counter.taken == 0, checked
        assert len(checked) >= 12

        # A caller without the role the route asks for is refused before the body too.
        player = await register(anonymous)
        refused = await anonymous.post(
            "/api/v1/media",
            files={"file": ("big.png", b"\x89PNG" + b"\0" * 1_000_000)},
            headers=bearer(player),
        )
        assert refused.status_code == 403
        assert counter.taken < 10_000  # register's own body only
        # And the caller's own routes with bodies work as before.
        renamed = await anonymous.patch(
            "/api/v1/me", json={"name": "Renamed"}, headers=bearer(player)
        )
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["name"] == "Renamed"


async def test_an_editor_still_uploads(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    from tests.content.images import png

    editor = await user_with_roles(client, db, "editor")
    upload = await client.post(
        "/api/v1/media", files={"file": ("a.png", png(), "image/png")}, headers=bearer(editor)
    )
    assert upload.status_code == 201, upload.text


# --- bodies sent too slowly ----------------------------------------------------------------


async def _call(
    app: FastAPI, method: str, path: str, chunks: list[tuple[float, bytes]], *, hang: bool = False
) -> tuple[int, dict[str, str], bytes, float]:
    """One request straight into the app: body chunks each after its delay; with `hang`,
    the client then sends nothing more and never leaves."""
    sent: list[Message] = []
    pending = list(chunks)
    forever = asyncio.Event()

    async def receive() -> Message:
        if not pending:
            await forever.wait()
            return {"type": "http.disconnect"}
        delay, body = pending.pop(0)
        await asyncio.sleep(delay)
        return {"type": "http.request", "body": body, "more_body": bool(pending) or hang}

    async def send(message: Message) -> None:
        sent.append(message)

    length = sum(len(body) for _, body in chunks) + (1000 if hang else 0)
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(length).encode()),
        ],
        "client": (PLAYER_IP, 40000),
        "server": ("testserver", 80),
        "state": {},
        "app": app,
    }
    started = time.monotonic()
    await asyncio.wait_for(app(scope, receive, send), 10)
    elapsed = time.monotonic() - started
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:]), elapsed


@pytest.mark.parametrize(
    "settings_overrides", [{"body_timeout_seconds": 0.3, "body_min_rate_bytes": 1000}]
)
async def test_a_body_trickled_too_slowly_gets_408_and_a_steady_one_does_not(app: FastAPI) -> None:
    # login is answered by hand, register by FastAPI: both read through the middleware.
    for path in ("/api/v1/auth/login", "/api/v1/auth/register"):
        status, headers, body, elapsed = await _call(
            app, "POST", path, [(0, b'{"email": "a@ex')], hang=True
        )
        assert status == 408, body
        assert headers["content-type"] == "application/problem+json"
        assert headers["connection"] == "close"
        assert b"request-timeout" in body
        assert 0.3 <= elapsed < 2

    # Slower than the timeout in all, but each second of it brought 1,000 bytes.
    padded = b'{"email": "steady@example.com", "password": "violet-kettle-harbour-93"' + b" " * 2930
    chunks = [(0.25, padded[i : i + 1000]) for i in range(0, len(padded), 1000)] + [(0.25, b"}")]
    status, _, body, elapsed = await _call(app, "POST", "/api/v1/auth/login", chunks)
    assert elapsed > 0.9
    assert status == 401, body  # no such account: it was read and judged


@pytest.mark.parametrize("settings_overrides", [{"body_timeout_seconds": 0.2}])
async def test_waiting_for_a_disconnect_after_the_body_is_not_limited(app: FastAPI) -> None:
    from starlette.responses import PlainTextResponse

    async def watch(request: Request) -> PlainTextResponse:
        await request.receive()  # the (empty) body
        try:
            message = await asyncio.wait_for(request.receive(), 0.6)
        except TimeoutError:
            return PlainTextResponse("still connected")
        return PlainTextResponse(message["type"])

    app.add_route("/test-watch", watch)
    status, _, body, _ = await _call(app, "GET", "/test-watch", [(0, b"")])
    assert (status, body) == (200, b"still connected")


@pytest.mark.parametrize("settings_overrides", [{"public_base_url": "https://api.example.com"}])
async def test_an_https_portal_tells_browsers_to_keep_to_https(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    editor = bearer(await user_with_roles(client, db, "editor"))
    created = await client.post(
        "/api/v1/content", json={"type": "NEWS", "title": "Pinned", "content": "x"}, headers=editor
    )
    await client.post(f"/api/v1/content/{created.json()['id']}/publish", headers=editor)
    answers = [
        await client.get("/healthz"),
        await client.get("/api/v1/me"),  # 401
        await client.get("/api/v1/no-such-thing"),  # 404
        await client.get("/api/v1/content/NEWS/pinned"),  # through the app
        await client.get("/api/v1/content/NEWS/pinned"),  # from the process's cache
    ]
    for answer in answers:
        assert answer.headers.get_list("strict-transport-security") == ["max-age=31536000"], (
            answer.request.url.path
        )


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {"public_base_url": "http://127.0.0.1:8000"},
        {"public_base_url": "https://a.example", "hsts_seconds": 0},
    ],
)
async def test_no_hsts_over_plain_http_or_when_turned_off(client: httpx.AsyncClient) -> None:
    assert "strict-transport-security" not in (await client.get("/healthz")).headers
