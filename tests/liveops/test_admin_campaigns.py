"""Campaigns through the marketers' API: targeting validated strictly (canonical CIDRs,
ISO countries, device types, languages, a segment on an existing game and achievement),
IP ranges kept as `cidr` rows in the same transaction, lists filtered (by an address through
the GiST index too), ETags, activation, deletion, and the change channel."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from gameportal.liveops.schemas import MAX_IP_RANGES
from tests.liveops.admin_support import (
    CAMPAIGNS,
    assign,
    errors_by_field,
    listening,
    marketer,
    new_campaign,
    new_rule,
)
from tests.progress.support import achievement, new_game, world


async def _ranges(db: asyncpg.Pool, campaign_id: str) -> list[str]:
    rows = await db.fetch(
        "SELECT ip_range::text AS r FROM campaign_ip_ranges WHERE campaign_id = $1",
        uuid.UUID(campaign_id),
    )
    return sorted(r["r"] for r in rows)


async def test_a_campaign_with_every_kind_of_targeting(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    badge = await achievement(client, w.admin, w.game, key="first-win")
    who = await marketer(client, db)
    control, treatment = await new_rule(client, who), await new_rule(client, who, weight=3)
    made = await client.post(
        CAMPAIGNS,
        json={
            "name": "Spring promo",
            "description": "Spring marketing campaign",
            "startAt": "2030-03-01T00:00:00Z",
            "endAt": "2030-06-01T00:00:00Z",
            "targetingRules": {
                "countries": ["US", "CA", "US"],
                "ipRanges": ["192.168.0.0/16", "10.0.0.0/8", "2001:DB8::/32", "203.0.113.7"],
                "deviceTypes": ["MOBILE", "DESKTOP"],
                "languages": ["en", "pt"],
                "segment": {
                    "gameId": w.game.id,
                    "minLevel": 2,
                    "maxLevel": 10,
                    "hasAchievement": badge["key"],
                },
            },
            "contentIds": [w.game.id],
            "abVariants": [control["id"], treatment["id"]],
            "coverage": 0.5,
            "exclusionGroup": "spring-offers",
        },
        headers=who,
    )
    assert made.status_code == 201, made.text
    campaign = made.json()
    assert made.headers["location"] == f"{CAMPAIGNS}/{campaign['id']}"
    assert made.headers["etag"] == f'"{campaign["id"]}.1"'
    assert campaign["targetingRules"] == {
        "countries": ["US", "CA"],  # repeats dropped
        "ipRanges": ["192.168.0.0/16", "10.0.0.0/8", "2001:db8::/32", "203.0.113.7/32"],
        "deviceTypes": ["MOBILE", "DESKTOP"],
        "languages": ["en", "pt"],
        "segment": {
            "gameId": w.game.id,
            "minLevel": 2,
            "maxLevel": 10,
            "minPoints": None,
            "hasAchievement": "first-win",
        },
    }
    assert campaign["abVariants"] == [control["id"], treatment["id"]]
    assert campaign["hashSeed"] == campaign["id"]  # the default
    assert campaign["active"] is False and campaign["coverage"] == 0.5
    assert campaign["exclusionGroup"] == "spring-offers"
    assert campaign["startAt"] == "2030-03-01T00:00:00Z"
    assert await _ranges(db, campaign["id"]) == [
        "10.0.0.0/8",
        "192.168.0.0/16",
        "2001:db8::/32",
        "203.0.113.7/32",
    ]
    # As stored, for the engine: camelCase, segment without empty bounds.
    stored = await db.fetchval(
        "SELECT targeting_rules FROM campaigns WHERE id = $1", uuid.UUID(campaign["id"])
    )
    assert stored["segment"] == {
        "gameId": w.game.id,
        "minLevel": 2,
        "maxLevel": 10,
        "hasAchievement": "first-win",
    }
    got = await client.get(f"{CAMPAIGNS}/{campaign['id']}", headers=who)
    assert got.json() == campaign and got.headers["etag"] == made.headers["etag"]


async def test_the_smallest_campaign_matches_everyone_and_takes_its_seed(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    campaign = await new_campaign(client, who, hashSeed="spring-2030")
    assert campaign["targetingRules"] == {
        "countries": [],
        "ipRanges": [],
        "deviceTypes": [],
        "languages": [],
        "segment": None,
    }
    assert campaign["hashSeed"] == "spring-2030" and campaign["coverage"] == 1
    assert campaign["contentIds"] == [] and campaign["exclusionGroup"] is None


async def _refused(
    client: httpx.AsyncClient, who: dict[str, str], body: dict[str, Any]
) -> dict[str, dict[str, str]]:
    response = await client.post(CAMPAIGNS, json=body, headers=who)
    assert response.status_code == 422, response.text
    return errors_by_field(response)


async def test_targeting_is_checked_strictly(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    who = await marketer(client, db)
    variant = await new_rule(client, who)
    base = {"name": "c", "abVariants": [variant["id"]]}

    def targeting(**rules: Any) -> dict[str, Any]:
        return {**base, "targetingRules": rules}

    found = await _refused(client, who, targeting(ipRanges=["10.0.0.0/8", "10.0.0.1/8"]))
    assert set(found) == {"targetingRules.ipRanges.1"}
    problem = found["targetingRules.ipRanges.1"]
    assert problem["code"] == "cidr_not_canonical"
    assert "10.0.0.0/8" in problem["message"] and "10.0.0.1/32" in problem["message"]

    found = await _refused(client, who, targeting(ipRanges=["2001:db8::1/32"]))
    assert "2001:db8::/32" in found["targetingRules.ipRanges.0"]["message"]

    for malformed in ["10.0.0.0/33", "300.1.1.0/24", "10.0.0/8", "010.0.0.0/8", "fe80::%1/64", ""]:
        found = await _refused(client, who, targeting(ipRanges=[malformed]))
        assert found["targetingRules.ipRanges.0"]["code"] in ("cidr_invalid", "string_too_short")

    found = await _refused(client, who, targeting(ipRanges=["::ffff:10.0.0.0/104"]))
    assert found["targetingRules.ipRanges.0"]["code"] == "cidr_ipv4_mapped"

    found = await _refused(client, who, targeting(countries=["US", "XX", "us"]))
    assert set(found) == {"targetingRules.countries.1", "targetingRules.countries.2"}
    assert found["targetingRules.countries.1"]["code"] == "country_unknown"
    assert "did you mean US" in found["targetingRules.countries.2"]["message"]

    found = await _refused(client, who, targeting(deviceTypes=["MOBILE", "TABLET"]))
    assert set(found) == {"targetingRules.deviceTypes.1"}

    found = await _refused(client, who, targeting(languages=["en", "xx", "iw", "EN", "pt-BR"]))
    assert set(found) == {f"targetingRules.languages.{i}" for i in (1, 2, 3, 4)}
    assert found["targetingRules.languages.1"]["code"] == "language_unknown"
    assert "write he" in found["targetingRules.languages.2"]["message"]

    too_many = [f"10.{i // 256}.{i % 256}.0/24" for i in range(MAX_IP_RANGES + 1)]
    found = await _refused(client, who, targeting(ipRanges=too_many))
    assert found["targetingRules.ipRanges"]["code"] == "too_long"

    found = await _refused(client, who, targeting(countries=["US"] * 251))
    assert found["targetingRules.countries"]["code"] == "too_long"

    found = await _refused(client, who, targeting(regions=["EU"]))
    assert found["targetingRules.regions"]["code"] == "extra_forbidden"
    assert await db.fetchval("SELECT count(*) FROM campaigns") == 0


async def test_references_window_and_weights_are_checked_together(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    news = await client.post(
        "/api/v1/content", json={"type": "NEWS", "title": "Patch notes"}, headers=w.admin
    )
    who = await marketer(client, db)
    light = await new_rule(client, who, weight=0)
    missing = str(uuid.uuid4())

    found = await _refused(client, who, {"name": "c", "abVariants": []})
    assert found["abVariants"]["code"] == "too_short"

    found = await _refused(
        client,
        who,
        {
            "name": "c",
            "startAt": "2030-01-01T00:00:00Z",
            "endAt": "2030-01-01T00:00:00Z",
            "abVariants": [light["id"], missing, light["id"]],
            "contentIds": [w.game.id, missing],
            "targetingRules": {
                "segment": {"gameId": news.json()["id"], "minLevel": 5, "maxLevel": 2}
            },
        },
    )
    assert set(found) == {
        "endAt",
        "abVariants.1",
        "abVariants.2",
        "contentIds.1",
        "targetingRules.segment.gameId",
        "targetingRules.segment.maxLevel",
    }
    assert found["abVariants.1"]["code"] == "not_found"
    assert found["abVariants.2"]["code"] == "repeated"
    assert "NEWS" in found["targetingRules.segment.gameId"]["message"]

    found = await _refused(client, who, {"name": "c", "abVariants": [light["id"]]})
    assert found["abVariants"]["code"] == "weights_sum_to_zero"

    heavy = await new_rule(client, who)
    found = await _refused(
        client,
        who,
        {
            "name": "c",
            "abVariants": [heavy["id"]],
            "targetingRules": {"segment": {"gameId": w.game.id, "hasAchievement": "nope"}},
        },
    )
    assert set(found) == {"targetingRules.segment.hasAchievement"}
    other_game = await new_game(client, w.admin, title="Other")
    elsewhere = await achievement(client, w.admin, other_game)
    found = await _refused(
        client,
        who,
        {
            "name": "c",
            "abVariants": [heavy["id"]],
            "targetingRules": {
                "segment": {"gameId": w.game.id, "hasAchievement": elsewhere["key"]}
            },
        },
    )
    assert set(found) == {"targetingRules.segment.hasAchievement"}  # another game's

    for body, field in [
        ({"coverage": 1.5}, "coverage"),
        ({"coverage": -0.1}, "coverage"),
        ({"coverage": True}, "coverage"),  # not read as 1
        ({"active": 1}, "active"),  # not read as true
        (
            {"targetingRules": {"segment": {"gameId": w.game.id, "minLevel": "2"}}},
            "targetingRules.segment.minLevel",
        ),
        (
            {"targetingRules": {"segment": {"gameId": w.game.id, "minLevel": True}}},
            "targetingRules.segment.minLevel",
        ),
        (
            {"targetingRules": {"segment": {"gameId": w.game.id, "minPoints": 2.5}}},
            "targetingRules.segment.minPoints",
        ),
        ({"exclusionGroup": "no spaces"}, "exclusionGroup"),
        ({"hashSeed": ""}, "hashSeed"),
    ]:
        found = await _refused(client, who, {"name": "c", "abVariants": [heavy["id"]], **body})
        assert set(found) == {field}, body
    assert await db.fetchval("SELECT count(*) FROM campaigns") == 0

    # A whole number written with a fraction is the number, as JSON Schema's `integer`
    # reads it (schemathesis sent `"minLevel": 2467.0` and got a 422).
    whole = await client.post(
        "/api/v1/admin/campaigns",
        json={
            "name": "c",
            "abVariants": [heavy["id"]],
            "targetingRules": {"segment": {"gameId": w.game.id, "minLevel": 3.0}},
        },
        headers=who,
    )
    assert whole.status_code == 201, whole.text
    assert whole.json()["targetingRules"]["segment"]["minLevel"] == 3


async def test_a_patch_merges_targeting_and_keeps_ip_rows_in_step(
    client: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    who = await marketer(client, db)
    campaign = await new_campaign(
        client,
        who,
        targetingRules={"countries": ["DE"], "ipRanges": ["10.0.0.0/8"], "languages": ["de"]},
    )
    url = f"{CAMPAIGNS}/{campaign['id']}"
    assert (await client.patch(url, json={"coverage": 0.1}, headers=who)).status_code == 428

    etag = f'"{campaign["id"]}.1"'
    async with listening(database_url) as heard:
        changed = await client.patch(
            url,
            json={
                "targetingRules": {"ipRanges": ["2001:db8::/48", "10.1.0.0/16"], "languages": None},
                "hashSeed": "reshuffled",
            },
            headers={**who, "If-Match": etag},
        )
        assert changed.status_code == 200, changed.text
        assert await heard.next() == campaign["id"]
    after = changed.json()
    assert after["targetingRules"]["countries"] == ["DE"]  # not sent: kept
    assert after["targetingRules"]["languages"] == []  # null: emptied
    assert after["targetingRules"]["ipRanges"] == ["2001:db8::/48", "10.1.0.0/16"]
    assert after["hashSeed"] == "reshuffled" and after["version"] == 2
    assert await _ranges(db, campaign["id"]) == ["10.1.0.0/16", "2001:db8::/48"]

    # A refused change leaves the rows as they were.
    refused = await client.patch(
        url,
        json={
            "targetingRules": {"ipRanges": ["192.168.0.0/16"]},
            "abVariants": [str(uuid.uuid4())],
        },
        headers={**who, "If-Match": "*"},
    )
    assert refused.status_code == 422
    assert await _ranges(db, campaign["id"]) == ["10.1.0.0/16", "2001:db8::/48"]

    cleared = await client.patch(
        url,
        json={"targetingRules": {"ipRanges": None}, "hashSeed": None},
        headers={**who, "If-Match": changed.headers["etag"]},
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["hashSeed"] == campaign["id"]  # back to the default
    assert await _ranges(db, campaign["id"]) == []

    for body, field in [
        ({"abVariants": None}, "abVariants"),
        ({"targetingRules": None}, "targetingRules"),
        ({"endAt": "2000-01-01T00:00:00Z", "startAt": "2001-01-01T00:00:00Z"}, "endAt"),
    ]:
        response = await client.patch(url, json=body, headers={**who, "If-Match": "*"})
        assert response.status_code == 422 and set(errors_by_field(response)) == {field}


async def test_variants_may_change_after_players_were_assigned(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # Sticky assignment: the log keeps each player's variant; the change only moves new ones.
    who = await marketer(client, db)
    a, b, c = [await new_rule(client, who) for _ in range(3)]
    campaign = await new_campaign(client, who, [a, b])
    player = await assign(client, db, campaign["id"], b["id"])
    changed = await client.patch(
        f"{CAMPAIGNS}/{campaign['id']}",
        json={"abVariants": [a["id"], c["id"]], "hashSeed": "new"},
        headers={**who, "If-Match": "*"},
    )
    assert changed.status_code == 200, changed.text
    kept = await db.fetchval(
        "SELECT variant_id FROM ab_experiment_log WHERE user_id = $1", uuid.UUID(player)
    )
    assert str(kept) == b["id"]


async def test_lists_filter_by_address_group_state_and_window(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    v4 = await new_campaign(
        client,
        who,
        name="Office v4",
        targetingRules={"ipRanges": ["198.51.100.0/24", "10.0.0.0/8"]},
        exclusionGroup="g1",
        active=True,
    )
    v6 = await new_campaign(
        client, who, name="office v6", targetingRules={"ipRanges": ["2001:db8::/32"]}
    )
    everyone = await new_campaign(
        client,
        who,
        name="Everyone",
        exclusionGroup="g1",
        startAt="2099-01-01T00:00:00Z",
    )

    async def ids(**params: str) -> list[str]:
        response = await client.get(CAMPAIGNS, params=params, headers=who)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    assert await ids() == [everyone["id"], v6["id"], v4["id"]]
    assert await ids(ip="198.51.100.77") == [v4["id"]]
    assert await ids(ip="10.200.0.1") == [v4["id"]]
    assert await ids(ip="::ffff:198.51.100.1") == [v4["id"]]  # IPv4-mapped, looked up as IPv4
    assert await ids(ip="2001:db8:1::5") == [v6["id"]]
    assert await ids(ip="192.0.2.1") == []
    assert await ids(exclusionGroup="g1") == [everyone["id"], v4["id"]]
    assert await ids(exclusionGroup="g1", ip="10.0.0.1") == [v4["id"]]
    assert await ids(active="true") == [v4["id"]]
    assert await ids(current="false") == [everyone["id"]]
    assert await ids(namePrefix="office") == [v6["id"], v4["id"]]

    bad = await client.get(CAMPAIGNS, params={"ip": "10.0.0.0/8"}, headers=who)
    assert bad.status_code == 422 and set(errors_by_field(bad)) == {"ip"}


async def test_the_address_filter_is_answered_by_the_gist_index(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        # The statement the repository sends for `?ip=` (`>>=` on the cidr column).
        rows = await conn.fetch(
            "EXPLAIN SELECT campaign_id FROM campaign_ip_ranges "
            "WHERE ip_range >>= CAST('10.1.2.3' AS INET)"
        )
        plan = "\n".join(r[0] for r in rows)
        assert "ix_campaign_ip_ranges_ip_range" in plan, plan


async def test_ten_thousand_ranges_are_stored_and_replaced(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    ranges = [f"10.{i // 256}.{i % 256}.0/24" for i in range(MAX_IP_RANGES - 1)] + ["2001:db8::/32"]
    campaign = await new_campaign(client, who, targetingRules={"ipRanges": ranges})
    count = "SELECT count(*) FROM campaign_ip_ranges WHERE campaign_id = $1"
    assert await db.fetchval(count, uuid.UUID(campaign["id"])) == MAX_IP_RANGES
    found = await client.get(CAMPAIGNS, params={"ip": "10.38.9.1"}, headers=who)
    assert [c["id"] for c in found.json()["items"]] == [campaign["id"]]
    changed = await client.patch(
        f"{CAMPAIGNS}/{campaign['id']}",
        json={"targetingRules": {"ipRanges": ranges[:10]}},
        headers={**who, "If-Match": "*"},
    )
    assert changed.status_code == 200, changed.text
    assert await db.fetchval(count, uuid.UUID(campaign["id"])) == 10


async def test_activate_deactivate_and_delete(
    client: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    who = await marketer(client, db)
    campaign = await new_campaign(client, who, targetingRules={"ipRanges": ["10.0.0.0/8"]})
    url = f"{CAMPAIGNS}/{campaign['id']}"
    async with listening(database_url) as heard:
        on = await client.post(f"{url}/activate", headers=who)
        assert on.status_code == 200 and on.json()["active"] is True
        assert on.json()["version"] == 2
        assert await heard.next() == campaign["id"]
        off = await client.post(
            f"{url}/deactivate", headers={**who, "If-Match": on.headers["etag"]}
        )
        assert off.status_code == 200 and off.json()["active"] is False
        assert await heard.next() == campaign["id"]

        await assign(client, db, campaign["id"], campaign["abVariants"][0])
        stale = await client.delete(url, headers={**who, "If-Match": on.headers["etag"]})
        assert stale.status_code == 412
        gone = await client.delete(url, headers={**who, "If-Match": off.headers["etag"]})
        assert gone.status_code == 204
        assert await heard.next() == campaign["id"]
    assert (await client.get(url, headers=who)).status_code == 404
    assert (await client.post(f"{url}/activate", headers=who)).json()["type"] == (
        "urn:gameportal:problem:campaign-not-found"
    )
    assert await _ranges(db, campaign["id"]) == []
    assert await db.fetchval("SELECT count(*) FROM ab_experiment_log") == 0


async def test_the_exclusion_group_changes_only_until_a_player_is_assigned(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # The log rows keep a group's campaigns from sharing a player: players already in
    # this campaign cannot be taken back out of the new group's other campaigns.
    who = await marketer(client, db)
    campaign = await new_campaign(client, who)
    url = f"{CAMPAIGNS}/{campaign['id']}"

    async def regroup(group: str | None) -> httpx.Response:
        return await client.patch(
            url, json={"exclusionGroup": group}, headers={**who, "If-Match": "*"}
        )

    assert (await regroup("spring")).status_code == 200  # nobody assigned yet
    player = await assign(client, db, campaign["id"], campaign["abVariants"][0])
    await db.execute("UPDATE ab_experiment_log SET exclusion_group = 'spring'")

    async def logged_group() -> str | None:
        group: str | None = await db.fetchval(
            "SELECT exclusion_group FROM ab_experiment_log WHERE user_id = $1", uuid.UUID(player)
        )
        return group

    for group in ("summer", "autumn"):
        refused = await regroup(group)
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"].endswith("campaign-has-players")
        problem = errors_by_field(refused)["exclusionGroup"]
        assert problem["code"] == "campaign_has_players"
        assert "players are already assigned" in problem["message"]
    unchanged = await client.get(url, headers=who)
    assert unchanged.json()["exclusionGroup"] == "spring"
    assert unchanged.json()["version"] == campaign["version"] + 1
    assert await logged_group() == "spring"

    # Same group again: nothing to check. Leaving the group frees its players.
    assert (await regroup("spring")).status_code == 200
    left = await regroup(None)
    assert left.status_code == 200, left.text
    assert left.json()["exclusionGroup"] is None
    assert await logged_group() is None
    assert (await regroup("spring")).status_code == 409  # back in: players are assigned
