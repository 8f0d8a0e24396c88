"""The player demo's inbox in Chromium: the browser's own EventSource, opened with a stream
ticket, shows an admin's IN_APP message within a second, and after the server restarts
it reconnects with a new ticket and `lastEventId` and shows what was sent while it was
down, once. Marking read, preferences and the devices list act on the API."""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
import httpx

from tests.browser.conftest import LiveServer, NewContext, Screenshot, page_errors
from tests.browser.demo import open_demo, register_in, serve_demo, signed_in
from tests.browser.site import StaticSite, wait_until
from tests.factories import bearer, login, user_with_roles

ADMIN_NOTIFICATIONS = "/api/v1/admin/notifications"


async def _user_id(db: asyncpg.Pool, email: str) -> str:
    return str(await db.fetchval("SELECT id FROM users WHERE email = $1", email))


async def _send(http: httpx.AsyncClient, admin: dict[str, Any], to: str, subject: str) -> None:
    response = await http.post(
        ADMIN_NOTIFICATIONS,
        headers=bearer(admin),
        json={
            "type": "IN_APP",
            "recipientUserId": to,
            "payload": {"subject": subject, "body": f"{subject}, in full", "category": "marketing"},
        },
    )
    assert response.status_code == 201, response.text


async def _subjects(page: Any) -> list[str]:
    texts: list[str] = await page.locator("#inbox li strong").all_text_contents()
    return texts


async def test_the_live_inbox_within_a_second_and_across_a_server_restart(
    live_server: LiveServer,
    queue_worker: None,
    second_origin: StaticSite,
    new_context: NewContext,
    api: httpx.AsyncClient,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    screenshot: Screenshot,
) -> None:
    admin = await user_with_roles(api, db, "admin")
    admin = {**admin, **await login(api, admin["user"]["email"])}  # a token with the role
    context = await new_context()
    streams: list[str] = []  # the URLs EventSource opened
    context.on("request", lambda r: streams.append(r.url) if "/stream?" in r.url else None)
    page = await open_demo(context, serve_demo(second_origin, live_server.url))
    email = await register_in(page)
    player = await _user_id(db, email)
    hub = live_server.app.state.inbox_hub  # type: ignore[union-attr]
    await wait_until(lambda: hub.open_streams == 1)
    # Opened with a ticket in the URL, never a token.
    [opened] = streams
    assert "ticket=" in opened and "token" not in opened.lower()

    sent = time.monotonic()
    await _send(api, admin, player, "First")
    await page.locator("#inbox li", has_text="First").wait_for(timeout=1000)
    assert time.monotonic() - sent < 1.0
    await page.locator("#unread", has_text="1 unread").wait_for()  # counted after it shows

    # The server goes down; an admin sends through another instance meanwhile.
    await live_server.stop()
    await page.locator("#stream-status", has_text="reconnecting").wait_for()
    await _send(client, admin, player, "While down")
    await wait_until(lambda: _delivered(db, player, 2))  # in the inbox, announced to nobody
    await live_server.start()
    await page.locator("#inbox li", has_text="While down").wait_for(timeout=20_000)
    await page.locator("#stream-status", has_text="live").wait_for()
    await _send(api, admin, player, "After")
    await page.locator("#inbox li", has_text="After").wait_for(timeout=2000)
    assert await _subjects(page) == ["After", "While down", "First"]  # each once, newest first
    # The reconnections: each with a new ticket, resuming after the last event seen.
    assert len(set(streams)) == len(streams) > 1
    assert all("lastEventId=" in url for url in streams[1:])
    await screenshot(page, "inbox")

    # Marking read, one and then all.
    first = page.locator("#inbox li", has_text="First")
    await first.get_by_role("button", name="Mark read").click()
    await page.locator("#unread", has_text="2 unread").wait_for()
    await page.click("#mark-all-read")
    await page.wait_for_function("() => document.getElementById('unread').textContent === ''")
    assert await page.locator("#inbox li.unread").count() == 0
    count = "import('./api.js').then(api => api.call('/me/notifications/unread-count'))"
    assert await page.evaluate(count) == {"unread": 0}
    assert [e for e in page_errors(page) if "Failed to load resource" not in e] == []


async def _delivered(db: asyncpg.Pool, player: str, count: int) -> bool:
    found = await db.fetchval(
        "SELECT count(*) FROM messages WHERE recipient_user_id = $1 AND status = 'SENT'",
        uuid.UUID(player),
    )
    return bool(found >= count)


async def test_preferences_and_logging_out_other_devices(
    live_server: LiveServer,
    second_origin: StaticSite,
    new_context: NewContext,
    api: httpx.AsyncClient,
    screenshot: Screenshot,
) -> None:
    page = await open_demo(await new_context(), serve_demo(second_origin, live_server.url))
    email = await register_in(page)
    phone = await login(api, email)  # the same player on another device

    await page.uncheck("#pref-email-marketing")
    await page.uncheck("#pref-push-achievements")
    await page.click("#preferences-form button[type=submit]")
    await page.locator("#message", has_text="Preferences saved").wait_for()
    stored = (await api.get("/api/v1/me/notification-preferences", headers=bearer(phone))).json()
    assert stored["email"] == {"achievements": True, "marketing": False}
    assert stored["push"] == {"achievements": False, "marketing": True}
    await page.reload()
    await signed_in(page, email)
    assert not await page.is_checked("#pref-email-marketing")
    assert await page.is_checked("#pref-inApp-marketing")

    await page.reload()  # the devices list as it is now
    await signed_in(page, email)
    assert await page.locator("#sessions li").count() == 2
    await screenshot(page, "devices")
    await page.click("#end-other-sessions")
    await page.locator("#message", has_text="Logged out 1 other device").wait_for()
    await page.locator("#sessions li").nth(1).wait_for(state="detached")
    assert (await api.get("/api/v1/me", headers=bearer(phone))).status_code == 401
    assert (await page.locator("#sessions li").all_text_contents())[0].startswith("This device")
