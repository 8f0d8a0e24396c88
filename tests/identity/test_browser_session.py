"""Browser session mode: the refresh token in an HttpOnly cookie scoped to the auth routes,
refresh and logout by the cookie, the CSRF defence of every request the cookie
authenticates, and CORS with credentials only for the configured origins."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import ValidationError

from gameportal.config import Settings
from tests.factories import STRONG_PASSWORD, bearer, register, unique_email

FRONT_END = "https://play.example.com"

COOKIE = "__Secure-gameportal-refresh"
# What the front end's fetch() sends with every request that uses the cookie.
FROM_PAGE = {"Origin": FRONT_END, "X-CSRF": "1"}
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"cors_origins": [FRONT_END]}


def _set_cookie(response: httpx.Response, name: str = COOKIE) -> dict[str, str]:
    """The Set-Cookie of `name`: its value under "value", then its attributes."""
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    first, *attributes = (part.strip() for part in found[0].split(";"))
    parsed = {"value": first.split("=", 1)[1]}
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        parsed[key.lower()] = value
    return parsed


def _with_cookie(token: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {**(headers if headers is not None else FROM_PAGE), "Cookie": f"{COOKIE}={token}"}


async def _browser_login(client: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    """A player registered in bearer mode, then logged in from a browser in cookie mode:
    the answer and the cookie's refresh token."""
    email = unique_email()
    await register(client, email=email)
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": STRONG_PASSWORD, "sessionMode": "cookie"},
        headers=FROM_PAGE,
    )
    assert response.status_code == 200, response.text
    return response.json(), _set_cookie(response)["value"]


async def _live(db: asyncpg.Pool, session_id: str) -> bool:
    revoked = await db.fetchval(
        "SELECT revoked_at FROM sessions WHERE id = $1", uuid.UUID(session_id)
    )
    return revoked is None


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:gameportal:problem:cross-site-request"


# --- the cookie --------------------------------------------------------------------------------


async def test_login_in_cookie_mode_sets_the_cookie_and_no_body_token(
    client: httpx.AsyncClient,
) -> None:
    data, token = await _browser_login(client)
    assert data["refreshToken"] is None
    assert data["accessToken"] and data["expiresIn"] == 900
    assert (await client.get("/api/v1/me", headers=bearer(data))).status_code == 200
    assert len(token) == 43


async def test_the_cookie_is_httponly_secure_strict_and_scoped_to_the_auth_routes(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "email": unique_email(),
            "password": STRONG_PASSWORD,
            "name": "Browser Player",
            "sessionMode": "cookie",
        },
        headers=FROM_PAGE,
    )
    assert response.status_code == 201, response.text
    assert response.json()["refreshToken"] is None
    cookie = _set_cookie(response)
    assert cookie["path"] == "/api/v1/auth"
    assert cookie["max-age"] == str(14 * 86_400)  # the idle timeout; each refresh renews it
    assert {"httponly", "secure"} <= set(cookie)
    assert cookie["samesite"] == "Strict"
    assert "domain" not in cookie  # this host only
    assert response.headers["cache-control"] == "no-store"


async def test_bearer_mode_stays_the_default(client: httpx.AsyncClient) -> None:
    data = await register(client)
    assert data["refreshToken"]
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": data["user"]["email"], "password": STRONG_PASSWORD},
    )
    assert login.json()["refreshToken"]
    assert "set-cookie" not in login.headers
    refreshed = await client.post(REFRESH, json={"refreshToken": login.json()["refreshToken"]})
    assert refreshed.status_code == 200 and refreshed.json()["refreshToken"]
    assert "set-cookie" not in refreshed.headers


@pytest.mark.parametrize(
    "settings_overrides", [{"cors_origins": [FRONT_END], "cookie_secure": False}]
)
async def test_plain_http_development_drops_secure(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "email": unique_email(),
            "password": STRONG_PASSWORD,
            "name": "Dev",
            "sessionMode": "cookie",
        },
        headers=FROM_PAGE,
    )
    cookie = _set_cookie(response, "gameportal-refresh")
    assert "secure" not in cookie and "httponly" in cookie
    refreshed = await client.post(
        REFRESH, headers={**FROM_PAGE, "Cookie": f"gameportal-refresh={cookie['value']}"}
    )
    assert refreshed.status_code == 200, refreshed.text


def test_production_refuses_a_cookie_without_secure() -> None:
    with pytest.raises(ValidationError, match="GAMEPORTAL_COOKIE_SECURE"):
        Settings(
            env="production",
            secret_key="s" * 40,
            smtp_host="mail.example.com",
            cookie_secure=False,
        )


# --- refresh and logout by the cookie ---------------------------------------------------------


