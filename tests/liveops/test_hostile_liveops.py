"""Hostile and odd input on the live-operations routes: each gets a clear problem+json
answer naming the field, never a 500, never a partial write; concurrent writers get
exactly one winner."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.factories import STRONG_PASSWORD, bearer, register
from tests.liveops.admin_support import (
    CAMPAIGNS,
    RULES,
    assign,
    errors_by_field,
    marketer,
    new_campaign,
    new_rule,
)
from tests.liveops.evaluation_support import active, campaign, settle, variant, visitor

PROBLEM = "application/problem+json"
NIL = "00000000-0000-0000-0000-000000000000"
MAX = "ffffffff-ffff-ffff-ffff-ffffffffffff"


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


# --- X-Anonymous-Id --------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [NIL, MAX, "{" + NIL + "}", NIL.replace("-", "")])
async def test_the_nil_and_max_uuid_are_no_visitors_id(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, shared: str
) -> None:
    """A client whose id was never set sends the nil UUID: taken as a visitor, every such
    client would share one variant and one log row per campaign."""
    made = await campaign(db, [await variant(db)])
    await settle(app)
    response = await client.get("/api/v1/campaigns/active", headers={"X-Anonymous-Id": shared})
    body = _problem(response, 422)
    assert body["errors"] == [
        {
            "field": "X-Anonymous-Id",
            "location": "header",
            "message": body["errors"][0]["message"],
            "code": "uuid_reserved",
        }
    ]
    assert "random UUID" in body["errors"][0]["message"]
    assert await db.fetchval("SELECT count(*) FROM ab_experiment_log") == 0
    # A real visitor id still works.
    fine = await client.get("/api/v1/campaigns/active", headers=visitor())
    assert [c["id"] for c in fine.json()["items"]] == [str(made)]


async def test_a_login_with_the_nil_visitor_id_takes_no_ones_variants(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    made = await campaign(db, [await variant(db)])
    await settle(app)
    # Rows logged for the nil id before it was refused: nobody's to take.
    await db.execute(
        "INSERT INTO ab_experiment_log (id, campaign_id, anonymous_id, variant_id) "
        "SELECT $1, id, $2, ab_variants[1] FROM campaigns WHERE id = $3",
        uuid.uuid4(),
        uuid.UUID(NIL),
        made,
    )
    me = await register(client)
    logged_in = await client.post(
        "/api/v1/auth/login",
        json={"email": me["user"]["email"], "password": STRONG_PASSWORD},
        headers={"X-Anonymous-Id": NIL},
    )
    assert logged_in.status_code == 200, logged_in.text
    owners = await db.fetch("SELECT user_id, anonymous_id FROM ab_experiment_log")
    assert [tuple(r) for r in owners] == [(None, uuid.UUID(NIL))]


# --- targeting: CIDRs and lists at their bounds ------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "code"),
    [
        ("fe80::1%eth0/64", "cidr_invalid"),  # a zone id names one host's link, no network
        ("fe80::%eth0/64", "cidr_invalid"),
        ("::ffff:10.0.0.0/104", "cidr_ipv4_mapped"),
        ("::ffff:1.2.3.4", "cidr_ipv4_mapped"),
        ("10.0.0.1/8", "cidr_not_canonical"),
        ("10.0.0.0/33", "cidr_invalid"),
        ("010.0.0.0/8", "cidr_invalid"),
        (" 10.0.0.0/8", "cidr_invalid"),
        ("10.0.0.0/８", "cidr_invalid"),  # a full-width digit
    ],
)
async def test_odd_cidrs_are_refused_by_name(
    client: httpx.AsyncClient, db: asyncpg.Pool, cidr: str, code: str
) -> None:
    who = await marketer(client, db)
    rule = await new_rule(client, who)
    response = await client.post(
        CAMPAIGNS,
        json={"name": "c", "abVariants": [rule["id"]], "targetingRules": {"ipRanges": [cidr]}},
        headers=who,
    )
    _problem(response, 422)
    found = errors_by_field(response)
    assert found["targetingRules.ipRanges.0"]["code"] == code
    assert await db.fetchval("SELECT count(*) FROM campaigns") == 0


async def test_ten_thousand_bad_ranges_get_an_answer_of_a_readable_size(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # Each bad CIDR was named: 10,000 of them made a 2.1 MB problem document.
    who = await marketer(client, db)
    rule = await new_rule(client, who)
    bad = [f"10.{i // 256}.{i % 256}.1/24" for i in range(10_000)]
    response = await client.post(
        CAMPAIGNS,
        json={"name": "c", "abVariants": [rule["id"]], "targetingRules": {"ipRanges": bad}},
        headers=who,
    )
    problem = _problem(response, 422)
    assert len(response.content) < 64 * 1024
    assert len(problem["errors"]) == 100
    assert problem["errors"][0]["field"] == "targetingRules.ipRanges.0"
    assert problem["errors"][0]["code"] == "cidr_not_canonical"
    assert "the first 100 are listed" in problem["detail"]
    assert await db.fetchval("SELECT count(*) FROM campaigns") == 0


async def test_whole_address_spaces_are_ranges_like_any_other(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    made = await new_campaign(
        client, who, targetingRules={"ipRanges": ["0.0.0.0/0", "::/0", "2001:DB8::/32"]}
    )
    assert made["targetingRules"]["ipRanges"] == ["0.0.0.0/0", "::/0", "2001:db8::/32"]
    stored = await db.fetch("SELECT ip_range::text FROM campaign_ip_ranges ORDER BY 1")
    assert [r[0] for r in stored] == ["0.0.0.0/0", "2001:db8::/32", "::/0"]


async def test_ip_ranges_at_the_bound_and_over_it_without_a_partial_write(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    at_bound = [f"10.{i // 256}.{i % 256}.0/24" for i in range(10_000)]
    made = await new_campaign(client, who, targetingRules={"ipRanges": at_bound})
    assert await db.fetchval("SELECT count(*) FROM campaign_ip_ranges") == 10_000
    rule = await new_rule(client, who)
    over = await client.post(
        CAMPAIGNS,
        json={
            "name": "over",
            "abVariants": [rule["id"]],
            "targetingRules": {"ipRanges": [*at_bound, "11.0.0.0/8"]},
        },
        headers=who,
    )
    _problem(over, 422)
    assert errors_by_field(over)["targetingRules.ipRanges"]["code"] == "too_long"
    # A PATCH over the bound leaves the stored ranges as they were.
    etag = (await client.get(f"{CAMPAIGNS}/{made['id']}", headers=who)).headers["etag"]
    patched = await client.patch(
        f"{CAMPAIGNS}/{made['id']}",
        json={"name": "renamed", "targetingRules": {"ipRanges": [*at_bound, "11.0.0.0/8"]}},
        headers={**who, "If-Match": etag},
    )
    _problem(patched, 422)
    assert await db.fetchval("SELECT count(*) FROM campaigns") == 1
    assert await db.fetchval("SELECT name FROM campaigns") == made["name"]
    assert await db.fetchval("SELECT count(*) FROM campaign_ip_ranges") == 10_000
    # Repeats count once: 5,000 ranges sent twice are 5,000 ranges.
    twice = await new_campaign(client, who, targetingRules={"ipRanges": at_bound[:5000] * 2})
    assert len(twice["targetingRules"]["ipRanges"]) == 5000


async def test_repeated_countries_count_once_and_wrong_ones_are_each_named(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    made = await new_campaign(client, who, targetingRules={"countries": ["US"] * 250})
    assert made["targetingRules"]["countries"] == ["US"]
    rule = await new_rule(client, who)
    wrong = await client.post(
        CAMPAIGNS,
        json={
            "name": "c",
            "abVariants": [rule["id"]],
            "targetingRules": {"countries": ["US", "us", "XX", "US", "DE"]},
        },
        headers=who,
    )
    _problem(wrong, 422)
    found = errors_by_field(wrong)
    assert set(found) == {"targetingRules.countries.1", "targetingRules.countries.2"}
    assert "did you mean US?" in found["targetingRules.countries.1"]["message"]


# --- types, nesting, text ----------------------------------------------------------------------


async def test_a_wrong_type_at_every_field_names_each_one(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    response = await client.post(
        CAMPAIGNS,
        json={
            "name": [],
            "description": 1,
            "startAt": True,
            "endAt": "soon",
            "active": 1,
            "targetingRules": {
                "countries": "US",
                "ipRanges": [1],
                "deviceTypes": ["PHONE"],
                "languages": [None],
                "segment": [],
            },
            "contentIds": {},
            "abVariants": "x",
            "coverage": "0.5",
            "hashSeed": 5,
            "exclusionGroup": 7,
        },
        headers=who,
    )
    _problem(response, 422)
    assert set(errors_by_field(response)) == {
        "name",
        "description",
        "startAt",
        "endAt",
        "active",
        "targetingRules.countries",
        "targetingRules.ipRanges.0",
        "targetingRules.deviceTypes.0",
        "targetingRules.languages.0",
        "targetingRules.segment",
        "contentIds",
        "abVariants",
        "coverage",
        "hashSeed",
        "exclusionGroup",
    }
    assert await db.fetchval("SELECT count(*) FROM campaigns") == 0


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        ("[" * 100_000 + "]" * 100_000, "body", "json_invalid"),  # the parser's own limit
        ("[[[[[[[[[1]]]]]]]]]", "rule.payload", "payload_too_deep"),
        ("1180591620717411303424", "rule.payload", "payload_invalid"),  # 2**70
        ('{"t": "x\\u0000y"}', "rule.payload", "value_error"),
        ('"\\ud800"', "rule.payload", "payload_invalid"),  # a lone surrogate
    ],
)
async def test_payloads_nested_too_deep_or_not_plain_json(
    client: httpx.AsyncClient, db: asyncpg.Pool, payload: str, field: str, code: str
) -> None:
    who = await marketer(client, db)
    response = await client.post(
        RULES,
        content='{"name": "x", "rule": {"weight": 1, "payload": ' + payload + "}}",
        headers={**who, "Content-Type": "application/json"},
    )
    _problem(response, 422)
    assert errors_by_field(response)[field]["code"] == code
    assert await db.fetchval("SELECT count(*) FROM ab_rules") == 0


async def test_names_take_any_script_but_no_control_or_invisible_characters(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    made = await new_rule(client, who, name="Ünïcødé 🎮 名前 عربى")
    assert made["name"] == "Ünïcødé 🎮 名前 عربى"
    for name in ("a\x00b", "pay\u202eusd", "a\u200db"):
        response = await client.post(RULES, json={"name": name, "rule": {"weight": 1}}, headers=who)
        _problem(response, 422)
        assert set(errors_by_field(response)) == {"name"}


# --- If-Match and concurrent writers -----------------------------------------------------------


async def test_campaign_patch_needs_the_current_strong_etag(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    made = await new_campaign(client, who)
    other = await new_campaign(client, who)
    url = f"{CAMPAIGNS}/{made['id']}"
    etag = (await client.get(url, headers=who)).headers["etag"]
    other_etag = (await client.get(f"{CAMPAIGNS}/{other['id']}", headers=who)).headers["etag"]
    assert _problem(await client.patch(url, json={"name": "x"}, headers=who), 428)
    for wrong in ('"nope"', "W/" + etag, other_etag, ""):
        response = await client.patch(url, json={"name": "x"}, headers={**who, "If-Match": wrong})
        _problem(response, 412)
    too_long = await client.patch(url, json={"name": "x"}, headers={**who, "If-Match": "x" * 201})
    _problem(too_long, 422)
    assert (await client.get(url, headers=who)).json()["version"] == 1


async def test_of_concurrent_patches_with_one_etag_one_wins(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    made = await new_campaign(client, who)
    url = f"{CAMPAIGNS}/{made['id']}"
    etag = (await client.get(url, headers=who)).headers["etag"]
    answers = await asyncio.gather(
        *(
            client.patch(url, json={"name": f"n{i}"}, headers={**who, "If-Match": etag})
            for i in range(10)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] + [412] * 9
    (winner,) = [a.json() for a in answers if a.status_code == 200]
    assert winner["version"] == 2
    assert await db.fetchval("SELECT name FROM campaigns") == winner["name"]


async def test_deleting_a_rule_in_use_says_why_in_words(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    listed, assigned = await new_rule(client, who), await new_rule(client, who)
    made = await new_campaign(client, who, variants=[listed, assigned], name="Spring")
    await assign(client, db, made["id"], assigned["id"])
    body = _problem(await client.delete(f"{RULES}/{listed['id']}", headers=who), 409)
    assert body["type"] == "urn:gameportal:problem:ab-rule-in-use"
    assert "'Spring'" in body["detail"] and "deactivate" in body["detail"]
    # Out of the campaign, but a player holds it: still kept, for the results.
    etag = (await client.get(f"{CAMPAIGNS}/{made['id']}", headers=who)).headers["etag"]
    changed = await client.patch(
        f"{CAMPAIGNS}/{made['id']}",
        json={"abVariants": [listed["id"]]},
        headers={**who, "If-Match": etag},
    )
    assert changed.status_code == 200, changed.text
    body = _problem(await client.delete(f"{RULES}/{assigned['id']}", headers=who), 409)
    assert "1 player was assigned" in body["detail"]
    assert await db.fetchval("SELECT count(*) FROM ab_rules") == 2


async def test_results_keep_variants_taken_out_of_the_campaign(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    kept, dropped = await new_rule(client, who), await new_rule(client, who)
    made = await new_campaign(client, who, variants=[kept, dropped])
    url = f"{CAMPAIGNS}/{made['id']}"
    fresh = await client.get(f"{url}/results", headers=who)
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["sampleRatio"]["unavailable"] == "no players yet"
    for rule in (kept, dropped, dropped):
        await assign(client, db, made["id"], rule["id"])
    etag = (await client.get(url, headers=who)).headers["etag"]
    patched = await client.patch(
        url, json={"abVariants": [kept["id"]]}, headers={**who, "If-Match": etag}
    )
    assert patched.status_code == 200, patched.text
    results = await client.get(f"{url}/results", headers=who)
    assert results.status_code == 200, results.text
    found = {v["variantId"]: v for v in results.json()["variants"]}
    assert found[dropped["id"]]["inCampaign"] is False
    assert found[dropped["id"]]["assigned"] == 2
    assert results.json()["sampleRatio"]["pValue"] is None
    daily = await client.get(f"{url}/results/daily", headers=who)
    assert daily.status_code == 200, daily.text
    json.dumps(results.json(), allow_nan=False)  # no NaN or Infinity anywhere


# --- conversions ---------------------------------------------------------------------------------


async def test_fifty_concurrent_conversions_record_one(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    made = await campaign(db, [await variant(db)])
    await settle(app)
    me = await register(client)
    assert len(await active(client, bearer(me))) == 1
    url = f"/api/v1/campaigns/{made}/conversions"
    answers = await asyncio.gather(
        *(
            client.post(url, json={"event": "purchase", "value": i}, headers=bearer(me))
            for i in range(50)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] * 49 + [201]
    assert len({a.text for a in answers}) == 1  # every repeat answers the first record
    rows = await db.fetch("SELECT conversion_value FROM ab_experiment_log")
    assert len(rows) == 1 and rows[0][0] is not None
