"""An axe-core accessibility scan of every page in Chromium: the console's pages as an
admin (and the overview as an editor and a marketer, whose frames differ), its sign-in
and error pages, the account pages a mail's links open (verify-email, reset-password,
unsubscribe, a dead link), the player demo at /play/ and the API docs. A violation of
impact serious or critical fails the test, named by rule, impact, element and page.

axe-core comes bundled in axe-playwright-python (the test extra), injected into each page
by Playwright, so the scan needs no network and the pages keep their CSP."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from gameportal.identity.tokens import hash_refresh_token
from gameportal.notifications.unsubscribe import Unsubscribe, sign
from tests.browser.conftest import LiveServer, NewContext, Screenshot
from tests.browser.test_console_content import banner
from tests.factories import STRONG_PASSWORD, bearer, grant_roles, login, register
from tests.liveops.admin_support import new_campaign, new_rule
from tests.liveops.results_support import players
from tests.progress.support import achievement, new_game, report

VIEWPORT = {"width": 1280, "height": 900}
BLOCKING = ("serious", "critical")


async def staff(api: httpx.AsyncClient, db: asyncpg.Pool, name: str, *roles: str) -> dict[str, Any]:
    auth = await register(api, name=name)
    await grant_roles(db, auth["user"]["id"], *roles)
    return {**auth, **await login(api, auth["user"]["email"])}  # a token with the roles


async def sign_in(page: Any, server: LiveServer, email: str) -> None:
    await page.goto(f"{server.url}/console/login")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password").fill(STRONG_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{server.url}/console")


async def sign_out(page: Any) -> None:
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("heading", name="Sign in").wait_for()


async def account_token(db: asyncpg.Pool, user_id: str, purpose: str) -> str:
    """A live verify-email or password-reset link's token, as the mail would carry it."""
    token = secrets.token_urlsafe(32)
    await db.execute(
        "INSERT INTO account_tokens (token_hash, purpose, user_id, expires_at) "
        "VALUES ($1, $2, $3, now() + interval '30 minutes')",
        hash_refresh_token(token),
        purpose,
        uuid.UUID(user_id),
    )
    return token


class Scanner:
    """Opens pages in one tab and runs axe-core on each, collecting what blocks."""

    def __init__(self, page: Any, server: LiveServer, screenshot: Screenshot) -> None:
        from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]

        self.page, self.server, self.screenshot = page, server, screenshot
        self.axe = Axe()
        self.scanned: list[str] = []
        self.found: list[str] = []

    async def scan(self, path: str, label: str, *, status: int = 200) -> None:
        response = await self.page.goto(f"{self.server.url}{path}")
        assert response is not None and response.status == status, (path, response)
        # htmx fragments and charts load after the page: scan what a person then sees.
        with suppress(Exception):
            await self.page.wait_for_load_state("networkidle", timeout=2_000)
        await self.check(label)

    async def check(self, label: str) -> None:
        results = await self.axe.run(self.page)
        assert results.response["passes"], f"axe-core checked nothing on {label}"
        self.scanned.append(label)
        for violation in results.response["violations"]:
            if violation["impact"] not in BLOCKING:
                continue
            nodes = violation["nodes"]
            targets = ", ".join(" ".join(map(str, n["target"])) for n in nodes[:3])
            more = f" and {len(nodes) - 3} more" if len(nodes) > 3 else ""
            why = (nodes[0].get("failureSummary") or "").strip().splitlines()[-1:]
            self.found.append(
                f"{label} ({self.page.url}): {violation['id']} [{violation['impact']}] "
                f"at {targets}{more}: {' '.join(why).strip()}"
            )
        await self.screenshot(self.page, label)


