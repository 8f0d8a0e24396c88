"""Browser session mode in Chromium, from the player demo served on another origin: the
refresh token lives in an HttpOnly cookie the page never sees, a reload keeps the player
logged in, two tabs refreshing at the same moment both stay logged in, logging out in
one tab ends the other's live stream, and a form on a page cannot use the cookie."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from tests.browser.conftest import LiveServer, NewContext, Screenshot, page_errors
from tests.browser.demo import log_in_in, open_demo, register_in, serve_demo, signed_in, signed_out
from tests.browser.site import StaticSite, wait_until

COOKIE = "__Secure-gameportal-refresh"


async def test_register_reload_log_out_and_log_in_from_another_origin(
    live_server: LiveServer,
    second_origin: StaticSite,
    new_context: NewContext,
    screenshot: Screenshot,
) -> None:
    url = serve_demo(second_origin, live_server.url)
    context = await new_context()
    page = await open_demo(context, url)
    await screenshot(page, "signed-out")
    email = await register_in(page, name="Ada")
    await page.locator("#message", has_text="Welcome").wait_for()

    # The refresh token is a cookie scripts cannot read, scoped to the auth routes; the
    # page keeps nothing but the device token.
    [cookie] = [c for c in await context.cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/api/v1/auth" and cookie["domain"] == "127.0.0.1"
    assert await page.evaluate("document.cookie") == ""
    stored = await page.evaluate("JSON.stringify({...localStorage, ...sessionStorage})")
    assert "gameportal.deviceToken" in stored and cookie["value"] not in stored
    await screenshot(page, "registered")

    # A reload has no access token: the cookie gets a new one, and the page goes on.
    await page.reload()
    await signed_in(page, email)
    assert await page.locator("#sessions li.current").count() == 1

    await page.click("#logout")
    await signed_out(page)
    assert [c for c in await context.cookies() if c["name"] == COOKIE] == []
    await page.reload()
    await signed_out(page)

    await log_in_in(page, email, "not-the-password-1")
    await page.locator("#message.error").wait_for()
    await log_in_in(page, email)
    await signed_in(page, email)
    # Refusals show in the console as failed loads (the start-up refresh, the wrong
    # password); nothing else: no uncaught exception, no CSP violation.
    assert [e for e in page_errors(page) if "Failed to load resource" not in e] == []


async def _players_session(db: asyncpg.Pool, email: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT s.id, s.revoked_at FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE u.email = $1",
        email,
    )


async def test_two_tabs_refreshing_at_the_same_moment_both_stay_logged_in(
    live_server: LiveServer,
    second_origin: StaticSite,
    new_context: NewContext,
    db: asyncpg.Pool,
) -> None:
    url = serve_demo(second_origin, live_server.url)
    context = await new_context()
    first = await open_demo(context, url)
    email = await register_in(first)
    second = await open_demo(context, url)  # the same browser: it shares the cookie
    await signed_in(second, email)

    # Both tabs send the same cookie at the same instant: one rotates it, the other
    # arrives with the token just spent, within the grace window.
    fire = """at => import('./api.js').then(
        api => new Promise(go => setTimeout(go, at - Date.now())).then(api.refresh))"""
    at = await first.evaluate("Date.now() + 300")
    results = await asyncio.gather(first.evaluate(fire, at), second.evaluate(fire, at))
    assert results == [True, True]

    for tab in (first, second):  # each tab's new access token works, and so does the cookie
        me = await tab.evaluate("import('./api.js').then(api => api.call('/me'))")
        assert me["email"] == email
        await tab.reload()
        await signed_in(tab, email)
    events = await db.fetchval(
        "SELECT count(*) FROM security_events WHERE kind = 'refresh_token_reuse'"
    )
    assert events == 0
    assert [r["revoked_at"] for r in await _players_session(db, email)] == [None]


async def test_logging_out_in_one_tab_closes_the_live_stream_of_the_other(
    live_server: LiveServer,
    second_origin: StaticSite,
    new_context: NewContext,
    screenshot: Screenshot,
) -> None:
    url = serve_demo(second_origin, live_server.url)
    context = await new_context()
    first = await open_demo(context, url)
    email = await register_in(first)
    second = await open_demo(context, url)
    await signed_in(second, email)
    hub = live_server.app.state.inbox_hub  # type: ignore[union-attr]
    await wait_until(lambda: hub.open_streams == 2)

    await first.click("#logout")
    await signed_out(first)
    ended = time.monotonic()
    await wait_until(lambda: hub.open_streams == 0, within=1.0)
    assert time.monotonic() - ended < 1.0
    # The other tab's reconnection finds the session over: it says so, and shows the login.
    await signed_out(second)
    await second.locator("#message", has_text="session has ended").wait_for()
    assert await second.locator("#stream-status").text_content() == "closed"
    await screenshot(second, "other-tab")


def _form_page(action: str) -> str:
    """A page that posts a form to `action` when its button is clicked: what any site
    can put in front of a player (no script needed, and none could add a header to it)."""
    return (
        "<!doctype html><html lang=en><title>Win a prize</title>"
        f'<form method="post" action="{action}"><button id=go>Claim</button></form></html>'
    )


async def test_a_form_post_to_a_cookie_route_from_a_page_is_refused(
    live_server: LiveServer,
    second_origin: StaticSite,
    new_context: NewContext,
    db: asyncpg.Pool,
) -> None:
    url = serve_demo(second_origin, live_server.url)
    context = await new_context()
    player = await open_demo(context, url)
    email = await register_in(player)

    for route in ("/api/v1/auth/logout", "/api/v1/auth/refresh"):
        second_origin.add("/prize.html", _form_page(live_server.url + route))
        # From a listed origin of the same site, the browser sends the cookie, but the
        # form cannot add X-CSRF: 403. From another site, SameSite=Strict keeps the
        # cookie home: nothing authenticates the request (401).
        for origin, refusal in ((second_origin.url, 403), (second_origin.cross_site_url, 401)):
            attacker = await context.new_page()
            await attacker.goto(f"{origin}/prize.html")
            async with attacker.expect_response(live_server.url + route) as answer:
                await attacker.click("#go")
            response = await answer.value
            sent = await response.request.all_headers()
            assert (COOKIE in sent.get("cookie", "")) == (origin == second_origin.url)
            assert response.status == refusal, (origin, route, await response.text())
            if refusal == 403:
                assert (await response.json())["type"].endswith("cross-site-request")
            await attacker.close()

    # The player is still logged in, in the same session.
    assert [r["revoked_at"] for r in await _players_session(db, email)] == [None]
    await player.reload()
    await signed_in(player, email)
