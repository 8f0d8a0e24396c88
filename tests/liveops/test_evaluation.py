"""GET /api/v1/campaigns/active through HTTP: which campaigns a request matches (IP ranges
v4 and v6, country, device, languages, schedule, segments) and what each answer holds.

The test client's peer is 8.8.8.8, trusted as a proxy here, so X-Forwarded-For sets the
client's address (tests/liveops/test_evaluation_assignment.py checks that an untrusted
peer's is ignored)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.kit.time import utcnow
from tests.factories import bearer, register
from tests.liveops.evaluation_support import (
    DE_IP,
    DE_IP6,
    GB_IP,
    IPHONE,
    NL_IP,
    WINDOWS,
    active,
    campaign,
    eventually,
    ids,
    settle,
    variant,
    visitor,
)
from tests.progress.support import achievement, player, report, world


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"trusted_proxies": ["8.8.8.0/24"]}


async def test_ip_ranges_match_ipv4_ipv6_and_ipv4_mapped_addresses(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    v4 = await campaign(db, [await variant(db)], ip_ranges=["81.2.69.0/24", "10.0.0.0/8"])
    v6 = await campaign(db, [await variant(db)], ip_ranges=["2a01:4f8::/32"])
    both = await campaign(db, [await variant(db)], ip_ranges=["81.2.69.160/32", "2a01:4f8::1/128"])
    await settle(app)
    who = visitor()
    assert ids(await active(client, who, ip=GB_IP)) == [v4, both]
    assert ids(await active(client, who, ip="::ffff:" + GB_IP)) == [v4, both]
    assert ids(await active(client, who, ip="81.2.69.1")) == [v4]
    assert ids(await active(client, who, ip=DE_IP6)) == [v6, both]
    assert ids(await active(client, who, ip="2a01:4f8:ffff::2")) == [v6]
    assert ids(await active(client, who, ip=DE_IP)) == []
    assert ids(await active(client, who, ip="2001:db8::1")) == []


async def test_countries_devices_and_languages(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    british = await campaign(db, [await variant(db)], countries=["GB", "NL"])
    mobile = await campaign(db, [await variant(db)], device_types=["MOBILE"])
    portuguese = await campaign(db, [await variant(db)], languages=["pt"])
    all_three = await campaign(
        db, [await variant(db)], countries=["DE"], device_types=["DESKTOP"], languages=["de"]
    )
    await settle(app)
    who = visitor()

    async def seen(ip: str, ua: str, **headers: str) -> list[uuid.UUID]:
        extra = {k.replace("_", "-"): v for k, v in headers.items()}
        return ids(await active(client, {**who, **extra}, ip=ip, user_agent=ua))

    assert await seen(GB_IP, WINDOWS) == [british]
    assert await seen(NL_IP, IPHONE) == [british, mobile]
    assert await seen(DE_IP, IPHONE, Accept_Language="pt-BR,en;q=0.5") == [mobile, portuguese]
    assert await seen(DE_IP, WINDOWS, Accept_Language="en, pt;q=0.1") == [portuguese]
    assert await seen(DE_IP, WINDOWS, Accept_Language="en, pt;q=0") == []
    assert await seen(DE_IP, WINDOWS, Accept_Language="de-AT") == [all_three]
    assert await seen(DE_IP6, WINDOWS, Accept_Language="de") == [all_three]
    assert await seen(DE_IP, "curl/8.0", Accept_Language="de") == []
    # ?language= wins over Accept-Language.
    sent = {**who, "Accept-Language": "en"}
    assert ids(await active(client, sent, ip=DE_IP, user_agent=WINDOWS, language="pt-BR")) == [
        portuguese
    ]
    await active(client, who, expect=422, language="not a tag")


async def test_schedules_are_half_open_and_need_no_reload(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    start = utcnow().replace(microsecond=0) + timedelta(hours=1)
    end = start + timedelta(hours=2)
    windowed = await campaign(db, [await variant(db)], start_at=start, end_at=end)
    ended = await campaign(db, [await variant(db)], end_at=utcnow() - timedelta(seconds=1))
    inactive = await campaign(db, [await variant(db)], active=False)
    await settle(app)
    held = app.state.liveops.current.by_id
    assert windowed in held and ended not in held and inactive not in held
    who = visitor()
    clock = app.state.liveops
    for moment, shown in [
        (start - timedelta(microseconds=1), []),
        (start, [windowed]),
        (end - timedelta(microseconds=1), [windowed]),
        (end, []),
    ]:
        clock.clock = lambda moment=moment: moment
        assert ids(await active(client, who)) == shown, moment


async def test_segments_read_the_players_progress(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    setup = await world(client, db)
    game = setup.game
    badge = await achievement(client, setup.admin, game)
    user, headers = await player(client)
    levelled = await campaign(
        db, [await variant(db)], segment={"gameId": game.id, "minPoints": 50, "maxLevel": 3}
    )
    badged = await campaign(
        db, [await variant(db)], segment={"gameId": game.id, "hasAchievement": badge["key"]}
    )
    other_game = await campaign(db, [await variant(db)], segment={"gameId": str(uuid.uuid4())})
    await settle(app)

    assert await active(client, headers) == []  # no progress in the game yet
    assert (await report(client, game, user, pointsDelta=10)).status_code == 200
    assert await active(client, headers) == []
    assert (await report(client, game, user, pointsDelta=40)).status_code == 200
    assert ids(await active(client, headers)) == [levelled]
    unlocked = await client.post(
        game.url(user, f"achievements/{badge['key']}"), headers=game.server
    )
    assert unlocked.status_code == 201, unlocked.text
    assert ids(await active(client, headers)) == [levelled, badged]
    assert (await report(client, game, user, level=4)).status_code == 200
    assert ids(await active(client, headers)) == [badged]  # above maxLevel: out, assigned or not
    # A visitor has no progress: no segment matches.
    assert await active(client, visitor()) == []
    assert other_game not in ids(await active(client, headers))


async def test_an_answer_holds_the_variant_its_payload_and_published_content(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    setup = await world(client, db)
    made = await client.post(
        "/api/v1/content",
        json={"type": "NEWS", "title": "Spring sale", "content": "Sale!"},
        headers=setup.admin,
    )
    news = made.json()
    assert (
        await client.post(f"/api/v1/content/{news['id']}/publish", headers=setup.admin)
    ).status_code == 200
    draft = await client.post(
        "/api/v1/content",
        json={"type": "NEWS", "title": "Not yet", "content": "Draft"},
        headers=setup.admin,
    )
    end = utcnow().replace(microsecond=0) + timedelta(days=3)
    payload = {"price": 4.99, "banner": "spring-b", "nested": {"list": [1, "two", None]}}
    only = await variant(db, payload=payload, content_ids=[uuid.UUID(setup.game.id)])
    made_campaign = await campaign(
        db, [only], content_ids=[uuid.UUID(news["id"]), uuid.UUID(draft.json()["id"])], end_at=end
    )
    await settle(app)
    game = (await client.get(f"/api/v1/content/{setup.game.id}", headers=setup.admin)).json()
    (item,) = await active(client, visitor())
    assert item == {
        "id": str(made_campaign),
        "variantId": str(only),
        "payload": payload,
        "content": [
            {
                "id": news["id"],
                "type": "NEWS",
                "title": "Spring sale",
                "slug": news["slug"],
                "locale": news["locale"],
            },
            {
                "id": setup.game.id,
                "type": "GAME",
                "title": game["title"],
                "slug": game["slug"],
                "locale": "en",
            },
        ],
        "endAt": end.isoformat().replace("+00:00", "Z"),
    }
    # A title changed: the snapshot follows the content's NOTIFY.
    changed = await client.patch(
        f"/api/v1/content/{news['id']}",
        json={"title": "Spring sale, last days"},
        headers={**setup.admin, "If-Match": "*"},
    )
    assert changed.status_code == 200, changed.text

    async def renamed() -> bool:
        (item,) = await active(client, visitor())
        return item["content"][0]["title"] == "Spring sale, last days"

    await eventually(renamed)


async def test_who_may_ask(app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    await campaign(db, [await variant(db)])
    await settle(app)
    missing = await client.get("/api/v1/campaigns/active")
    assert missing.status_code == 401 and "X-Anonymous-Id" in missing.json()["detail"]
    malformed = await client.get("/api/v1/campaigns/active", headers={"X-Anonymous-Id": "bob"})
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["field"] == "X-Anonymous-Id"
    assert malformed.json()["errors"][0]["location"] == "header"
    bad_token = await client.get(
        "/api/v1/campaigns/active", headers={"Authorization": "Bearer nonsense"}
    )
    assert bad_token.status_code == 401
    auth = await register(client)
    assert len(await active(client, bearer(auth))) == 1
    ended = await client.post("/api/v1/auth/logout", headers=bearer(auth))
    assert ended.status_code == 204
    await active(client, bearer(auth), expect=401)
