"""The console's sign-in, overview and players pages in Chromium, against a live server:
an admin signs in, reads the overview, finds a player, makes them an editor and blocks
another (whose live token then fails); a player cannot sign in; a marketer sees no player
admin; a form posted without its CSRF token is refused. A screenshot of each page is
kept (tests/artifacts/browser)."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.browser.conftest import LiveServer, NewContext, Screenshot, page_errors
from tests.factories import STRONG_PASSWORD, bearer, grant_roles, register, unique_email

VIEWPORT = {"width": 1280, "height": 900}


async def account(
    api: httpx.AsyncClient, db: asyncpg.Pool, name: str, *roles: str, email: str | None = None
) -> dict[str, Any]:
    auth = await register(api, name=name, email=email)
    if roles:
        await grant_roles(db, auth["user"]["id"], *roles)
    return auth


async def sign_in(context: Any, server: LiveServer, email: str) -> Any:
    page = await context.new_page()
    await page.goto(f"{server.url}/console")  # not signed in: sent to the sign-in page
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password").fill(STRONG_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    return page


def nav(page: Any) -> Any:
    return page.get_by_role("navigation", name="Console pages")


async def test_an_admin_reads_the_overview_grants_a_role_and_blocks_a_player(
    live_server: LiveServer,
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    new_context: NewContext,
    screenshot: Screenshot,
) -> None:
    admin = await account(api, db, "Ada Admin", "admin")
    grace = await account(api, db, "Grace Hopper", email=unique_email("grace"))
    mallory = await account(api, db, "Mallory", email=unique_email("mallory"))
    failed = {"email": mallory["user"]["email"], "password": "not-it"}
    assert (await api.post("/api/v1/auth/login", json=failed)).status_code == 401

    context = await new_context(viewport=VIEWPORT)
    page = await context.new_page()
    await page.goto(f"{live_server.url}/console")
    await page.get_by_role("heading", name="Sign in").wait_for()
    await screenshot(page, "sign-in")
    await page.close()
    page = await sign_in(context, live_server, admin["user"]["email"])
    await page.wait_for_url(f"{live_server.url}/console")
    await page.get_by_role("heading", name="Overview").wait_for()
    assert await page.locator(".stat", has_text="Failed sign-ins").locator("dd").inner_text() == "1"
    await screenshot(page, "overview")

    await nav(page).get_by_role("link", name="Players").click()
    await page.get_by_role("heading", name="Players").wait_for()
    await page.get_by_label("Email starts with").fill("grace")
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("link", name=grace["user"]["email"]).click()
    await page.get_by_role("heading", name="Grace Hopper").wait_for()
    await page.get_by_label("Editor").check()
    await page.get_by_role("button", name="Save roles").click()
    await page.get_by_role("status").filter(has_text="Roles saved: Editor.").wait_for()
    await screenshot(page, "player")
    me = await api.get("/api/v1/me", headers=bearer(grace))
    assert me.json()["roles"] == ["user", "editor"]

    await page.goto(f"{live_server.url}/console/players?q=mallory")
    await page.get_by_role("link", name=mallory["user"]["email"]).click()
    page.once("dialog", lambda dialog: dialog.accept())  # "Block …? Every session ends"
    await page.get_by_role("button", name="Block", exact=True).click()
    await page.get_by_role("status").filter(has_text="Blocked.").wait_for()
    assert await page.get_by_role("button", name="Unblock").is_visible()
    await screenshot(page, "player-blocked")
    assert (await api.get("/api/v1/me", headers=bearer(mallory))).status_code == 401
    assert page_errors(page) == []


async def test_a_player_cannot_sign_in(
    live_server: LiveServer,
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    new_context: NewContext,
    screenshot: Screenshot,
) -> None:
    player = await account(api, db, "Pat Player")
    page = await sign_in(await new_context(viewport=VIEWPORT), live_server, player["user"]["email"])
    await page.get_by_role("alert").filter(has_text="no console access").wait_for()
    assert page.url.endswith("/console/login")
    await screenshot(page, "refused")
    await page.goto(f"{live_server.url}/console")
    await page.get_by_role("heading", name="Sign in").wait_for()


async def test_a_marketer_sees_no_player_admin(
    live_server: LiveServer,
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    new_context: NewContext,
    screenshot: Screenshot,
) -> None:
    marketer = await account(api, db, "Max Marketer", "marketer")
    page = await sign_in(
        await new_context(viewport=VIEWPORT), live_server, marketer["user"]["email"]
    )
    await page.get_by_role("heading", name="Overview").wait_for()
    assert await nav(page).get_by_role("link", name="Players").count() == 0
    assert await page.get_by_role("heading", name="Latest security events").count() == 0
    response = await page.goto(f"{live_server.url}/console/players")
    assert response.status == 403
    await page.get_by_text("This page is for the Admin role.").wait_for()
    await screenshot(page, "forbidden")


async def test_a_form_posted_without_its_csrf_token_is_refused(
    live_server: LiveServer,
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    new_context: NewContext,
) -> None:
    admin = await account(api, db, "Ada Admin", "admin")
    player = await account(api, db, "Pat Player")
    page = await sign_in(await new_context(viewport=VIEWPORT), live_server, admin["user"]["email"])
    await page.wait_for_url(f"{live_server.url}/console")
    await page.goto(f"{live_server.url}/console/players/{player['user']['id']}")
    block = page.locator("form", has=page.get_by_role("button", name="Block", exact=True))
    await block.locator("input[name=csrf_token]").evaluate("input => input.remove()")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Block", exact=True).click()
    await page.get_by_role("heading", name="This form could not be accepted").wait_for()
    blocked = await db.fetchval(
        "SELECT is_blocked FROM users WHERE id = $1::uuid", player["user"]["id"]
    )
    assert blocked is False