async def test_every_page_has_no_serious_or_critical_accessibility_violation(
    live_server: LiveServer,
    queue_worker: None,
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    new_context: NewContext,
    screenshot: Screenshot,
) -> None:
    # --- just enough data for every page to show its tables, forms and charts ------------
    admin = await staff(api, db, "Ada Admin", "admin")
    editor = await staff(api, db, "Eddie Editor", "editor")
    marketer = await staff(api, db, "Max Marketer", "marketer")
    player = await register(api, name="Grace Hopper")
    player_id = player["user"]["id"]
    wrong = {"email": player["user"]["email"], "password": "not-it"}
    assert (await api.post("/api/v1/auth/login", json=wrong)).status_code == 401

    uploaded = await api.post(
        "/api/v1/media",
        headers=bearer(editor),
        files={"file": ("dunes.png", banner(640, 360), "image/png")},
    )
    assert uploaded.status_code == 201, uploaded.text
    media_id = uploaded.json()["id"]
    created = await api.post(
        "/api/v1/content",
        headers=bearer(editor),
        json={
            "type": "NEWS",
            "title": "Season 3 is live",
            "locale": "en",
            "content": "New **maps** and a [trailer](https://example.com/trailer).",
            "tags": ["patch notes"],
            "media": [media_id],
        },
    )
    assert created.status_code == 201, created.text
    content_id = created.json()["id"]
    changed = await api.patch(
        f"/api/v1/content/{content_id}",
        headers={**bearer(editor), "If-Match": created.headers["etag"]},
        json={"content": "New **maps**, new rewards."},
    )
    assert changed.status_code == 200, changed.text

    sent = await api.post(
        "/api/v1/admin/notifications",
        headers=bearer(admin),
        json={
            "type": "IN_APP",
            "recipientUserId": player_id,
            "payload": {"subject": "Welcome", "body": "Glad you are here."},
        },
    )
    assert sent.status_code == 201, sent.text
    message_id = sent.json()["id"]

    game = await new_game(api, bearer(admin), title="Orbit")
    first_win = await achievement(
        api, bearer(admin), game, key="first-win", title="First win", points=50,
        criteria={"type": "stat", "stat": "wins", "min": 1}, description="Win a match.",
    )  # fmt: skip
    assert (await report(api, game, player_id, pointsDelta=120, stats={"wins": 1})).status_code == (
        200
    )

    control = await new_rule(api, bearer(marketer), name="Full price")
    discount = await new_rule(
        api, bearer(marketer), name="Half price", rule={"weight": 1, "payload": {"price": 4.99}}
    )
    campaign = await new_campaign(
        api,
        bearer(marketer),
        variants=[control, discount],
        name="Spring promo",
        targetingRules={"countries": ["DE", "AT"]},
    )
    campaign_id = campaign["id"]
    for day in (2, 1, 0):
        at = datetime.now(UTC) - timedelta(days=day)
        for variant, converted in ((control, 30), (discount, 40)):
            await players(
                db, uuid.UUID(campaign_id), uuid.UUID(variant["id"]), 200, converted, assigned_at=at
            )

    for _ in range(200):  # the worker processes the upload (the item's page shows renditions)
        status = (await api.get(f"/api/v1/media/{media_id}", headers=bearer(editor))).json()
        if status["status"] != "PROCESSING":
            break
        await asyncio.sleep(0.05)

    verify = await account_token(db, player_id, "verify_email")
    reset = await account_token(db, player_id, "password_reset")
    secret_key = live_server.settings.secret_key
    unsubscribe = sign(secret_key, Unsubscribe(uuid.UUID(player_id), "EMAIL", "marketing"))

    # --- the scan: one tab, page after page -----------------------------------------------
    context = await new_context(viewport=VIEWPORT)
    page = await context.new_page()
    axe = Scanner(page, live_server, screenshot)

    await axe.scan("/console/login", "console-sign-in")
    await page.get_by_label("Email address").fill(player["user"]["email"])
    await page.get_by_label("Password").fill("not-it")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("alert").wait_for()
    await axe.check("console-sign-in-refused")

    await sign_in(page, live_server, admin["user"]["email"])
    game_id, achievement_id = game.id, first_win["id"]
    console = [
        ("/console", "overview"),
        ("/console/players", "players"),
        (f"/console/players?q={player['user']['email'][:6]}", "players-search"),
        (f"/console/players/{player_id}", "player"),
        ("/console/security-events", "security-events"),
        ("/console/content", "content"),
        ("/console/content/new", "content-new"),
        (f"/console/content/{content_id}", "content-editor"),
        (f"/console/content/{content_id}/revisions", "content-revisions"),
        (f"/console/content/{content_id}/revisions/1", "content-revision"),
        ("/console/media", "media"),
        (f"/console/media/{media_id}", "media-item"),
        ("/console/messages", "messages-queue"),
        ("/console/messages/new", "messages-compose"),
        (f"/console/messages/{message_id}", "message"),
        ("/console/messages/stats", "messages-stats"),
        ("/console/games", "games"),
        (f"/console/games/{game_id}", "achievements"),
        (f"/console/games/{game_id}/achievements/new", "achievement-new"),
        (f"/console/games/{game_id}/achievements/{achievement_id}", "achievement-edit"),
        (f"/console/games/{game_id}/leaderboard", "leaderboard"),
        (f"/console/games/{game_id}/api-keys", "api-keys"),
        ("/console/liveops", "campaigns"),
        ("/console/liveops/rules", "ab-rules"),
        ("/console/liveops/rules/new", "ab-rule-new"),
        (f"/console/liveops/rules/{control['id']}", "ab-rule-edit"),
        ("/console/liveops/campaigns/new", "campaign-new"),
        (f"/console/liveops/campaigns/{campaign_id}/edit", "campaign-edit"),
        (f"/console/liveops/campaigns/{campaign_id}", "campaign-preview"),
        (f"/console/liveops/campaigns/{campaign_id}/results", "campaign-results"),
    ]
    for path, label in console:
        await axe.scan(path, label)
    # Forms refused in place, and a preview's answer.
    await axe.scan("/console/liveops/campaigns/new", "campaign-refused")
    await page.get_by_label("Name (required)").fill("Summer")
    await page.get_by_label("Countries").fill("US, de")
    await page.get_by_role("button", name="Create the campaign").click()
    await page.locator("#f-countries-error").wait_for()
    await axe.check("campaign-refused")
    await axe.scan(f"/console/liveops/campaigns/{campaign_id}", "campaign-preview-answer")
    await page.get_by_label("IP address").fill("81.2.69.160")
    await page.get_by_role("button", name="Check").click()
    await page.get_by_text("resolved to GB").wait_for()
    await axe.check("campaign-preview-answer")
    await axe.scan("/console/no-such-page", "console-not-found", status=404)

    for who, role in ((editor, "editor"), (marketer, "marketer")):
        await sign_out(page)
        await sign_in(page, live_server, who["user"]["email"])
        await axe.scan("/console", f"overview-{role}")
        await axe.scan("/console/players", f"forbidden-{role}", status=403)
    await sign_out(page)

    # --- the pages outside the console -----------------------------------------------------
    await axe.scan(f"/verify-email?token={verify}", "verify-email")
    await axe.scan(f"/reset-password?token={reset}", "reset-password")
    await page.get_by_label("New password").fill("short")
    await page.get_by_label("Confirm password").fill("other")
    await page.locator("#reset-password-submit").click()
    await page.get_by_role("alert").first.wait_for()
    await axe.check("reset-password-refused")
    await axe.scan(f"/unsubscribe?token={unsubscribe}", "unsubscribe")
    await axe.scan("/verify-email?token=no-such-link", "account-link-dead", status=400)
    await axe.scan("/play/", "play")
    await axe.scan("/docs", "docs")
    # ReDoc draws the page from the spec after it loads: scan what a reader then sees.
    await page.goto(f"{live_server.url}/redoc")
    await page.locator(".tag-patch").first.wait_for(timeout=30_000)
    await axe.check("redoc")

    assert axe.found == [], "\n".join(axe.found)
    assert len(axe.scanned) >= 45
