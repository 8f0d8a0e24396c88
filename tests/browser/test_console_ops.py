"""The console's messages, games and live-operations pages in Chromium against a live
server and worker: an admin broadcasts an in-app message from the compose page (its
preview follows the typing) and a player's inbox shows it; the queue figures draw their
chart; a game's achievements, leaderboard and a new API key shown once; a campaign form
refused in place, a campaign previewed and its results charted. No page logs an error
(a script refused by the CSP would), and a screenshot of each is kept."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.browser.conftest import (
    LiveServer,
    NewContext,
    Screenshot,
    page_errors,
    scripts_ran,
)
from tests.factories import STRONG_PASSWORD, bearer, grant_roles, login, register
from tests.liveops.admin_support import new_campaign, new_rule
from tests.liveops.results_support import players
from tests.progress.support import Game, achievement, new_game, report

VIEWPORT = {"width": 1280, "height": 900}


async def staff(api: httpx.AsyncClient, db: asyncpg.Pool, name: str, *roles: str) -> dict[str, Any]:
    auth = await register(api, name=name)
    await grant_roles(db, auth["user"]["id"], *roles)
    return {**auth, **await login(api, auth["user"]["email"])}  # a token with the roles


async def sign_in(context: Any, server: LiveServer, email: str) -> Any:
    page = await context.new_page()
    await page.goto(f"{server.url}/console/login")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password").fill(STRONG_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{server.url}/console")
    return page


async def test_an_admin_broadcasts_an_in_app_message_and_a_player_reads_it(
    live_server: LiveServer,
    queue_worker: None,
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    new_context: NewContext,
    screenshot: Screenshot,
) -> None:
    admin = await staff(api, db, "Ada Admin", "admin")
    player = await register(api, name="Pat Player")
    page = await sign_in(await new_context(viewport=VIEWPORT), live_server, admin["user"]["email"])

    await (
        page.get_by_role("navigation", name="Console pages")
        .get_by_role("link", name="Messages")
        .click()
    )
    await page.get_by_role("heading", name="Messages", level=1).wait_for()
    await page.get_by_role("link", name="Compose a message").click()
    await page.get_by_role("heading", name="Compose a message").wait_for()
    await scripts_ran(page)
    # Only the in-app fields show for an in-app message (scripts on).
    assert await page.get_by_label("Title").is_hidden()
    await page.get_by_label("Every player (broadcast)").check()
    await page.get_by_role("textbox", name="Subject").fill("Season 3 is live")
    await page.get_by_role("textbox", name="Text").fill("New maps.\nNew rewards.")
    # The preview follows the typing (htmx posts the form as it changes).
    preview = page.locator("#preview")
    await preview.get_by_role("heading", name="Season 3 is live").wait_for()
    await screenshot(page, "compose")
    await page.get_by_label("Email", exact=True).check()
    assert await page.get_by_label("Title").is_hidden()
    await page.get_by_label("Use a mail template").check()
    await page.get_by_label("Template", exact=True).select_option("verify_email")
    german = preview.locator("details", has=page.locator("summary", has_text="German"))
    await german.locator("summary").first.click()
    await german.get_by_text("Bestätige deine E-Mail-Adresse").first.wait_for()
    await screenshot(page, "compose-email-languages")
    await page.get_by_label("In-app (the player's inbox)").check()

    await page.get_by_role("button", name="Queue the message").click()
    await (
        page.get_by_role("status")
        .filter(has_text="In-app message to every player queued to go now.")
        .wait_for()
    )
    for _ in range(100):  # the worker delivers it: the page says Sent once reloaded
        await page.reload()
        if await page.locator(".badge", has_text="Sent").count():
            break
        await page.wait_for_timeout(100)
    await page.locator(".badge", has_text="Sent").wait_for()
    await screenshot(page, "message")
    inbox = (await api.get("/api/v1/me/notifications", headers=bearer(player))).json()
    assert [(n["subject"], n["body"], n["broadcast"]) for n in inbox["items"]] == [
        ("Season 3 is live", "New maps.\nNew rewards.", True)
    ]

    await page.get_by_role("link", name="Messages", exact=True).first.click()
    await page.get_by_role("cell", name="Season 3 is live").wait_for()
    await screenshot(page, "queue")
    await page.get_by_role("link", name="Queue figures").click()
    await page.locator(".chart canvas").first.wait_for()  # uPlot drew it
    await screenshot(page, "queue-figures")
    assert page_errors(page) == []


async def test_games_pages(
    live_server: LiveServer,
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    new_context: NewContext,
    screenshot: Screenshot,
) -> None:
    admin = await staff(api, db, "Ada Admin", "admin")
    game = await new_game(api, bearer(admin), title="Orbit")
    await achievement(
        api, bearer(admin), game, key="first-win", title="First win", points=50,
        criteria={"type": "stat", "stat": "wins", "min": 1}, description="Win a match.",
    )  # fmt: skip
    await achievement(api, bearer(admin), game, key="secret", title="Night owl", hidden=True)
    names = ["Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis"]
    for n, name in enumerate(names):
        who = (await register(api, name=name))["user"]["id"]
        assert (
            await report(api, game, who, pointsDelta=100 * (n + 1), stats={"wins": n % 2})
        ).status_code == 200
    page = await sign_in(await new_context(viewport=VIEWPORT), live_server, admin["user"]["email"])

    await (
        page.get_by_role("navigation", name="Console pages")
        .get_by_role("link", name="Games")
        .click()
    )
    await page.get_by_role("link", name=re.compile(r"^Orbit")).click()
    await page.get_by_role("heading", name="Achievements").wait_for()
    await page.get_by_role("row", name="First win").locator("strong", has_text="50.0%").wait_for()
    await screenshot(page, "achievements")
    await page.get_by_role("link", name="New achievement").click()
    await page.get_by_label("Title").fill("Bad key")
    await page.get_by_label("Key").fill("no spaces")
    await page.get_by_label("Unlocked automatically").select_option("stat")
    await page.get_by_role("button", name="Create the achievement").click()
    await page.get_by_role("alert").wait_for()
    await page.locator("#f-key-error").wait_for()
    await screenshot(page, "achievement-refused")

    await page.goto(f"{live_server.url}/console/games/{game.id}/leaderboard")
    await page.get_by_role("textbox", name="Player's neighbourhood").fill(await email_of(db, "Ken"))
    await page.get_by_role("button", name="Show").click()
    await page.get_by_text("is #3 with 450 points").wait_for()  # 400 and a 50-point unlock
    await screenshot(page, "leaderboard")

    await page.get_by_role("link", name="API keys").click()
    await page.get_by_label("What it is for").fill("eu-west servers")
    await page.get_by_role("button", name="Create the key").click()
    key = await page.get_by_label("The new API key").inner_text()
    await screenshot(page, "api-key-once")
    server = Game(id=game.id, key=key.strip(), key_id="")
    first = (await register(api))["user"]["id"]
    assert (await report(api, server, first, pointsDelta=1)).status_code == 200
    # The refused form above answered 422, which Chromium logs; nothing else may be.
    assert [e for e in page_errors(page) if "status of 422" not in e] == []


async def email_of(db: asyncpg.Pool, name: str) -> str:
    email: str = await db.fetchval(
        "SELECT email FROM users WHERE name = $1 ORDER BY id DESC LIMIT 1", name
    )
    return email


async def test_live_operations_pages(
    live_server: LiveServer,
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    new_context: NewContext,
    screenshot: Screenshot,
) -> None:
    marketer = await staff(api, db, "Max Marketer", "marketer")
    control = await new_rule(api, bearer(marketer), name="Full price")
    discount = await new_rule(
        api, bearer(marketer), name="Half price", rule={"weight": 1, "payload": {"price": 4.99}}
    )
    made = await new_campaign(
        api,
        bearer(marketer),
        variants=[control, discount],
        name="Spring promo",
        targetingRules={"countries": ["DE", "AT"], "deviceTypes": ["MOBILE"]},
    )
    campaign_id = uuid.UUID(made["id"])
    control, discount = uuid.UUID(control["id"]), uuid.UUID(discount["id"])
    for day in range(6, -1, -1):
        at = datetime.now(UTC) - timedelta(days=day)
        await players(db, campaign_id, control, 300, 30 + day, assigned_at=at)
        await players(db, campaign_id, discount, 300, 40 + 2 * day, assigned_at=at)
    page = await sign_in(
        await new_context(viewport=VIEWPORT), live_server, marketer["user"]["email"]
    )

    await (
        page.get_by_role("navigation", name="Console pages")
        .get_by_role("link", name="Live operations")
        .click()
    )
    await page.get_by_role("link", name="Spring promo", exact=True).wait_for()
    await screenshot(page, "campaigns")
    await page.get_by_role("link", name="A/B rules").click()
    await page.get_by_role("link", name="Half price").wait_for()
    await screenshot(page, "rules")

    await page.goto(f"{live_server.url}/console/liveops/campaigns/new")
    await page.get_by_label("Name (required)").fill("Summer")
    await page.get_by_label("Countries").fill("US, de")
    await page.get_by_label("IP ranges").fill("10.0.0.1/8")
    await page.get_by_role("button", name="Create the campaign").click()
    await page.locator("#f-countries-error").get_by_text("did you mean DE?").wait_for()
    await page.locator("#f-ip_ranges-error").get_by_text("write 10.0.0.0/8").wait_for()
    await screenshot(page, "campaign-refused")

    await page.goto(f"{live_server.url}/console/liveops/campaigns/{campaign_id}")
    await page.get_by_label("IP address").fill("81.2.69.160")
    await page.get_by_role("button", name="Check").click()
    await page.get_by_text(re.compile("resolved to GB, not one of")).wait_for()
    await screenshot(page, "campaign-preview")
    await page.get_by_role("button", name="Activate Spring promo").click()
    await page.get_by_role("status").filter(has_text="is active").wait_for()

    await page.get_by_role("link", name="Results").click()
    await page.get_by_role("heading", name="Experiment results").wait_for()
    await page.locator(".chart canvas").first.wait_for()
    await screenshot(page, "results")
    # The refused form above answered 422, which Chromium logs; nothing else may be.
    assert [e for e in page_errors(page) if "status of 422" not in e] == []
