"""Links in mail, completed in Chromium: the reset link a real SMTP server (aiosmtpd)
received opens gameportal's page, the new password is set there and the old one stops
working in the player demo; a marketing mail's unsubscribe link (the visible one, and
the List-Unsubscribe one opened in a browser) turns that mail off."""

from __future__ import annotations

import re

import asyncpg
import httpx

from tests.browser.conftest import LiveServer, NewContext, Screenshot, page_errors
from tests.browser.demo import log_in_in, open_demo, serve_demo, signed_in
from tests.browser.site import Mailbox, StaticSite, link_in, wait_until
from tests.factories import bearer, register, user_with_roles

NEW_PASSWORD = "amber-lantern-meadow-57"


async def test_a_reset_link_from_a_mail_is_completed_in_the_browser(
    live_server: LiveServer,
    queue_worker: None,
    mailbox: Mailbox,
    second_origin: StaticSite,
    new_context: NewContext,
    api: httpx.AsyncClient,
    screenshot: Screenshot,
) -> None:
    player = await register(api)
    email, old_password = player["user"]["email"], player["password"]
    asked = await api.post("/api/v1/auth/password-reset/request", json={"email": email})
    assert asked.status_code == 202, asked.text
    [mail] = await wait_until(lambda: [m for m in mailbox.find(email) if "reset" in m.as_string()])
    link = link_in(mail, "/reset-password")
    assert link.startswith(f"{live_server.url}/reset-password?token=")

    context = await new_context()
    page = await context.new_page()
    await page.goto(link)
    await page.get_by_label("New password").fill(NEW_PASSWORD)
    await page.get_by_label("Confirm password").fill(NEW_PASSWORD)
    await screenshot(page, "form")
    await page.click("#reset-password-submit")
    await page.locator("#result").wait_for()
    await screenshot(page, "done")
    assert page_errors(page) == []

    # The link is spent; the old password no longer logs in, the new one does.
    await page.goto(link)
    assert await page.locator("h1").inner_text() != "Choose a new password"
    demo = await open_demo(context, serve_demo(second_origin, live_server.url))
    await log_in_in(demo, email, old_password)
    await demo.locator("#message.error").wait_for()
    await log_in_in(demo, email, NEW_PASSWORD)
    await signed_in(demo, email)


async def test_an_unsubscribe_link_from_a_mail_is_completed_in_the_browser(
    live_server: LiveServer,
    queue_worker: None,
    mailbox: Mailbox,
    new_context: NewContext,
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    screenshot: Screenshot,
) -> None:
    admin = await user_with_roles(api, db, "admin")
    player = await register(api)
    email = player["user"]["email"]
    sent = await api.post(
        "/api/v1/admin/notifications",
        headers=bearer(admin),
        json={
            "type": "EMAIL",
            "recipientUserId": player["user"]["id"],
            "payload": {
                "subject": "Double XP weekend",
                "body": "Play now.",
                "category": "marketing",
            },
        },
    )
    assert sent.status_code == 201, sent.text
    [mail] = await wait_until(lambda: mailbox.find(email, "Double XP"))
    visible = link_in(mail, "/unsubscribe")
    assert visible.startswith(f"{live_server.url}/unsubscribe?token=")
    found = re.search(r"<(https?://[^>]+)>", str(mail["List-Unsubscribe"]))
    assert found, mail["List-Unsubscribe"]

    context = await new_context()
    page = await context.new_page()
    # The header's URL, opened in a browser (a mail program that does not POST it),
    # leads to the same page.
    await page.goto(found.group(1))
    assert page.url.startswith(f"{live_server.url}/unsubscribe?token=")
    await page.goto(visible)
    await screenshot(page, "form")
    await page.click("#unsubscribe-submit")
    await page.locator("#result").wait_for()
    await screenshot(page, "done")
    assert page_errors(page) == []

    preferences = await api.get("/api/v1/me/notification-preferences", headers=bearer(player))
    assert preferences.json()["email"] == {"achievements": True, "marketing": False}
