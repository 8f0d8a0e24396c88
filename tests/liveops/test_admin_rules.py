"""A/B rules (variants) through the marketers' API: CRUD with ETags, strict validation,
deletion refused while a campaign or the experiment log needs the rule, every change
announced on the live-ops channel once it commits."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from gameportal.liveops.admin_repository import WRITES_LOCK_SQL
from tests.factories import bearer, user_with_roles
from tests.liveops.admin_support import (
    CAMPAIGNS,
    RULES,
    assign,
    errors_by_field,
    listening,
    marketer,
    new_campaign,
    new_rule,
)


async def test_marketers_create_read_change_and_delete_a_rule(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    made = await client.post(
        RULES,
        json={
            "name": "Price 4.99",
            "description": "the cheaper offer",
            "startAt": "2030-01-01T00:00:00+02:00",
            "rule": {"weight": 2, "payload": {"price": 4.99, "banner": ["a", {"b": None}]}},
        },
        headers=who,
    )
    assert made.status_code == 201, made.text
    rule = made.json()
    assert made.headers["location"] == f"{RULES}/{rule['id']}"
    assert made.headers["etag"] == f'"{rule["id"]}.1"'
    assert rule["startAt"] == "2029-12-31T22:00:00Z" and rule["endAt"] is None
    assert rule["active"] is True and rule["version"] == 1
    assert rule["rule"] == {
        "weight": 2.0,
        "payload": {"price": 4.99, "banner": ["a", {"b": None}]},
        "contentIds": [],
    }

    got = await client.get(f"{RULES}/{rule['id']}", headers=who)
    assert got.status_code == 200 and got.json() == rule
    etag = got.headers["etag"]

    url = f"{RULES}/{rule['id']}"
    unconditional = await client.patch(url, json={"name": "x"}, headers=who)
    assert unconditional.status_code == 428, unconditional.text
    stale = await client.patch(url, json={"name": "x"}, headers={**who, "If-Match": '"nope"'})
    assert stale.status_code == 412, stale.text

    # Only the keys sent change, in `rule` too.
    changed = await client.patch(
        url, json={"rule": {"weight": 3}, "endAt": None}, headers={**who, "If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["rule"]["weight"] == 3 and changed.json()["rule"]["payload"]["price"]
    assert changed.json()["version"] == 2 and changed.headers["etag"] != etag
    again = await client.patch(url, json={"name": "late"}, headers={**who, "If-Match": etag})
    assert again.status_code == 412  # the first ETag is spent

    assert (await client.delete(url, headers=who)).status_code == 204
    assert (await client.get(url, headers=who)).status_code == 404


async def test_players_and_editors_may_not_touch_rules(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    for roles in ([], ["editor"]):
        caller = bearer(await user_with_roles(client, db, *roles))
        response = await client.post(
            RULES, json={"name": "x", "rule": {"weight": 1}}, headers=caller
        )
        assert response.status_code == 403, response.text
    admin = bearer(await user_with_roles(client, db, "admin"))
    assert (await client.get(RULES, headers=admin)).status_code == 200


async def test_a_rule_is_checked_field_by_field(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    deep: object = 1
    for _ in range(9):
        deep = [deep]
    cases = [
        ({"weight": -1}, "rule.weight", "greater_than_equal"),
        ({"weight": 1, "payload": {"text": "x" * 17_000}}, "rule.payload", "payload_too_large"),
        ({"weight": 1, "payload": deep}, "rule.payload", "payload_too_deep"),
        ({"weight": 1, "surprise": 1}, "rule.surprise", "extra_forbidden"),
        ({"payload": 1}, "rule.weight", "missing"),
        ({"weight": True}, "rule.weight", "float_type"),  # not read as 1
        ({"weight": "1"}, "rule.weight", "float_type"),
    ]
    for rule, field, code in cases:
        response = await client.post(RULES, json={"name": "n", "rule": rule}, headers=who)
        assert response.status_code == 422, (rule, response.text)
        assert errors_by_field(response)[field]["code"] == code, response.text

    response = await client.post(
        RULES, json={"name": "n", "active": 0, "rule": {"weight": 1}}, headers=who
    )
    assert response.status_code == 422 and set(errors_by_field(response)) == {"active"}

    missing = str(uuid.uuid4())
    response = await client.post(
        RULES,
        json={
            "name": "n",
            "startAt": "2030-01-02T00:00:00Z",
            "endAt": "2030-01-01T00:00:00Z",
            "rule": {"weight": 1, "contentIds": [missing]},
        },
        headers=who,
    )
    assert response.status_code == 422
    fields = errors_by_field(response)
    assert set(fields) == {"endAt", "rule.contentIds.0"}  # all at once
    assert "after startAt" in fields["endAt"]["message"]
    assert missing in fields["rule.contentIds.0"]["message"]
    assert await db.fetchval("SELECT count(*) FROM ab_rules") == 0


async def test_a_patch_is_checked_against_the_stored_window(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    rule = await new_rule(client, who, startAt="2030-01-01T00:00:00Z")
    response = await client.patch(
        f"{RULES}/{rule['id']}",
        json={"endAt": "2029-01-01T00:00:00Z"},
        headers={**who, "If-Match": f'"{rule["id"]}.1"'},
    )
    assert response.status_code == 422
    assert set(errors_by_field(response)) == {"endAt"}
    for body, field in [({"name": None}, "name"), ({"rule": {"weight": None}}, "rule.weight")]:
        response = await client.patch(
            f"{RULES}/{rule['id']}", json=body, headers={**who, "If-Match": "*"}
        )
        assert response.status_code == 422 and set(errors_by_field(response)) == {field}


async def test_a_rule_in_use_cannot_be_deleted(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    who = await marketer(client, db)
    control, treatment, spare = [await new_rule(client, who) for _ in range(3)]
    campaign = await new_campaign(client, who, [control, treatment], name="Spring promo")

    listed = await client.delete(f"{RULES}/{treatment['id']}", headers=who)
    assert listed.status_code == 409, listed.text
    problem = listed.json()
    assert problem["type"] == "urn:gameportal:problem:ab-rule-in-use"
    assert "Spring promo" in problem["detail"] and campaign["id"] in problem["detail"]

    # Taken out of the campaign, but a player was assigned it: the results need it.
    await assign(client, db, campaign["id"], treatment["id"])
    swapped = await client.patch(
        f"{CAMPAIGNS}/{campaign['id']}",
        json={"abVariants": [control["id"], spare["id"]]},
        headers={**who, "If-Match": "*"},
    )
    assert swapped.status_code == 200, swapped.text
    logged = await client.delete(f"{RULES}/{treatment['id']}", headers=who)
    assert logged.status_code == 409, logged.text
    assert "1 player was assigned" in logged.json()["detail"]
    assert "deactivate" in logged.json()["detail"]

    # Once the campaign (and its log) is gone, so may the rule be.
    assert (await client.delete(f"{CAMPAIGNS}/{campaign['id']}", headers=who)).status_code == 204
    assert (await client.delete(f"{RULES}/{treatment['id']}", headers=who)).status_code == 204


async def test_a_weight_change_may_not_leave_a_campaign_weighing_nothing(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    heavy = await new_rule(client, who, weight=1)
    empty = await new_rule(client, who, weight=0)
    campaign = await new_campaign(client, who, [heavy, empty], name="Only one weighs")
    response = await client.patch(
        f"{RULES}/{heavy['id']}", json={"rule": {"weight": 0}}, headers={**who, "If-Match": "*"}
    )
    assert response.status_code == 409, response.text
    assert response.json()["type"] == "urn:gameportal:problem:weights-sum-to-zero"
    assert campaign["id"] in errors_by_field(response)["rule.weight"]["message"]
    # Weight moved to the other variant first: then it may go.
    for rule, weight in [(empty, 1), (heavy, 0)]:
        response = await client.patch(
            f"{RULES}/{rule['id']}",
            json={"rule": {"weight": weight}},
            headers={**who, "If-Match": "*"},
        )
        assert response.status_code == 200, response.text


async def test_writes_take_turns_so_checks_see_each_other(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # Each change alone is allowed; together they would leave the campaign weighing 0.
    # While another write holds the turn, a marketer's change waits for it, then sees it.
    who = await marketer(client, db)
    a, b = await new_rule(client, who), await new_rule(client, who)
    await new_campaign(client, who, [a, b])
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(WRITES_LOCK_SQL)
        patch = asyncio.create_task(
            client.patch(
                f"{RULES}/{a['id']}",
                json={"rule": {"weight": 0}},
                headers={**who, "If-Match": "*"},
            )
        )
        await asyncio.sleep(0.3)
        assert not patch.done()
        await conn.execute(
            "UPDATE ab_rules SET rule = jsonb_set(rule, '{weight}', '0') WHERE id = $1",
            uuid.UUID(b["id"]),
        )
    response = await patch
    assert response.status_code == 409, response.text
    weights = await db.fetch("SELECT (rule->>'weight')::float AS w FROM ab_rules")
    assert sorted(r["w"] for r in weights) == [0, 1]


async def test_activate_and_deactivate(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    who = await marketer(client, db)
    rule = await new_rule(client, who)
    off = await client.post(f"{RULES}/{rule['id']}/deactivate", headers=who)
    assert off.status_code == 200 and off.json()["active"] is False
    assert off.json()["version"] == 2 and off.headers["etag"] == f'"{rule["id"]}.2"'
    again = await client.post(f"{RULES}/{rule['id']}/deactivate", headers=who)
    assert again.json()["version"] == 2  # nothing changed, no new version
    stale = await client.post(
        f"{RULES}/{rule['id']}/activate", headers={**who, "If-Match": f'"{rule["id"]}.1"'}
    )
    assert stale.status_code == 412
    on = await client.post(
        f"{RULES}/{rule['id']}/activate", headers={**who, "If-Match": off.headers["etag"]}
    )
    assert on.status_code == 200 and on.json()["active"] is True and on.json()["version"] == 3
    missing = await client.post(f"{RULES}/{uuid.uuid4()}/activate", headers=who)
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:gameportal:problem:ab-rule-not-found"


async def test_lists_filter_and_page(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    who = await marketer(client, db)
    spring = await new_rule(client, who, name="Spring 50%_off")
    summer = await new_rule(client, who, name="Summer", active=False)
    future = await new_rule(client, who, name="spring later", startAt="2099-01-01T00:00:00Z")
    past = await new_rule(
        client, who, name="Old", startAt="2001-01-01T00:00:00Z", endAt="2002-01-01T00:00:00Z"
    )

    async def ids(**params: str) -> list[str]:
        response = await client.get(RULES, params=params, headers=who)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["items"]]

    newest_first = [past["id"], future["id"], summer["id"], spring["id"]]
    assert await ids() == newest_first
    assert await ids(active="false") == [summer["id"]]
    assert await ids(namePrefix="SPRING") == [future["id"], spring["id"]]
    assert await ids(namePrefix="Spring 50%_") == [spring["id"]]
    assert await ids(namePrefix="Spring 5_%") == []  # wildcards are plain characters
    assert await ids(current="true") == [summer["id"], spring["id"]]
    assert await ids(current="false") == [past["id"], future["id"]]
    assert await ids(current="true", active="true") == [spring["id"]]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(RULES, params=params, headers=who)).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == newest_first


async def test_every_change_is_announced_when_it_commits(
    client: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    who = await marketer(client, db)
    async with listening(database_url) as heard:
        rule = await new_rule(client, who)
        assert await heard.next() == rule["id"]
        url = f"{RULES}/{rule['id']}"
        await client.patch(url, json={"name": "renamed"}, headers={**who, "If-Match": "*"})
        assert await heard.next() == rule["id"]
        await client.post(f"{url}/deactivate", headers=who)
        assert await heard.next() == rule["id"]
        await client.delete(url, headers=who)
        assert await heard.next() == rule["id"]
        # A refused change commits nothing, and so says nothing.
        refused = await client.post(RULES, json={"name": "n", "rule": {"weight": -1}}, headers=who)
        assert refused.status_code == 422
        bad_window = await client.post(
            RULES,
            json={"name": "n", "startAt": "2030-01-01T00:00:00Z", "endAt": "2030-01-01T00:00:00Z",
                  "rule": {"weight": 1}},
            headers=who,
        )  # fmt: skip
        assert bad_window.status_code == 422
        await asyncio.sleep(0.2)
        assert heard.nothing_more()
