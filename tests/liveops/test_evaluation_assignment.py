"""Assignment through GET /api/v1/campaigns/active: sticky variants, exactly one log row
whatever the concurrency, exclusion groups, coverage, the database work of a returning
player, conversions, the carry-over of a visitor's variants to their account, and the
client's address as an untrusted peer gives it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.db import FairPool
from tests.factories import bearer, login, register, user_with_roles
from tests.liveops.evaluation_support import (
    GB_IP,
    active,
    campaign,
    ids,
    log_rows,
    settle,
    variant,
    visitor,
)
from tests.progress.support import new_game, player


@contextlib.contextmanager
def round_trips(pool: asyncpg.Pool) -> Iterator[list[int]]:
    """Counts the pool's connection checkouts: each statement on the pool is one."""
    count = [0]
    original = FairPool._acquire

    async def counting(self: FairPool, timeout: float | None) -> Any:  # noqa: ASYNC109
        if self is pool:
            count[0] += 1
        return await original(self, timeout)

    FairPool._acquire = counting  # type: ignore[method-assign]
    try:
        yield count
    finally:
        FairPool._acquire = original  # type: ignore[method-assign]


async def test_a_returning_player_costs_one_statement_as_get_me_does(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    for _ in range(3):
        await campaign(db, [await variant(db), await variant(db)])
    await campaign(db, [await variant(db)], exclusion_group="g")
    await campaign(db, [await variant(db)], exclusion_group="g")
    await settle(app)
    auth = await register(client)
    with round_trips(db) as first:
        assert len(await active(client, bearer(auth))) == 4
    assert first[0] == 2  # the read, then the new assignments
    with round_trips(db) as me:
        assert (await client.get("/api/v1/me", headers=bearer(auth))).status_code == 200
    with round_trips(db) as again:
        assert len(await active(client, bearer(auth))) == 4
    assert again[0] == me[0] == 1
    visitor_headers = visitor()
    await active(client, visitor_headers)
    with round_trips(db) as returning_visitor:
        assert len(await active(client, visitor_headers)) == 4
    assert returning_visitor[0] == 1


async def test_the_variant_is_sticky_after_the_weights_change(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    a = await variant(db, weight=1, payload="A")
    b = await variant(db, weight=0, payload="B")
    made = await campaign(db, [a, b])
    await settle(app)
    early = await register(client)
    early_visitor = visitor()
    for headers in (bearer(early), early_visitor):
        assert [i["payload"] for i in await active(client, headers)] == ["A"]
    await db.execute(
        "UPDATE ab_rules SET rule = jsonb_set(rule, '{weight}', to_jsonb($2::float)) WHERE id = $1",
        a,
        0.0,
    )
    await db.execute("UPDATE ab_rules SET rule = jsonb_set(rule, '{weight}', '1') WHERE id = $1", b)
    await settle(app)
    for headers in (bearer(early), early_visitor):
        assert [i["payload"] for i in await active(client, headers)] == ["A"]
    late = await register(client)
    assert [i["payload"] for i in await active(client, bearer(late))] == ["B"]
    assert [i["payload"] for i in await active(client, visitor())] == ["B"]
    # An inactive variant takes no one new, and keeps those it has.
    await db.execute("UPDATE ab_rules SET active = false WHERE id = $1", b)
    await settle(app)
    assert [i["payload"] for i in await active(client, bearer(late))] == ["B"]
    assert await active(client, visitor()) == []
    assert len(await log_rows(db, made)) == 4


async def test_fifty_concurrent_first_requests_log_one_row(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    variants = [await variant(db, payload=n) for n in range(4)]
    made = await campaign(db, variants)
    grouped = [await campaign(db, [await variant(db)], exclusion_group="one") for _ in range(3)]
    await settle(app)
    auth = await register(client)
    anonymous = visitor()
    for headers in (bearer(auth), anonymous):
        answers = await asyncio.gather(*(active(client, headers) for _ in range(50)))
        assert all(answer == answers[0] for answer in answers)
        shown = ids(answers[0])
        assert shown[0] == made and len(shown) == 2 and shown[1] in grouped
    rows = await log_rows(db, made)
    assert len(rows) == 2
    assert {r["user_id"] for r in rows} == {uuid.UUID(auth["user"]["id"]), None}
    in_group = await db.fetch(
        "SELECT user_id, anonymous_id FROM ab_experiment_log WHERE exclusion_group = 'one'"
    )
    assert len(in_group) == 2


async def test_exclusion_groups_never_share_a_player(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    members = [await campaign(db, [await variant(db)], exclusion_group="spring") for _ in range(3)]
    free = await campaign(db, [await variant(db)])
    await settle(app)
    seen: dict[uuid.UUID, int] = dict.fromkeys(members, 0)
    for _ in range(60):
        shown = ids(await active(client, visitor()))
        assert shown[-1] == free and len(shown) == 2  # in creation order
        seen[shown[0]] += 1
    assert all(count > 5 for count in seen.values()), seen  # about a third each
    # A player in one member keeps it, and gets no other member even when theirs stops
    # matching.
    auth = await register(client)
    (mine, _) = ids(await active(client, bearer(auth)))
    await db.execute("UPDATE campaigns SET active = false WHERE id = $1", mine)
    await settle(app)
    assert ids(await active(client, bearer(auth))) == [free]
    user_rows = await db.fetch(
        "SELECT campaign_id FROM ab_experiment_log WHERE user_id = $1 AND exclusion_group = $2",
        uuid.UUID(auth["user"]["id"]),
        "spring",
    )
    assert [r["campaign_id"] for r in user_rows] == [mine]


async def test_an_assignment_decided_on_a_stale_exclusion_group_is_not_logged(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # A process decides on its snapshot; a group change committed since must not leave a
    # row in the old group (it would keep the player out of, or let them into, the wrong
    # campaigns). The request answers without the campaign; the next, with the new group.
    made = await campaign(db, [await variant(db)], exclusion_group="spring")
    await settle(app)
    await db.execute("UPDATE campaigns SET exclusion_group = 'summer' WHERE id = $1", made)
    who = visitor()
    assert ids(await active(client, who)) == []
    assert await log_rows(db, made) == []
    await settle(app)
    assert ids(await active(client, who)) == [made]
    groups = await db.fetch(
        "SELECT exclusion_group FROM ab_experiment_log WHERE campaign_id = $1", made
    )
    assert [r["exclusion_group"] for r in groups] == ["summer"]


async def test_an_assignment_waits_for_a_group_change_in_progress_and_is_not_logged(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    made = await campaign(db, [await variant(db)], exclusion_group="spring")
    await settle(app)
    async with db.acquire() as admin, admin.transaction():
        # What PATCH does: the campaign's row FOR UPDATE, then the change.
        await admin.execute("SELECT 1 FROM campaigns WHERE id = $1 FOR UPDATE", made)
        await admin.execute("UPDATE campaigns SET exclusion_group = 'summer' WHERE id = $1", made)
        arriving = asyncio.create_task(active(client, visitor()))
        await asyncio.sleep(0.3)
        assert not arriving.done()  # it waits for the change
    assert ids(await arriving) == []  # decided on "spring": not shown, not logged
    assert await log_rows(db, made) == []


async def test_a_group_change_waits_for_an_assignment_in_progress_and_sees_it(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    made = await campaign(db, [chosen := await variant(db)], exclusion_group="spring")
    marketer = bearer(await user_with_roles(client, db, "marketer"))
    async with db.acquire() as player, player.transaction():
        # What an assignment does: the campaign's row KEY SHARE, then the log row.
        await player.execute("SELECT 1 FROM campaigns WHERE id = $1 FOR KEY SHARE", made)
        await player.execute(
            "INSERT INTO ab_experiment_log (id, campaign_id, anonymous_id, variant_id, "
            "exclusion_group) VALUES ($1, $2, $3, $4, 'spring')",
            uuid.uuid4(),
            made,
            uuid.uuid4(),
            chosen,
        )
        changing = asyncio.create_task(
            client.patch(
                f"/api/v1/admin/campaigns/{made}",
                json={"exclusionGroup": "summer"},
                headers={**marketer, "If-Match": "*"},
            )
        )
        await asyncio.sleep(0.3)
        assert not changing.done()  # it waits for the assignment
    refused = await changing
    assert refused.status_code == 409, refused.text
    assert await db.fetchval("SELECT exclusion_group FROM campaigns WHERE id = $1", made) == (
        "spring"
    )


async def test_coverage_leaves_players_out_without_logging_them(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    nobody = await campaign(db, [await variant(db)], coverage=0.0)
    half = await campaign(db, [await variant(db)], coverage=0.5)
    await settle(app)
    shown = 0
    for _ in range(80):
        found = ids(await active(client, visitor()))
        assert nobody not in found
        shown += half in found
    assert 20 < shown < 60
    assert await log_rows(db, nobody) == []
    assert len(await log_rows(db, half)) == shown


# --- conversions -----------------------------------------------------------------------------


async def test_a_conversion_is_recorded_once(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    chosen = await variant(db)
    made = await campaign(db, [chosen])
    elsewhere = await campaign(db, [await variant(db)], countries=["GB"])
    await settle(app)
    user, headers = await player(client)
    url = f"/api/v1/campaigns/{made}/conversions"
    # Not in the campaign yet (never evaluated), and never in one that does not match.
    assert (await client.post(url, json={}, headers=headers)).status_code == 409
    assert ids(await active(client, headers)) == [made]
    other = await client.post(
        f"/api/v1/campaigns/{elsewhere}/conversions", json={}, headers=headers
    )
    assert other.status_code == 409
    assert other.json()["type"].endswith("not-in-campaign")
    unknown = await client.post(
        f"/api/v1/campaigns/{uuid.uuid4()}/conversions", json={}, headers=headers
    )
    assert unknown.status_code == 404

    answers = await asyncio.gather(
        *(
            client.post(url, json={"event": "purchase", "value": 4.99}, headers=headers)
            for _ in range(10)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201]
    bodies = [a.json() for a in answers]
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0]["variantId"] == str(chosen) and bodies[0]["userId"] == user
    assert bodies[0]["event"] == "purchase" and bodies[0]["value"] == 4.99
    repeat = await client.post(url, json={"event": "refund"}, headers=headers)
    assert repeat.status_code == 200 and repeat.json() == bodies[0]
    (row,) = await log_rows(db, made)
    assert row["conversion_name"] == "purchase"
    assert row["conversion_event"] is not None
    assert row["conversion_value"] == Decimal("4.99")
    bad = await client.post(url, json={"value": "many"}, headers=headers)
    assert bad.status_code == 422


async def test_a_game_server_records_a_conversion_for_a_player(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = bearer(await user_with_roles(client, db, "admin"))
    game = await new_game(client, admin)
    other_game = await new_game(client, admin)
    open_to_all = await campaign(db, [await variant(db)])
    in_other_game = await campaign(db, [await variant(db)], segment={"gameId": other_game.id})
    await settle(app)
    user, headers = await player(client)
    await active(client, headers)

    def url(campaign_id: uuid.UUID, who: str = user, game_id: str = game.id) -> str:
        return f"/api/v1/games/{game_id}/players/{who}/campaigns/{campaign_id}/conversions"

    first = await client.post(url(open_to_all), json={"event": "level-5"}, headers=game.server)
    assert first.status_code == 201, first.text
    again = await client.post(url(open_to_all), json={}, headers=game.server)
    assert again.status_code == 200 and again.json() == first.json()
    mine = await client.post(
        f"/api/v1/campaigns/{open_to_all}/conversions", json={}, headers=headers
    )
    assert mine.status_code == 200 and mine.json() == first.json()
    # A campaign of another game, another game's key, a player who does not exist.
    assert (await client.post(url(in_other_game), json={}, headers=game.server)).status_code == 404
    wrong_key = await client.post(
        url(open_to_all, game_id=other_game.id), json={}, headers=game.server
    )
    assert wrong_key.status_code == 404
    nobody = await client.post(
        url(open_to_all, who=str(uuid.uuid4())), json={}, headers=game.server
    )
    assert nobody.status_code == 404
    token = await client.post(url(open_to_all), json={}, headers=headers)
    assert token.status_code == 403


# --- carry-over ------------------------------------------------------------------------------


async def test_a_visitors_variants_pass_to_the_account_on_registration_and_login(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    variants = [await variant(db, payload=n) for n in range(8)]
    spread = await campaign(db, variants)
    grouped = [await campaign(db, [await variant(db)], exclusion_group="g") for _ in range(4)]
    await settle(app)

    # Registration: every row of the visitor passes.
    anonymous = visitor()
    before = await active(client, anonymous)
    auth = await register(client, headers=anonymous)
    assert await active(client, bearer(auth)) == before
    user_id = uuid.UUID(auth["user"]["id"])
    rows = await db.fetch("SELECT * FROM ab_experiment_log WHERE user_id = $1", user_id)
    assert len(rows) == 2 and all(r["anonymous_id"] is not None for r in rows)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM ab_experiment_log WHERE user_id IS NULL AND anonymous_id = $1",
            uuid.UUID(anonymous["X-Anonymous-Id"]),
        )
        == 0
    )

    # Login on another device: the account's own rows win where it has them; the
    # visitor's others pass.
    fresh = await campaign(db, [await variant(db)])
    await settle(app)
    device = visitor()
    seen_there = ids(await active(client, device))
    assert fresh in seen_there
    again = await login(client, auth["user"]["email"], **device)
    mine = ids(await active(client, bearer(again)))
    assert mine[0] == spread and fresh in mine
    assert [i for i in mine if i in grouped] == [i for i in ids(before) if i in grouped]
    rows = await db.fetch("SELECT campaign_id FROM ab_experiment_log WHERE user_id = $1", user_id)
    assert sorted(r["campaign_id"] for r in rows) == sorted(mine)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM ab_experiment_log WHERE anonymous_id = $1 AND user_id IS NULL",
            uuid.UUID(device["X-Anonymous-Id"]),
        )
        == 0
    )
    # A malformed header does not stand in the way of a login.
    assert (
        await client.post(
            "/api/v1/auth/login",
            json={"email": auth["user"]["email"], "password": auth["password"]},
            headers={"X-Anonymous-Id": "not-a-uuid"},
        )
    ).status_code == 200


# --- the client's address --------------------------------------------------------------------


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # No trusted proxies (the default): the peer, 8.8.8.8 (US), is the client.
    british = await campaign(db, [await variant(db)], countries=["GB"])
    american = await campaign(db, [await variant(db)], countries=["US"])
    ranged = await campaign(db, [await variant(db)], ip_ranges=["81.2.69.0/24"])
    await settle(app)
    assert ids(await active(client, visitor(), ip=GB_IP)) == [american]
    assert british and ranged


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": ["8.8.8.0/24"]}])
async def test_forwarded_for_from_a_trusted_proxy_is_honoured(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    british = await campaign(db, [await variant(db)], countries=["GB"])
    await campaign(db, [await variant(db)], countries=["US"])
    ranged = await campaign(db, [await variant(db)], ip_ranges=["81.2.69.0/24"])
    await settle(app)
    # The right-most untrusted hop is the client; what it claims further left is not.
    assert ids(await active(client, visitor(), ip=f"9.9.9.9, {GB_IP}")) == [british, ranged]
