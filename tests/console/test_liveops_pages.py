"""The live-operations pages: A/B rules and campaigns through their forms (the schemas'
and the admin service's refusals beside their fields, a save over someone else's
refused), activate and deactivate, the preview of a request rule by rule, and the
experiment results with the sample-ratio warning and the daily chart."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.console.conftest import ConsoleClients
from tests.console.support import post_form, signed_in, text_of
from tests.factories import bearer, register, user_with_roles
from tests.liveops.admin_support import CAMPAIGNS, RULES, new_campaign, new_rule
from tests.liveops.evaluation_support import DE_IP, GB_IP
from tests.liveops.results_support import campaign as campaign_row
from tests.liveops.results_support import players, rule
from tests.progress.support import new_game
from tests.web.html import assert_no_inline_code, parse


def field_error(response: httpx.Response, name: str) -> str:
    page = parse(response)
    found = page.find("p", id=f"f-{name}-error")
    assert found, f"no error beside {name}: {text_of(response)[:800]}"
    return " ".join(found[0].text.split())


def summary_text(response: httpx.Response) -> str:
    return " ".join(parse(response).one("div", role="alert").text.split())


async def test_who_sees_what(
    browsers: ConsoleClients, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    marketer, admin, editor, anonymous = browsers(), browsers(), browsers(), browsers()
    auth = await signed_in(marketer, client, db, "marketer")
    await signed_in(admin, client, db, "admin")
    await signed_in(editor, client, db, "editor")
    made = await new_campaign(client, bearer(auth))
    pages = (
        "/console/liveops",
        "/console/liveops/rules",
        "/console/liveops/rules/new",
        f"/console/liveops/rules/{made['abVariants'][0]}",
        "/console/liveops/campaigns/new",
        f"/console/liveops/campaigns/{made['id']}",
        f"/console/liveops/campaigns/{made['id']}/edit",
        f"/console/liveops/campaigns/{made['id']}/results",
    )
    for path in pages:
        for who in (marketer, admin):
            page = await who.get(path)
            assert page.status_code == 200, (path, text_of(page)[:300])
            assert_no_inline_code(page)
        assert (await editor.get(path)).status_code == 403, path
        assert (await anonymous.get(path)).status_code == 303, path
    refused = await post_form(editor, f"/console/liveops/campaigns/{made['id']}/activate")
    assert refused.status_code == 403
    assert (await client.get(f"{CAMPAIGNS}/{made['id']}", headers=bearer(auth))).json()[
        "active"
    ] is False
    hrefs = [a.attrs.get("href") for a in parse(await editor.get("/console")).find("a")]
    assert "/console/liveops" not in hrefs
    missing = await marketer.get(f"/console/liveops/campaigns/{uuid.uuid4()}")
    assert missing.status_code == 404


async def test_rules_made_changed_and_refused_in_place(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    auth = await signed_in(browser, client, db, "marketer")
    refused = await post_form(
        browser,
        "/console/liveops/rules",
        {"name": "", "weight": "-1", "payload": "{price: 1}", "start_at": "2030-05-01T00:00",
         "end_at": "2030-04-01T00:00", "active": "1"},
    )  # fmt: skip
    assert refused.status_code == 422
    assert field_error(refused, "name")
    assert "0" in field_error(refused, "weight")
    assert field_error(refused, "payload").startswith("Must be JSON")
    assert parse(refused).one("textarea", id="f-payload").text == "{price: 1}"
    assert "things need fixing" in summary_text(refused)

    made = await post_form(
        browser,
        "/console/liveops/rules",
        {"name": "Half price", "weight": "2", "payload": '{"price": 4.99}', "active": "1"},
    )
    assert made.status_code == 303
    listed = text_of(await browser.get(made.headers["location"]))
    assert "A/B rule “Half price” created" in listed and '{"price":4.99}' in listed
    [row] = (await client.get(RULES, headers=bearer(auth))).json()["items"]
    assert row["rule"] == {"weight": 2.0, "payload": {"price": 4.99}, "contentIds": []}
    assert row["active"] is True

    url = f"/console/liveops/rules/{row['id']}"
    page = parse(await browser.get(url))
    assert page.one("input", id="f-weight").attrs["value"] == "2"
    version = page.find("input", name="version")[0].attrs["value"]
    saved = await post_form(
        browser, url, {"name": "Half price", "weight": "3", "payload": "", "version": version}
    )
    assert saved.status_code == 303
    after = (await client.get(f"{RULES}/{row['id']}", headers=bearer(auth))).json()
    assert after["rule"]["weight"] == 3.0 and after["rule"]["payload"] is None
    # A form opened before that save is refused, and keeps what was typed.
    stale = await post_form(browser, url, {"name": "Stale name", "weight": "1", "version": version})
    assert stale.status_code == 422
    assert "Someone saved this A/B rule after you opened it" in summary_text(stale)
    assert parse(stale).one("input", id="f-name").attrs["value"] == "Stale name"

    deactivated = await post_form(browser, f"{url}/deactivate", {"version": str(after["version"])})
    assert "is inactive: no new players" in text_of(
        await browser.get(deactivated.headers["location"])
    )
    assert (await client.get(f"{RULES}/{row['id']}", headers=bearer(auth))).json()[
        "active"
    ] is False

    # In use: not deleted, and the page says why.
    await new_campaign(client, bearer(auth), variants=[after])
    kept = await post_form(browser, f"{url}/delete")
    assert "Not deleted: campaign" in text_of(await browser.get(kept.headers["location"]))
    lone = await new_rule(client, bearer(auth))
    gone = await post_form(browser, f"/console/liveops/rules/{lone['id']}/delete")
    assert gone.headers["location"] == "/console/liveops/rules"
    assert (await client.get(f"{RULES}/{lone['id']}", headers=bearer(auth))).status_code == 404


async def test_a_campaign_form_shows_targeting_refusals_beside_their_fields(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    auth = await signed_in(browser, client, db, "marketer")
    control = await new_rule(client, bearer(auth), name="Full price")
    other = await new_rule(client, bearer(auth), name="Half price")
    form: dict[str, Any] = {
        "name": "Spring promo",
        "countries": "US, de, XX",
        "ip_ranges": "10.0.0.1/8\n2001:db8::/32",
        "languages": "en, english",
        "segment_min_level": "5",
        "control": "",
        "coverage": "2",
    }
    refused = await post_form(browser, "/console/liveops/campaigns", form)
    assert refused.status_code == 422
    countries = field_error(refused, "countries")
    assert "'de'" in countries and "did you mean DE?" in countries and "'XX'" in countries
    assert "write 10.0.0.0/8" in field_error(refused, "ip_ranges")
    assert "'english'" in field_error(refused, "languages")
    assert field_error(refused, "segment_game").startswith("Choose the game")
    assert field_error(refused, "control") == "Choose the control variant."
    assert "1" in field_error(refused, "coverage")
    page = parse(refused)
    assert page.one("input", id="f-countries").attrs["value"] == "US, de, XX"
    assert page.one("input", id="f-countries").attrs["aria-invalid"] == "true"
    assert "f-countries-error" in page.one("input", id="f-countries").attrs["aria-describedby"]

    # What only the service knows (the segment's game, its bounds) is shown in place too.
    game = await new_game(client, bearer(await user_with_roles(client, db, "admin")))
    refused = await post_form(
        browser,
        "/console/liveops/campaigns",
        {**form, "countries": "US, DE", "ip_ranges": "10.0.0.0/8", "languages": "en",
         "segment_game": game.id, "segment_min_level": "9", "segment_max_level": "3",
         "segment_achievement": "no-such", "control": control["id"], "coverage": "0.5"},
    )  # fmt: skip
    assert refused.status_code == 422
    assert "at least minLevel (9)" in field_error(refused, "segment_max_level")
    assert "no achievement with the key 'no-such'" in field_error(refused, "segment_achievement")
    assert await db.fetchval("SELECT count(*) FROM campaigns") == 0

    made = await post_form(
        browser,
        "/console/liveops/campaigns",
        {**form, "countries": "US, DE", "ip_ranges": "10.0.0.0/8\n2001:DB8::/32",
         "languages": "en", "device_types": ["MOBILE", "DESKTOP"], "segment_game": game.id,
         "segment_min_level": "5", "control": other["id"], "variants": [control["id"]],
         "coverage": "0.5", "exclusion_group": "spring"},
    )  # fmt: skip
    assert made.status_code == 303, text_of(made)[:600]
    campaign_id = made.headers["location"].rsplit("/", 1)[1]
    stored = (await client.get(f"{CAMPAIGNS}/{campaign_id}", headers=bearer(auth))).json()
    assert stored["targetingRules"] == {
        "countries": ["US", "DE"],
        "ipRanges": ["10.0.0.0/8", "2001:db8::/32"],
        "deviceTypes": ["MOBILE", "DESKTOP"],
        "languages": ["en"],
        "segment": {"gameId": game.id, "minLevel": 5, "maxLevel": None, "minPoints": None,
                    "hasAchievement": None},
    }  # fmt: skip
    assert stored["abVariants"] == [other["id"], control["id"]]  # the control first
    assert stored["coverage"] == 0.5 and stored["active"] is False
    shown = text_of(await browser.get(made.headers["location"]))
    assert "Campaign “Spring promo” created, inactive until you activate it." in shown
    assert "Half price control" in shown


async def test_a_campaign_is_changed_activated_and_a_stale_page_is_refused(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    auth = await signed_in(browser, client, db, "marketer")
    made = await new_campaign(
        client, bearer(auth), targetingRules={"countries": ["US"]}, coverage=0.25
    )
    edit = f"/console/liveops/campaigns/{made['id']}/edit"
    page = parse(await browser.get(edit))
    assert page.one("input", id="f-countries").attrs["value"] == "US"
    assert page.one("input", id="f-coverage").attrs["value"] == "0.25"
    fields = {
        e.attrs["name"]: e.attrs.get("value", "")
        for e in page.find("input")
        if e.attrs.get("type") not in ("checkbox", "radio", "hidden") and e.attrs.get("name")
    }
    fields["version"] = page.find("input", name="version")[0].attrs["value"]
    fields["control"] = made["abVariants"][0]
    fields["variants"] = made["abVariants"][1]
    saved = await post_form(
        browser, f"/console/liveops/campaigns/{made['id']}", {**fields, "countries": "",
                                                              "coverage": "1"}
    )  # fmt: skip
    assert saved.status_code == 303, text_of(saved)[:500]
    after = (await client.get(f"{CAMPAIGNS}/{made['id']}", headers=bearer(auth))).json()
    assert after["targetingRules"]["countries"] == [] and after["coverage"] == 1
    assert after["version"] == made["version"] + 1
    stale = await post_form(browser, f"/console/liveops/campaigns/{made['id']}", fields)
    assert stale.status_code == 422
    assert "Someone saved this campaign after you opened it" in summary_text(stale)

    activated = await post_form(
        browser,
        f"/console/liveops/campaigns/{made['id']}/activate",
        {"version": str(after["version"])},
    )
    assert activated.status_code == 303
    assert "is active: it matches and assigns players" in text_of(
        await browser.get(activated.headers["location"])
    )
    now = (await client.get(f"{CAMPAIGNS}/{made['id']}", headers=bearer(auth))).json()
    assert now["active"] is True
    # A button from a page read before that: refused, said so, nothing changed.
    late = await post_form(
        browser,
        f"/console/liveops/campaigns/{made['id']}/deactivate",
        {"version": str(after["version"] - 1)},
    )
    assert "was changed after you opened the page" in text_of(
        await browser.get(late.headers["location"])
    )
    assert (await client.get(f"{CAMPAIGNS}/{made['id']}", headers=bearer(auth))).json()["active"]
    listed = await browser.get("/console/liveops?active=yes")
    assert made["name"] in text_of(listed)
    assert made["name"] not in text_of(await browser.get("/console/liveops?active=no"))


async def test_the_preview_says_whether_a_request_matches_and_why_not(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    auth = await signed_in(browser, client, db, "marketer")
    control = await new_rule(client, bearer(auth), name="Full price")
    made = await new_campaign(
        client,
        bearer(auth),
        variants=[control],
        targetingRules={"countries": ["DE"], "deviceTypes": ["MOBILE"]},
        active=True,
    )
    url = f"/console/liveops/campaigns/{made['id']}/preview"
    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
    )
    no = await post_form(browser, url, {"ip": GB_IP, "user_agent": iphone})
    assert no.status_code == 200
    shown = text_of(no)
    assert "Would not match" in shown and "resolved to GB, not one of DE" in shown
    player = await register(client)
    yes = await post_form(
        browser, url, {"ip": DE_IP, "user_agent": iphone, "player": player["user"]["email"]}
    )
    shown = text_of(yes)
    assert "Would match" in shown and "Full price would be assigned" in shown
    items = [" ".join(li.text.split()) for li in parse(yes).find("li")]
    assert any(i.startswith("Countries Matches") for i in items), items
    assert any(i.startswith("Devices Matches") for i in items)
    # The form keeps the request, and refusals are beside their fields.
    assert parse(yes).one("input", id="f-ip").attrs["value"] == DE_IP
    bad = await post_form(browser, url, {"ip": "300.1.1.1", "player": "nobody@example.com"})
    assert bad.status_code == 422
    assert field_error(bad, "ip") and field_error(bad, "player").startswith("No account")


async def test_results_per_variant_with_the_sample_ratio_warning_and_a_daily_chart(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "marketer")
    control, better = await rule(db, 1, "Control price"), await rule(db, 1, "Discount")
    campaign_id = await campaign_row(db, [control, better], "Spring promo")
    yesterday = datetime.now(UTC) - timedelta(days=1)
    await players(db, campaign_id, control, 1000, 100, assigned_at=yesterday)
    await players(db, campaign_id, control, 1000, 100)
    await players(db, campaign_id, better, 1500, 300, assigned_at=yesterday)
    await players(db, campaign_id, better, 1500, 300)

    page = await browser.get(f"/console/liveops/campaigns/{campaign_id}/results")
    assert page.status_code == 200
    assert_no_inline_code(page)
    shown = text_of(page)
    assert "Sample ratio mismatch" in shown  # 2,000 against 3,000 with equal weights
    assert parse(page).find("div", role="alert")
    rows = {
        " ".join(r.text.split()).split(" ")[0]: " ".join(r.text.split())
        for r in parse(page).find("tr")
    }
    assert "2,000 expected 50.0% 200 10.00%" in rows["Control"]
    discount = rows["Discount"]
    assert "3,000 expected 50.0% 600 20.00%" in discount and "+100.0% p < 0.001" in discount
    assert "100.0%" in discount.split("+100.0%")[1]  # the chance to beat the control
    chart = next(e for e in parse(page).elements if "data-chart" in e.attrs)
    data = json.loads(chart.attrs["data-chart"])
    assert len(data["x"]) == 2 and data["format"] == "percent"
    assert [s["label"] for s in data["series"]] == ["Control price (control)", "Discount"]
    assert data["series"][1]["values"] == [0.2, 0.2]

    # An even split: no warning.
    even = await campaign_row(db, [await rule(db), await rule(db)])
    calm = text_of(await browser.get(f"/console/liveops/campaigns/{even}/results"))
    assert "Sample ratio mismatch" not in calm and "No player has been assigned yet" in calm