async def test_refresh_by_the_cookie_rotates_it(client: httpx.AsyncClient) -> None:
    _, token = await _browser_login(client)
    response = await client.post(REFRESH, headers=_with_cookie(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refreshToken"] is None
    assert (await client.get("/api/v1/me", headers=bearer(body))).status_code == 200
    rotated = _set_cookie(response)
    assert rotated["value"] != token
    assert rotated["path"] == "/api/v1/auth" and rotated["samesite"] == "Strict"
    again = await client.post(REFRESH, headers=_with_cookie(rotated["value"]))
    assert again.status_code == 200


async def test_a_dead_cookie_is_401_and_cleared(client: httpx.AsyncClient) -> None:
    response = await client.post(REFRESH, headers=_with_cookie("not-a-token"))
    assert response.status_code == 401
    assert response.json()["type"].endswith("invalid-refresh-token")
    assert _set_cookie(response)["max-age"] == "0"


async def test_refresh_with_neither_body_nor_cookie_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(REFRESH, headers=FROM_PAGE)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    # A body, when sent, is the bearer form and must hold the token.
    assert (await client.post(REFRESH, json={}, headers=FROM_PAGE)).status_code == 422


async def test_two_tabs_refreshing_with_one_cookie_both_stay_logged_in(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    data, token = await _browser_login(client)
    tab_a = await client.post(REFRESH, headers=_with_cookie(token))
    tab_b = await client.post(REFRESH, headers=_with_cookie(token))  # sent before A's answer
    assert (tab_a.status_code, tab_b.status_code) == (200, 200)
    assert _set_cookie(tab_a)["value"] == _set_cookie(tab_b)["value"]
    assert await _live(db, data["session"]["id"])


async def test_logout_by_the_cookie_ends_the_session_and_clears_it(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # After a reload the page has no access token, only the cookie.
    data, token = await _browser_login(client)
    response = await client.post(LOGOUT, headers=_with_cookie(token))
    assert response.status_code == 204
    cleared = _set_cookie(response)
    assert cleared["value"] == "" and cleared["max-age"] == "0"
    assert cleared["path"] == "/api/v1/auth"
    assert not await _live(db, data["session"]["id"])
    assert (await client.get("/api/v1/me", headers=bearer(data))).status_code == 401
    assert (await client.post(REFRESH, headers=_with_cookie(token))).status_code == 401


async def test_logout_with_the_access_token_clears_the_cookie_too(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    data, token = await _browser_login(client)
    response = await client.post(LOGOUT, headers={**bearer(data), "Cookie": f"{COOKIE}={token}"})
    assert response.status_code == 204
    assert _set_cookie(response)["max-age"] == "0"
    assert not await _live(db, data["session"]["id"])


async def test_logout_with_a_cookie_another_tab_just_rotated_ends_the_session(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # Tab A refreshes while tab B logs out with the cookie both had: the session must end,
    # not live on with A's new cookie.
    data, token = await _browser_login(client)
    rotated = await client.post(REFRESH, headers=_with_cookie(token))
    assert rotated.status_code == 200
    assert (await client.post(LOGOUT, headers=_with_cookie(token))).status_code == 204
    assert not await _live(db, data["session"]["id"])
    newest = _set_cookie(rotated)["value"]
    assert (await client.post(REFRESH, headers=_with_cookie(newest))).status_code == 401


async def test_logout_with_neither_token_nor_cookie_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.post(LOGOUT, headers=FROM_PAGE)).status_code == 401


# --- CSRF ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": FRONT_END},  # no X-CSRF: what a cross-site form would send
        {"Origin": "https://evil.example.net", "X-CSRF": "1"},
        {"Origin": "null", "X-CSRF": "1"},  # sandboxed frames, file: pages
        {"X-CSRF": "1"},  # neither Origin nor Referer
        {"Referer": "https://evil.example.net/page", "X-CSRF": "1"},
        {"Origin": "https://play.example.com.evil.net", "X-CSRF": "1"},
        {"Origin": "http://play.example.com", "X-CSRF": "1"},  # another scheme
    ],
    ids=["no-header", "other-origin", "null", "no-origin", "other-referer", "suffix", "http"],
)
async def test_cookie_requests_from_elsewhere_are_refused(
    client: httpx.AsyncClient, db: asyncpg.Pool, headers: dict[str, str]
) -> None:
    data, token = await _browser_login(client)
    _refused(await client.post(REFRESH, headers=_with_cookie(token, headers)))
    _refused(await client.post(LOGOUT, headers=_with_cookie(token, headers)))
    # Nothing happened: the cookie still refreshes, the session is live.
    assert await _live(db, data["session"]["id"])
    assert (await client.post(REFRESH, headers=_with_cookie(token))).status_code == 200


async def test_a_cross_site_form_post_cannot_use_the_cookie(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # <form method=post action=".../auth/refresh"> on another site: no custom header is
    # possible; with fields the body is not the API's JSON, without any it is refused.
    data, token = await _browser_login(client)
    form = {
        "Origin": "https://evil.example.net",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    empty = await client.post(REFRESH, headers=_with_cookie(token, form))
    _refused(empty)
    filled = await client.post(REFRESH, content=b"a=b", headers=_with_cookie(token, form))
    assert filled.status_code == 422
    assert "set-cookie" not in filled.headers
    _refused(await client.post(LOGOUT, headers=_with_cookie(token, form)))
    assert await _live(db, data["session"]["id"])


async def test_the_apis_own_origin_and_a_referer_are_taken(client: httpx.AsyncClient) -> None:
    _, token = await _browser_login(client)
    own = await client.post(
        REFRESH, headers=_with_cookie(token, {"Origin": "http://testserver", "X-CSRF": "1"})
    )
    assert own.status_code == 200, own.text
    token = _set_cookie(own)["value"]
    by_referer = await client.post(
        REFRESH,
        headers=_with_cookie(token, {"Referer": f"{FRONT_END}/account?tab=2", "X-CSRF": "1"}),
    )
    assert by_referer.status_code == 200, by_referer.text


@pytest.mark.parametrize(
    "headers",
    [{"Origin": FRONT_END}, {"Origin": "https://evil.example.net", "X-CSRF": "1"}],
    ids=["no-header", "other-origin"],
)
async def test_cookie_mode_login_is_refused_from_elsewhere(
    client: httpx.AsyncClient, db: asyncpg.Pool, headers: dict[str, str]
) -> None:
    # Login CSRF: another site must not log the browser into an account of its choosing.
    data = await register(client)
    body = {"email": data["user"]["email"], "password": STRONG_PASSWORD, "sessionMode": "cookie"}
    response = await client.post("/api/v1/auth/login", json=body, headers=headers)
    _refused(response)
    assert "set-cookie" not in response.headers
    assert await db.fetchval("SELECT count(*) FROM sessions") == 1  # no session opened
    register_body = {**body, "email": unique_email(), "name": "X"}
    _refused(await client.post("/api/v1/auth/register", json=register_body, headers=headers))


async def test_a_body_token_needs_no_csrf_header(client: httpx.AsyncClient) -> None:
    # Not ambient: a page (or a game client) that holds the token shows it was sent on purpose.
    data = await register(client)
    response = await client.post(
        REFRESH,
        json={"refreshToken": data["refreshToken"]},
        headers={"Origin": "https://elsewhere.example.org"},
    )
    assert response.status_code == 200


# --- CORS ------------------------------------------------------------------------------------


async def test_preflight_allows_the_configured_origin_with_credentials(
    client: httpx.AsyncClient,
) -> None:
    preflight = await client.options(
        REFRESH,
        headers={
            "Origin": FRONT_END,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-csrf",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == FRONT_END
    assert preflight.headers["access-control-allow-credentials"] == "true"
    allowed = {
        h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")
    }
    assert {"if-match", "if-none-match", "last-event-id", "x-csrf", "authorization"} <= allowed
    edit = await client.options(
        "/api/v1/content/00000000-0000-0000-0000-000000000000",
        headers={
            "Origin": FRONT_END,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, content-type, if-match",
        },
    )
    assert edit.status_code == 200
    stream = await client.options(
        "/api/v1/me/notifications/stream",
        headers={
            "Origin": FRONT_END,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, last-event-id",
        },
    )
    assert stream.status_code == 200


async def test_answers_to_the_configured_origin_expose_the_headers_it_needs(
    client: httpx.AsyncClient,
) -> None:
    _, token = await _browser_login(client)
    response = await client.post(REFRESH, headers=_with_cookie(token))
    assert response.headers["access-control-allow-origin"] == FRONT_END
    assert response.headers["access-control-allow-credentials"] == "true"
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"etag", "location", "retry-after"} <= exposed


async def test_other_origins_get_no_cors(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        REFRESH,
        headers={
            "Origin": "https://evil.example.net",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-csrf",
        },
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    simple = await client.get("/healthz", headers={"Origin": "https://evil.example.net"})
    assert "access-control-allow-origin" not in simple.headers


@pytest.mark.parametrize("settings_overrides", [{"cors_origins": ["*"]}])
async def test_any_origin_reads_without_credentials(client: httpx.AsyncClient) -> None:
    # `*`: any page may call the API with bearer tokens; none may use a player's cookie.
    simple = await client.get("/healthz", headers={"Origin": "https://anyone.example"})
    assert simple.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in simple.headers
    preflight = await client.options(
        REFRESH,
        headers={
            "Origin": "https://anyone.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-csrf",
        },
    )
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in preflight.headers
    data = await register(client)
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": data["user"]["email"], "password": STRONG_PASSWORD, "sessionMode": "cookie"},
        headers={"Origin": "https://anyone.example", "X-CSRF": "1"},
    )
    _refused(login)


@pytest.mark.parametrize("settings_overrides", [{}])
async def test_without_configured_origins_only_the_apis_own_pages_use_the_cookie(
    client: httpx.AsyncClient,
) -> None:
    data = await register(client)
    body = {"email": data["user"]["email"], "password": STRONG_PASSWORD, "sessionMode": "cookie"}
    _refused(await client.post("/api/v1/auth/login", json=body, headers=FROM_PAGE))
    own = await client.post(
        "/api/v1/auth/login", json=body, headers={"Origin": "http://testserver", "X-CSRF": "1"}
    )
    assert own.status_code == 200, own.text
    assert "access-control-allow-origin" not in own.headers
