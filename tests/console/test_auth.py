"""Signing in to the console and out, the session cookie, CSRF and the Origin check."""

from __future__ import annotations

import time
import uuid

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.console.frame import COOKIE_NAME, ConsoleSession, session_cookie_value
from tests.console.conftest import CHROME, ConsoleClients
from tests.console.support import (
    ORIGIN,
    csrf_of,
    post_form,
    sign_in,
    signed_in,
    staff_member,
    text_of,
)
from tests.factories import bearer, register
from tests.web.html import assert_no_inline_code, csp, parse


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"login_max_failures_per_account": 3, "login_lockout_seconds": 60}


async def live_sessions(db: asyncpg.Pool, user_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT id, device_type, user_agent FROM sessions WHERE user_id = $1 "
        "AND revoked_at IS NULL ORDER BY id",
        uuid.UUID(user_id),
    )


async def test_anonymous_visitors_are_sent_to_the_sign_in_page(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/console/players?q=ada")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=/console/players%3Fq%3Dada"
    page = await browser.get(response.headers["location"])
    assert page.status_code == 200
    form = parse(page)
    assert form.one("input", name="next").attrs["value"] == "/console/players?q=ada"
    assert form.one("label", for_="email").text == "Email address"
    assert form.one("label", for_="password").text == "Password"
    assert form.find("main", id="main")
    assert_no_inline_code(page)


@pytest.mark.parametrize("role", ["editor", "marketer", "admin"])
async def test_each_staff_role_signs_in(
    role: str, browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    staff = await staff_member(client, db, role)
    response = await sign_in(browser, staff["user"]["email"])
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console"
    [cookie] = response.headers.get_list("set-cookie")
    assert cookie.startswith(f"{COOKIE_NAME}=")
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/console"):
        assert f"; {attribute}" in cookie
    page = await browser.get("/console")
    assert page.status_code == 200, page.text
    assert staff["user"]["name"] in text_of(page)
    # The console session is a device session of the account, as the API's login opens.
    # (device type OTHER, the browser's user agent).
    sessions = await live_sessions(db, staff["user"]["id"])
    assert [(s["device_type"], s["user_agent"]) for s in sessions][1:] == [("OTHER", CHROME)]


async def test_sign_in_goes_where_the_visitor_was_going_but_never_off_the_console(
    browsers: ConsoleClients, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    staff = await staff_member(client, db, "admin")
    for wanted, landed in [
        ("/console/players?q=a", "/console/players?q=a"),
        ("//evil.example/console", "/console"),
        ("https://evil.example/console", "/console"),
        ("/api/v1/me", "/console"),
    ]:
        response = await sign_in(browsers(), staff["user"]["email"], next=wanted)
        assert response.headers["location"] == landed, wanted


async def test_a_player_is_told_the_account_has_no_console_access(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    player = await register(client)
    response = await sign_in(browser, player["user"]["email"])
    assert response.status_code == 403
    assert "This account has no console access" in text_of(response)
    assert "set-cookie" not in response.headers
    # The password was checked and a session opened, then ended at once.
    assert len(await live_sessions(db, player["user"]["id"])) == 1  # registration's only
    ended = await db.fetchval(
        "SELECT revoked_reason FROM sessions WHERE user_id = $1 AND user_agent = $2",
        uuid.UUID(player["user"]["id"]),
        CHROME,
    )
    assert ended == "logout"
    assert (await browser.get("/console")).status_code == 303


async def test_wrong_passwords_are_refused_counted_and_throttled_like_the_apis(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    staff = await staff_member(client, db, "admin")
    email = staff["user"]["email"]
    wrong = await sign_in(browser, email, "not-the-password")
    assert wrong.status_code == 401
    assert "The email address or password is wrong" in text_of(wrong)
    assert parse(wrong).one("input", name="email").attrs["value"] == email
    unknown = await sign_in(browser, "nobody@example.com", "not-the-password")
    assert unknown.status_code == 401
    assert text_of(unknown).count("wrong") == text_of(wrong).count("wrong")
    events = await db.fetch(
        "SELECT user_id, ip::text FROM security_events WHERE kind = 'login_failed' ORDER BY id"
    )
    assert [(e["user_id"], e["ip"]) for e in events] == [
        (uuid.UUID(staff["user"]["id"]), "8.8.8.8/32"),
        (None, "8.8.8.8/32"),
    ]
    await sign_in(browser, email, "not-the-password")
    await sign_in(browser, email, "not-the-password")  # the third: locked for a minute
    locked = await sign_in(browser, email)  # even the right password, as the API
    assert locked.status_code == 429
    assert "Too many failed attempts" in text_of(locked)
    assert locked.headers["retry-after"]
    api = await client.post("/api/v1/auth/login", json={"email": email, "password": "x"})
    assert api.status_code == 429  # one throttle for both


async def test_blocked_staff_cannot_sign_in(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    staff = await staff_member(client, db, "editor")
    await db.execute(
        "UPDATE users SET is_blocked = true WHERE id = $1", uuid.UUID(staff["user"]["id"])
    )
    response = await sign_in(browser, staff["user"]["email"])
    assert response.status_code == 403
    assert "This account is blocked" in text_of(response)


async def test_a_malformed_sign_in_says_which_field(browser: httpx.AsyncClient) -> None:
    response = await sign_in(browser, "not an address", "")
    assert response.status_code == 422
    page = parse(response)
    assert page.one("input", name="email").attrs["aria-invalid"] == "true"
    assert page.one("input", name="password").attrs["aria-invalid"] == "true"


async def test_sign_in_from_another_site_is_refused(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    staff = await staff_member(client, db, "admin")
    form = {"email": staff["user"]["email"], "password": staff["password"]}
    for headers in ({"Origin": "https://evil.example"}, {}, {"Origin": "null"}):
        response = await browser.post("/console/login", data=form, headers=headers)
        assert response.status_code == 403, headers
        assert "set-cookie" not in response.headers
    by_referer = await browser.post(
        "/console/login", data=form, headers={"Referer": f"{ORIGIN}/console/login"}
    )
    assert by_referer.status_code == 303


async def test_sign_out_ends_the_session(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    staff = await signed_in(browser, client, db, "editor")
    token = csrf_of(await browser.get("/console"))
    refused = await post_form(browser, "/console/logout", csrf=False)
    assert refused.status_code == 403
    assert (await browser.get("/console")).status_code == 200  # still signed in
    response = await post_form(browser, "/console/logout", token=token)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    cleared = [
        c for c in response.headers.get_list("set-cookie") if c.startswith(f"{COOKIE_NAME}=")
    ]
    assert cleared and "Max-Age=0" in cleared[0]
    assert len(await live_sessions(db, staff["user"]["id"])) == 1  # registration's only
    login = await browser.get("/console/login")
    assert "You have signed out" in text_of(login)
    assert (await browser.get("/console")).status_code == 303


async def test_ending_the_session_elsewhere_signs_the_console_out_at_once(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    staff = await signed_in(browser, client, db, "admin")
    assert (await browser.get("/console")).status_code == 200
    ended = await client.delete("/api/v1/me/sessions", headers=bearer(staff))
    assert ended.status_code in (200, 204), ended.text
    assert (await browser.get("/console")).status_code == 303


async def test_losing_every_staff_role_closes_the_console(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    staff = await signed_in(browser, client, db, "editor")
    await db.execute(
        "UPDATE users SET roles = '{user}' WHERE id = $1", uuid.UUID(staff["user"]["id"])
    )
    response = await browser.get("/console")
    assert response.status_code == 403
    assert "No console access" in text_of(response)
    assert not parse(response).find("nav")  # no pages to offer


async def test_a_forged_or_old_cookie_is_not_a_session(
    app: FastAPI, browsers: ConsoleClients, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    first = browsers()
    await signed_in(first, client, db, "admin")
    value = first.cookies[COOKIE_NAME]
    raw, _, mac = value.rpartition(".")
    session_hex, user_hex, issued = raw.split("-")
    other = await staff_member(client, db, "admin")
    forged = f"{session_hex}-{uuid.UUID(other['user']['id']).hex}-{issued}.{mac}"
    old = session_cookie_value(
        app.state.settings,
        ConsoleSession(uuid.UUID(session_hex), uuid.UUID(user_hex), int(time.time()) - 13 * 3600),
    )
    for cookie in (forged, old, value + "x", "garbage"):
        visitor = browsers()
        visitor.cookies.set(COOKIE_NAME, cookie, domain="testserver", path="/console")
        assert (await visitor.get("/console")).status_code == 303, cookie
    assert (await first.get("/console")).status_code == 200


async def test_pages_carry_the_console_csp_and_no_inline_code(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "admin")
    for path in ("/console", "/console/players", "/console/security-events", "/console/nope"):
        response = await browser.get(path)
        assert response.headers["content-type"].startswith("text/html")
        policy = csp(response)
        assert policy["script-src"] == ["'self'"]
        assert policy["connect-src"] == ["'self'"]
        assert policy["default-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"
        assert_no_inline_code(response)
        page = parse(response)
        assert page.one("a", class_="skip-link").attrs["href"] == "#main"
        assert page.one("main").attrs["id"] == "main"
    missing = await browser.get("/console/nope")
    assert missing.status_code == 404
    assert "Page not found" in text_of(missing)


async def test_static_assets_are_served_with_their_types(browser: httpx.AsyncClient) -> None:
    page = await browser.get("/console/login")
    scripts = [s.attrs["src"] for s in parse(page).find("script")]
    styles = [s.attrs["href"] for s in parse(page).find("link", rel="stylesheet")]
    assert len(scripts) == 2 and len(styles) == 1
    for url in scripts + styles:
        response = await browser.get(url)
        assert response.status_code == 200, url
        kind = "text/css" if url.split("?")[0].endswith(".css") else "text/javascript"
        assert response.headers["content-type"].startswith(kind)
