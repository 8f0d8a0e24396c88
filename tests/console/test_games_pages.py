"""The games pages: games, achievements (criteria, hidden, unlock rates) made and changed
through the progress admin service, leaderboards (the top and a player's neighbourhood,
per period), and API keys (admins: a new key shown once, revoke)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from gameportal.progress.leaderboard import period_start
from tests.console.conftest import ConsoleClients
from tests.console.support import post_form, signed_in, text_of
from tests.factories import bearer, register, user_with_roles
from tests.progress.leaderboard_support import bulk_players, bulk_scores, published_game
from tests.progress.support import Game, achievement, new_game, report
from tests.web.html import assert_no_inline_code, parse

T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)


def field_error(response: httpx.Response, name: str) -> str:
    page = parse(response)
    found = page.find("p", id=f"f-{name}-error")
    assert found, f"no error beside {name}: {text_of(response)[:600]}"
    return " ".join(found[0].text.split())


async def test_who_sees_what(
    browsers: ConsoleClients, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin, editor, marketer, anonymous = browsers(), browsers(), browsers(), browsers()
    auth = await signed_in(admin, client, db, "admin")
    await signed_in(editor, client, db, "editor")
    await signed_in(marketer, client, db, "marketer")
    game = await new_game(client, bearer(auth))
    pages = (
        "/console/games",
        f"/console/games/{game.id}",
        f"/console/games/{game.id}/leaderboard",
        f"/console/games/{game.id}/achievements/new",
    )
    for path in pages:
        for who in (admin, editor):
            page = await who.get(path)
            assert page.status_code == 200, (path, page.text[:300])
            assert_no_inline_code(page)
        assert (await marketer.get(path)).status_code == 403, path
        assert (await anonymous.get(path)).status_code == 303, path
    # API keys are an admin's: editors neither see the tab nor open the page.
    keys = f"/console/games/{game.id}/api-keys"
    assert (await admin.get(keys)).status_code == 200
    assert (await editor.get(keys)).status_code == 403
    assert keys not in [a.attrs.get("href") for a in parse(await editor.get(pages[1])).find("a")]
    assert keys in [a.attrs.get("href") for a in parse(await admin.get(pages[1])).find("a")]
    refused = await post_form(editor, keys, {"name": "sneaky"})
    assert refused.status_code == 403
    assert await db.fetchval("SELECT count(*) FROM game_api_keys WHERE name = 'sneaky'") == 0
    listing = text_of(await editor.get("/console/games"))
    assert "Orbit" in listing
    assert (await editor.get(f"/console/games/{uuid.uuid4()}")).status_code == 404


async def test_an_editor_makes_changes_and_deletes_an_achievement(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = bearer(await user_with_roles(client, db, "admin"))
    game = await new_game(client, admin)
    await signed_in(browser, client, db, "editor")

    made = await post_form(
        browser,
        f"/console/games/{game.id}/achievements",
        {
            "title": "Ten wins",
            "key": "ten-wins",
            "description": "Win ten matches.\r\nAny mode.",
            "points": "50",
            "hidden": "1",
            "criteria_type": "stat",
            "criteria_stat": "wins",
            "criteria_min": "10",
        },
    )
    assert made.status_code == 303, text_of(made)[:500]
    assert made.headers["location"] == f"/console/games/{game.id}"
    listed = await browser.get(made.headers["location"])
    shown = text_of(listed)
    assert "Achievement “Ten wins” created." in shown
    assert "Stat wins ≥ 10" in shown and "Hidden" in shown
    stored = (
        await client.get(f"/api/v1/admin/achievements?gameId={game.id}", headers=admin)
    ).json()
    [item] = stored["items"]
    assert item["criteria"] == {"type": "stat", "stat": "wins", "min": 10}
    assert item["hidden"] is True and item["points"] == 50
    assert item["description"] == "Win ten matches.\nAny mode."  # not the form's CR LF

    edit = f"/console/games/{game.id}/achievements/{item['id']}"
    form = parse(await browser.get(edit))
    assert form.one("input", id="f-key").attrs["value"] == "ten-wins"
    assert form.one("option", value="stat").attrs.get("selected") is not None
    saved = await post_form(
        browser,
        edit,
        {"title": "Ten wins", "key": "ten-wins", "points": "75", "criteria_type": ""},
    )
    assert saved.status_code == 303
    after = (await client.get(f"/api/v1/admin/achievements/{item['id']}", headers=admin)).json()
    assert after["criteria"] is None and after["points"] == 75 and after["hidden"] is False
    assert "By the game server" in text_of(await browser.get(saved.headers["location"]))

    deleted = await post_form(browser, f"{edit}/delete")
    assert deleted.status_code == 303
    assert "deleted with its unlocks" in text_of(await browser.get(deleted.headers["location"]))
    assert await db.fetchval("SELECT count(*) FROM achievements") == 0


async def test_refusals_are_shown_beside_their_fields(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    auth = await signed_in(browser, client, db, "admin")
    game = await new_game(client, bearer(auth))
    await achievement(client, bearer(auth), game, key="taken")
    url = f"/console/games/{game.id}/achievements"
    refused = await post_form(
        browser,
        url,
        {
            "title": "",
            "key": "no spaces",
            "points": "-1",
            "criteria_type": "stat",
            "criteria_stat": "",
            "criteria_min": "0",
        },
    )
    assert refused.status_code == 422
    assert field_error(refused, "title")
    assert "pattern" in field_error(refused, "key").lower()
    assert "0" in field_error(refused, "points")
    assert field_error(refused, "criteria_min")
    assert field_error(refused, "criteria_stat")
    page = parse(refused)
    assert page.one("input", id="f-key").attrs["value"] == "no spaces"
    assert page.one("input", id="f-key").attrs.get("aria-invalid") == "true"
    assert page.one("div", role="alert")
    # A key the game already has: the service's refusal, beside the key.
    taken = await post_form(browser, url, {"title": "Again", "key": "taken", "points": "1"})
    assert taken.status_code == 422
    assert "already has an achievement with the key 'taken'" in field_error(taken, "key")
    assert await db.fetchval("SELECT count(*) FROM achievements") == 1


async def test_unlock_rates(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    auth = await signed_in(browser, client, db, "admin")
    game = await new_game(client, bearer(auth))
    await achievement(
        client, bearer(auth), game, key="first", title="First win",
        criteria={"type": "stat", "stat": "wins", "min": 1},
    )  # fmt: skip
    await achievement(client, bearer(auth), game, key="never", title="Never")
    players = [(await register(client))["user"]["id"] for _ in range(4)]
    for n, player in enumerate(players):
        assert (
            await report(client, game, player, stats={"wins": 1 if n < 3 else 0}, pointsDelta=1)
        ).status_code == 200
    page = await browser.get(f"/console/games/{game.id}")
    rows = {r.text.split()[0]: " ".join(r.text.split()) for r in parse(page).find("tr")}
    assert "75.0%" in rows["First"] and "3 of 4" in rows["First"]
    assert "0.0%" in rows["Never"] and "0 of 4" in rows["Never"]
    meters = parse(page).find("meter")
    assert [m.attrs["value"] for m in meters] == ["0.75", "0.0"]
    assert "4 players with progress" in text_of(page)


async def test_api_keys_are_shown_once_and_revoked(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    auth = await signed_in(browser, client, db, "admin")
    game = await new_game(client, bearer(auth))
    player = (await register(client))["user"]["id"]
    url = f"/console/games/{game.id}/api-keys"
    empty = await post_form(browser, url, {"name": ""})
    assert empty.status_code == 422 and field_error(empty, "name")

    created = await post_form(browser, url, {"name": "eu-west servers"})
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    key = parse(created).one("code", **{"aria-label": "The new API key"}).text.strip()
    assert "shown this once" in text_of(created)
    server = Game(id=game.id, key=key, key_id="")
    assert (await report(client, server, player, pointsDelta=1)).status_code == 200

    again = await browser.get(url)
    assert key not in again.text
    row = await db.fetchrow("SELECT id, prefix FROM game_api_keys WHERE name = 'eu-west servers'")
    assert "eu-west servers" in text_of(again) and row["prefix"] in again.text
    revoked = await post_form(browser, f"{url}/{row['id']}/revoke")
    assert revoked.status_code == 303
    assert "Key revoked" in text_of(await browser.get(revoked.headers["location"]))
    assert (await report(client, server, player, pointsDelta=1)).status_code == 401
    twice = await post_form(browser, f"{url}/{row['id']}/revoke")
    assert "already been revoked" in text_of(await browser.get(twice.headers["location"]))


async def test_leaderboards_top_neighbourhood_and_periods(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "editor")
    game = await published_game(db)
    players = await bulk_players(db, 70)
    await bulk_scores(db, game, [(p, 1000 - i, T0) for i, p in enumerate(players)])
    week = period_start("week", datetime.now(UTC).date())
    await bulk_scores(
        db, game, [(players[-1], 5, T0), (players[0], 3, T0)], period="week", start=week
    )
    url = f"/console/games/{game}/leaderboard"

    top = await browser.get(url)
    assert top.status_code == 200
    ranks = [r.text.split()[:2] for r in parse(top).find("tr")[1:]]
    assert ranks[0] == ["1", "Player"] and len(ranks) == 50
    assert "Next ranks" in text_of(top)
    cursor = next(
        a.attrs["href"] for a in parse(top).find("a") if "cursor=" in a.attrs.get("href", "")
    )
    second = await browser.get(cursor)
    assert "Ranks 51–70" in text_of(second)

    email = await db.fetchval("SELECT email FROM users WHERE id = $1", players[30])
    near = await browser.get(url, params={"player": email.upper()})
    highlighted = [r for r in parse(near).find("tr") if r.attrs.get("aria-current") == "true"]
    assert highlighted and all("31" in r.text for r in highlighted)
    assert "is #31 with 970 points" in text_of(near)

    weekly = await browser.get(url, params={"period": "week", "player": str(players[-1])})
    shown = text_of(weekly)
    assert f"from {week}" in shown and "is #1 with 5 points" in shown
    last_week = await browser.get(
        url, params={"period": "week", "at": str(week - timedelta(days=7))}
    )
    assert "No player has points here yet." in text_of(last_week)
    unknown = await browser.get(url, params={"player": "nobody@example.com"})
    assert field_error(unknown, "player") == "No account has this email address or id."
    bad_day = await browser.get(url, params={"period": "month", "at": "yesterday"})
    assert field_error(bad_day, "at")

    draft = await published_game(db, status="DRAFT")
    closed = await browser.get(f"/console/games/{draft}/leaderboard")
    assert "Leaderboards are kept for published games" in text_of(closed)
