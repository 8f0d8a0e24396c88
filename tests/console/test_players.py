"""The players pages: search and filters, a player's page, roles, blocking, sessions."""

from __future__ import annotations

import time
import uuid

import asyncpg
import httpx

from gameportal.kit.ids import first_id_at
from tests.console.conftest import ConsoleClients
from tests.console.support import (
    csrf_of,
    post_form,
    sign_in,
    signed_in,
    staff_member,
    text_of,
)
from tests.factories import bearer, login, register, unique_email
from tests.web.html import parse


def emails_listed(response: httpx.Response) -> list[str]:
    page = parse(response)
    return [
        a.text for a in page.find("a") if a.attrs.get("href", "").startswith("/console/players/")
    ]


async def test_search_by_email_prefix_role_status_and_joined_today(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await signed_in(browser, client, db, "admin")
    ada = await register(client, email=unique_email("ada"))
    await register(client, email=unique_email("bob"))
    editor = await staff_member(client, db, "editor")
    blocked = await register(client, email=unique_email("carl"))
    await db.execute(
        "UPDATE users SET is_blocked = true WHERE id = $1", uuid.UUID(blocked["user"]["id"])
    )
    old_email = unique_email("old")
    await db.execute(  # joined yesterday (ids are time-ordered, so its id says so too)
        "INSERT INTO users (id, email, name, password_hash, roles, preferences, created_at) "
        "VALUES ($1, $2, 'Old', 'x', '{user}', '{}', now() - interval '1 day')",
        first_id_at(time.time() - 86_400),
        old_email,
    )

    everyone = await browser.get("/console/players")
    assert everyone.status_code == 200
    assert len(emails_listed(everyone)) == 6
    assert emails_listed(await browser.get("/console/players?q=ADA")) == [ada["user"]["email"]]
    by_role = await browser.get("/console/players?role=editor")
    assert emails_listed(by_role) == [editor["user"]["email"]]
    assert emails_listed(await browser.get("/console/players?status=blocked")) == [
        blocked["user"]["email"]
    ]
    assert blocked["user"]["email"] not in emails_listed(
        await browser.get("/console/players?status=active")
    )
    today = emails_listed(await browser.get("/console/players?joined=today"))
    assert old_email not in today and admin["user"]["email"] in today
    assert len(today) == 5
    nothing = await browser.get("/console/players?q=zzz")
    assert "No player matches these filters" in text_of(nothing)
    # The filter form keeps what was asked, each control labelled.
    page = parse(by_role)
    assert page.one("option", value="editor").attrs.get("selected") is not None
    for field in ("q", "role", "status", "joined"):
        assert page.one("label", for_=field)


async def _many_players(db: asyncpg.Pool, email_prefix: str) -> None:
    """55 players, more than a page, with addresses `<prefix><n>@example.com`."""
    await db.execute(
        "INSERT INTO users (id, email, name, password_hash, roles, preferences) "
        "SELECT gen_random_uuid(), $1 || i || '@example.com', 'Bulk', 'x', '{user}', '{}' "
        "FROM generate_series(1, 55) i",
        email_prefix,
    )


async def test_the_list_pages_by_cursor(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "admin")
    await _many_players(db, "bulk")
    first = await browser.get("/console/players?q=bulk")
    assert len(emails_listed(first)) == 50
    [next_link] = [a for a in parse(first).find("a") if a.text == "Next page"]
    second = await browser.get(next_link.attrs["href"])
    assert len(emails_listed(second)) == 5
    assert not set(emails_listed(first)) & set(emails_listed(second))


async def test_paging_keeps_a_filter_with_reserved_characters(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # The filter went into the page links unencoded: `q=team+a` came back as "team a".
    await signed_in(browser, client, db, "admin")
    await _many_players(db, "team+a")
    first = await browser.get("/console/players", params={"q": "team+a"})
    assert len(emails_listed(first)) == 50
    [next_link] = [a for a in parse(first).find("a") if a.text == "Next page"]
    second = await browser.get(next_link.attrs["href"])
    assert len(emails_listed(second)) == 5


async def test_a_players_page_shows_profile_roles_sessions_and_events(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "admin")
    player = await register(client, name="Ada Lovelace")
    await login(client, player["user"]["email"])  # a second device session
    await client.post(  # a failed login: a security event of the account
        "/api/v1/auth/login", json={"email": player["user"]["email"], "password": "wrong"}
    )
    response = await browser.get(f"/console/players/{player['user']['id']}")
    assert response.status_code == 200
    text = text_of(response)
    assert "Ada Lovelace" in text and player["user"]["email"] in text
    assert "2 active" in text
    assert "Failed sign-in" in text
    page = parse(response)
    assert page.one("input", id="role-editor").attrs.get("checked") is None
    ends = [f for f in page.find("form") if f.attrs["action"].endswith("/end")]
    assert len(ends) == 2
    forms = page.find("form")  # roles, block, end x2, end all, sign out
    assert len(forms) == 6 and all(f.attrs["method"] == "post" for f in forms)
    tokens = page.find("input", name="csrf_token", value=csrf_of(response))
    assert len(tokens) == len(forms)  # one in each


async def test_roles_are_granted_and_revoked_with_a_security_event(
    browsers: ConsoleClients, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    browser = browsers()
    admin = await signed_in(browser, client, db, "admin")
    player = await register(client)
    url = f"/console/players/{player['user']['id']}"
    response = await post_form(browser, f"{url}/roles", {"roles": ["editor", "marketer"]})
    assert response.status_code == 303
    assert response.headers["location"] == url
    shown = await browser.get(url)
    assert "Roles saved: Editor, Marketer." in text_of(shown)
    assert parse(shown).one("input", id="role-editor").attrs.get("checked") is not None
    me = await client.get("/api/v1/me", headers=bearer(player))
    assert me.json()["roles"] == ["user", "editor", "marketer"]  # at once, same token
    event = await db.fetchrow(
        "SELECT detail FROM security_events WHERE kind = 'roles_changed' AND user_id = $1",
        uuid.UUID(player["user"]["id"]),
    )
    assert event["detail"]["by"] == admin["user"]["id"]
    # The new editor can sign in to the console now.
    assert (await sign_in(browsers(), player["user"]["email"])).status_code == 303
    revoked = await post_form(browser, f"{url}/roles", {})
    assert revoked.status_code == 303
    assert "Roles saved: Player only." in text_of(await browser.get(url))
    assert (await client.get("/api/v1/me", headers=bearer(player))).json()["roles"] == ["user"]


async def test_the_last_admin_keeps_the_role_and_cannot_be_blocked(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await signed_in(browser, client, db, "admin")
    url = f"/console/players/{admin['user']['id']}"
    demoted = await post_form(browser, f"{url}/roles", {"roles": ["editor"]})
    assert demoted.status_code == 303
    page = await browser.get(url)
    assert "This is the last active administrator" in text_of(page)
    assert parse(page).one("div", class_="flash flash-error")
    blocked = await post_form(browser, f"{url}/block")
    assert blocked.status_code == 303
    assert "cannot be blocked" in text_of(await browser.get(url))
    roles, is_blocked = await db.fetchrow(
        "SELECT roles, is_blocked FROM users WHERE id = $1", uuid.UUID(admin["user"]["id"])
    )
    assert roles == ["user", "admin"] and not is_blocked
    # With a second admin, the first may step down.
    await staff_member(client, db, "admin")
    assert (await post_form(browser, f"{url}/roles", {"roles": ["editor"]})).status_code == 303
    response = await browser.get(url)  # no longer an admin: this page is not theirs now
    assert response.status_code == 403


async def test_blocking_ends_every_session_and_unblocking_lets_them_back(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "admin")
    player = await register(client)
    url = f"/console/players/{player['user']['id']}"
    response = await post_form(browser, f"{url}/block")
    assert response.status_code == 303
    page = await browser.get(url)
    assert "Blocked. Every session of this account has ended." in text_of(page)
    assert "0 active" in text_of(page)
    assert (await client.get("/api/v1/me", headers=bearer(player))).status_code == 401
    refused = await client.post(
        "/api/v1/auth/login",
        json={"email": player["user"]["email"], "password": player["password"]},
    )
    assert refused.status_code == 403
    assert (await post_form(browser, f"{url}/unblock")).status_code == 303
    assert "Unblocked" in text_of(await browser.get(url))
    await login(client, player["user"]["email"])


async def test_sessions_end_one_at_a_time_or_all_at_once(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "admin")
    player = await register(client)
    second = await login(client, player["user"]["email"])
    third = await login(client, player["user"]["email"])
    url = f"/console/players/{player['user']['id']}"
    one = await post_form(browser, f"{url}/sessions/{second['session']['id']}/end")
    assert one.status_code == 303
    page = await browser.get(url)
    assert "Session ended." in text_of(page) and "2 active" in text_of(page)
    assert (await client.get("/api/v1/me", headers=bearer(second))).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(third))).status_code == 200
    again = await post_form(browser, f"{url}/sessions/{second['session']['id']}/end")
    assert "That session had already ended." in text_of(
        await browser.get(again.headers["location"])
    )
    kinds = await db.fetch(
        "SELECT kind FROM security_events WHERE user_id = $1", uuid.UUID(player["user"]["id"])
    )
    assert [k["kind"] for k in kinds] == ["session_ended_by_admin"]
    everything = await post_form(browser, f"{url}/sessions/end-all")
    assert everything.status_code == 303
    assert "Ended 2 sessions." in text_of(await browser.get(url))
    assert (await client.get("/api/v1/me", headers=bearer(third))).status_code == 401


async def test_actions_without_the_csrf_token_or_from_another_site_change_nothing(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "admin")
    player = await register(client)
    url = f"/console/players/{player['user']['id']}/block"
    token = csrf_of(await browser.get("/console"))
    for response in [
        await post_form(browser, url, csrf=False),
        await post_form(browser, url, token="forged"),
        await post_form(browser, url, token=token, origin="https://evil.example"),
        await post_form(browser, url, token=token, origin=None),
    ]:
        assert response.status_code == 403
        assert "This form could not be accepted" in text_of(response)
    assert not await db.fetchval(
        "SELECT is_blocked FROM users WHERE id = $1", uuid.UUID(player["user"]["id"])
    )
    # The header form (htmx) is accepted like the field.
    by_header = await browser.post(
        url, headers={"X-CSRF-Token": token, "Origin": "https://testserver"}
    )
    assert by_header.status_code == 303


async def test_a_token_belongs_to_its_session(
    browsers: ConsoleClients, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    first, second = browsers(), browsers()
    await signed_in(first, client, db, "admin")
    await signed_in(second, client, db, "admin")
    player = await register(client)
    token_of_first = csrf_of(await first.get("/console"))
    url = f"/console/players/{player['user']['id']}/block"
    assert (await post_form(second, url, token=token_of_first)).status_code == 403


async def test_only_admins_open_the_players_pages(
    browsers: ConsoleClients, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    player = await register(client)
    for role in ("editor", "marketer"):
        browser = browsers()
        await signed_in(browser, client, db, role)
        listing = await browser.get("/console/players")
        assert listing.status_code == 403
        assert "This page is for the Admin role" in text_of(listing)
        assert (await browser.get(f"/console/players/{player['user']['id']}")).status_code == 403
        action = await post_form(browser, f"/console/players/{player['user']['id']}/block")
        assert action.status_code == 403
        nav = [a.text for a in parse(await browser.get("/console")).find("a")]
        assert "Players" not in nav and "Security events" not in nav
    assert not await db.fetchval(
        "SELECT is_blocked FROM users WHERE id = $1", uuid.UUID(player["user"]["id"])
    )


async def test_an_unknown_player_is_a_404_page(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "admin")
    for path in (f"/console/players/{uuid.uuid4()}", "/console/players/not-an-id"):
        response = await browser.get(path)
        assert response.status_code == 404, path
        assert "Page not found" in text_of(response) or "no such player" in text_of(response)
    action = await post_form(browser, f"/console/players/{uuid.uuid4()}/block")
    assert action.status_code == 404
