"""The overview: its figures, where they link, and what each role is shown."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.console.conftest import ConsoleClients
from tests.console.support import signed_in, text_of
from tests.factories import register
from tests.web.html import Page, parse


def figures(page: Page) -> dict[str, tuple[str, str | None]]:
    """Each stat's label -> (its number, the link around it if any)."""
    found = {}
    elements = page.elements
    for i, element in enumerate(elements):
        if element.tag != "div" or "stat" not in element.attrs.get("class", "").split():
            continue
        dt = next(j for j in range(i, len(elements)) if elements[j].tag == "dt")
        dd = next(j for j in range(dt, len(elements)) if elements[j].tag == "dd")
        after = elements[dd + 1]
        link = after.attrs.get("href") if after.tag == "a" else None
        found[elements[dt].text.strip()] = (elements[dd].text.split()[0], link)
    return found


async def add_messages(db: asyncpg.Pool, kind: str, status: str, count: int) -> None:
    await db.execute(
        "INSERT INTO messages (id, type, payload, status) "
        "SELECT gen_random_uuid(), $1, '{}', $2 FROM generate_series(1, $3)",
        kind,
        status,
        count,
    )


async def add_content(db: asyncpg.Pool, status: str, count: int) -> None:
    await db.execute(
        "INSERT INTO content (id, type, title, slug, format, content, status) "
        "SELECT gen_random_uuid(), 'NEWS', 'T', $1 || i, 'MARKDOWN', 'x', $2 "
        "FROM generate_series(1, $3) i",
        f"{status.lower()}-{uuid.uuid4().hex[:6]}-",
        status,
        count,
    )


async def test_the_admins_overview_counts_and_links(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await signed_in(browser, client, db, "admin")
    players = [await register(client) for _ in range(3)]
    await db.execute(  # one of them joined long ago
        "UPDATE users SET created_at = now() - interval '3 days' WHERE id = $1",
        uuid.UUID(players[0]["user"]["id"]),
    )
    for _ in range(2):
        wrong = {"email": players[1]["user"]["email"], "password": "wrong"}
        assert (await client.post("/api/v1/auth/login", json=wrong)).status_code == 401
    await db.execute(  # an old failure is not in the last 24 hours
        "INSERT INTO security_events (id, kind, created_at) "
        "VALUES (gen_random_uuid(), 'login_failed', now() - interval '2 days')"
    )
    await db.execute("DELETE FROM messages")  # the registrations' verification mails
    await add_messages(db, "EMAIL", "PENDING", 4)
    await add_messages(db, "EMAIL", "FAILED", 2)
    await add_messages(db, "PUSH", "PROCESSING", 1)
    await add_content(db, "DRAFT", 2)
    await add_content(db, "PUBLISHED", 5)

    response = await browser.get("/console")
    assert response.status_code == 200
    page = parse(response)
    shown = figures(page)
    assert shown["Total"] == ("4", "/console/players")
    assert shown["New today"] == ("3", "/console/players?joined=today")
    # Each registration opened a session, and so did the admin's console sign-in.
    assert shown["Active sessions"] == ("5", None)
    assert shown["Sign-ins"] == ("5", None)
    assert shown["Failed sign-ins"] == ("2", "/console/security-events?kind=login_failed")
    assert shown["Lockouts"] == ("0", "/console/security-events?kind=login_lockout")
    assert shown["Draft"] == ("2", "/console/content?status=DRAFT")
    assert shown["Published"] == ("5", "/console/content?status=PUBLISHED")
    assert shown["Scheduled"] == ("0", "/console/content?status=SCHEDULED")

    rows = {
        row.text.split()[0]: row.text.split()
        for row in page.find("tr")
        if row.text.split() and row.text.split()[0] in ("Email", "Push")
    }
    assert rows["Email"][1:4] == ["4", "0", "2"]
    assert rows["Push"][1:4] == ["0", "1", "0"]
    hrefs = {a.attrs["href"] for a in page.find("a")}
    assert "/console/messages?status=FAILED&type=EMAIL" in hrefs
    assert "/console/messages?status=PENDING&type=EMAIL" in hrefs
    # The latest security events, each naming its account, linked to the player's page.
    text = text_of(response)
    assert "Latest security events" in text and "Failed sign-in" in text
    assert f"/console/players/{players[1]['user']['id']}" in hrefs
    assert admin["user"]["name"] in text


async def test_each_role_sees_what_it_may(
    browsers: ConsoleClients, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    seen = {}
    for role in ("editor", "marketer"):
        browser = browsers()
        await signed_in(browser, client, db, role)
        response = await browser.get("/console")
        assert response.status_code == 200
        page = parse(response)
        seen[role] = (set(figures(page)), {a.attrs["href"] for a in page.find("a")})
    editor_figures, editor_links = seen["editor"]
    assert {"Total", "New today", "Active sessions", "Draft", "Published"} <= editor_figures
    assert "Failed sign-ins" not in editor_figures
    assert "/console/players" not in editor_links  # player totals, not the player list
    assert not any(link.startswith("/console/messages") for link in editor_links)
    marketer_figures, marketer_links = seen["marketer"]
    assert marketer_figures == {"Total", "New today", "Active sessions"}
    assert not any(link.startswith("/console/security-events") for link in marketer_links)


async def test_security_events_page_filters_by_kind_and_pages(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "admin")
    player = await register(client)
    await db.execute(
        "INSERT INTO security_events (id, kind, user_id, created_at) "
        "SELECT gen_random_uuid(), 'login_failed', $1, now() - make_interval(secs => i) "
        "FROM generate_series(1, 55) i",
        uuid.UUID(player["user"]["id"]),
    )
    await db.execute(
        "INSERT INTO security_events (id, kind, user_id) VALUES (gen_random_uuid(), 'blocked', $1)",
        uuid.UUID(player["user"]["id"]),
    )
    blocked = await browser.get("/console/security-events?kind=blocked")
    assert text_of(blocked).count("Blocked") >= 1
    assert "Failed sign-in" not in [
        e.text for e in parse(blocked).find("span") if "badge" in e.attrs.get("class", "")
    ]
    first = await browser.get("/console/security-events?kind=login_failed")
    badges = [e for e in parse(first).find("span") if e.text == "Failed sign-in"]
    assert len(badges) == 50
    [older] = [a for a in parse(first).find("a") if a.text == "Older events"]
    second = await browser.get(older.attrs["href"])
    assert len([e for e in parse(second).find("span") if e.text == "Failed sign-in"]) == 5
