"""Personalized offers on players' progress (set by their evaluation, brought in step with
campaign changes by the worker's pass), and the marketers' preview."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from gameportal.kit.time import utcnow
from gameportal.liveops.offers import RefreshOffers
from tests.factories import bearer, user_with_roles
from tests.liveops.evaluation_support import (
    GB_IP,
    IPHONE,
    WINDOWS,
    active,
    campaign,
    ids,
    settle,
    variant,
)
from tests.progress.support import new_game, player, report


async def _offers(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, list[str]]:
    page = await client.get("/api/v1/me/progress", headers=headers)
    assert page.status_code == 200, page.text
    return {p["gameId"]: p["personalizedOffers"] for p in page.json()["items"]}


async def test_offers_follow_the_players_evaluation_and_the_campaigns(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = bearer(await user_with_roles(client, db, "admin"))
    first, second = await new_game(client, admin), await new_game(client, admin)
    user, headers = await player(client)
    for game in (first, second):
        assert (await report(client, game, user, pointsDelta=10)).status_code == 200
    everywhere = await campaign(db, [await variant(db)])
    in_first = await campaign(db, [await variant(db)], segment={"gameId": first.id, "maxLevel": 2})
    british = await campaign(db, [await variant(db)], countries=["GB"])
    await settle(app)
    assert await _offers(client, headers) == {first.id: [], second.id: []}

    assert ids(await active(client, headers)) == [everywhere, in_first]
    assert await _offers(client, headers) == {
        first.id: sorted([str(everywhere), str(in_first)]),
        second.id: [str(everywhere)],
    }
    assert str(british) not in str(await _offers(client, headers))

    # The player's progress moves out of the segment: gone at their next evaluation.
    assert (await report(client, first, user, level=3)).status_code == 200
    assert ids(await active(client, headers)) == [everywhere]
    assert await _offers(client, headers) == {
        first.id: [str(everywhere)],
        second.id: [str(everywhere)],
    }
    assert (
        await report(client, first, user, level=2)
    ).status_code == 200  # back in (no thresholds)
    await active(client, headers)

    # Campaign changes reach the offers through the worker's pass, evaluation or not.
    refresh = RefreshOffers()
    await refresh(db)  # the first pass checks everything: nothing to change
    assert (await _offers(client, headers))[first.id] == sorted([str(everywhere), str(in_first)])
    await db.execute("UPDATE campaigns SET active = false WHERE id = $1", everywhere)
    await db.execute(
        "UPDATE campaigns SET targeting_rules = jsonb_set(targeting_rules, "
        "'{segment,minPoints}', '100') WHERE id = $1",
        in_first,
    )
    await refresh(db)
    assert await _offers(client, headers) == {first.id: [], second.id: []}
    # A window that closes needs no one to announce it.
    await db.execute(
        "UPDATE campaigns SET active = true, end_at = $2 WHERE id = $1",
        everywhere,
        utcnow() + timedelta(seconds=1),
    )
    await refresh(db)
    assert await _offers(client, headers) == {
        first.id: [str(everywhere)],
        second.id: [str(everywhere)],
    }
    await db.execute(
        "UPDATE campaigns SET end_at = $2 WHERE id = $1",
        everywhere,
        utcnow() - timedelta(seconds=1),
    )
    await refresh(db)
    assert await _offers(client, headers) == {first.id: [], second.id: []}


async def _preview(
    client: httpx.AsyncClient, headers: dict[str, str], campaign_id: uuid.UUID, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/admin/campaigns/{campaign_id}/preview", json=body, headers=headers
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_the_preview_explains_each_rule(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    marketer = bearer(await user_with_roles(client, db, "marketer"))
    admin = bearer(await user_with_roles(client, db, "admin"))
    game = await new_game(client, admin)
    user, headers = await player(client)
    assert (await report(client, game, user, pointsDelta=5)).status_code == 200
    made = await campaign(
        db,
        [await variant(db)],
        countries=["GB"],
        ip_ranges=["81.2.69.0/24", "2a01:4f8::/32"],
        device_types=["MOBILE"],
        languages=["en"],
        segment={"gameId": game.id, "minPoints": 10},
        active=False,
    )

    found = await _preview(
        client, marketer, made, ip=GB_IP, userAgent=IPHONE, language="en-GB", userId=user
    )
    rules = {r["kind"]: r for r in found["rules"]}
    assert found["matched"] is False
    assert found["facts"] == {
        "ip": GB_IP,
        "country": "GB",
        "deviceType": "MOBILE",
        "languages": ["en"],
    }
    assert not rules["active"]["matched"]
    assert rules["countries"]["matched"] and "GB" in rules["countries"]["detail"]
    assert rules["ipRanges"]["matched"]
    assert rules["deviceTypes"]["matched"] and rules["languages"]["matched"]
    assert not rules["segment"]["matched"] and "minPoints 10" in rules["segment"]["detail"]
    assert found["assignment"]["logged"] is False and found["assignment"]["variantId"]

    assert (await report(client, game, user, pointsDelta=5)).status_code == 200
    await db.execute("UPDATE campaigns SET active = true WHERE id = $1", made)
    await settle(app)
    found = await _preview(
        client, marketer, made, ip="::ffff:" + GB_IP, userAgent=IPHONE, language="en", userId=user
    )
    assert found["matched"] is True and all(r["matched"] for r in found["rules"])

    # The player's own evaluation logs them; the preview then shows their variant.
    sent = {**headers, "User-Agent": IPHONE, "Accept-Language": "en"}
    assert ids(await active(client, sent)) == []  # 8.8.8.8: the US, outside the ranges
    await db.execute(
        "INSERT INTO ab_experiment_log (id, campaign_id, user_id, variant_id) "
        "SELECT gen_random_uuid(), $1, $2, ab_variants[1] FROM campaigns WHERE id = $1",
        made,
        uuid.UUID(user),
    )
    found = await _preview(client, marketer, made, ip="2a01:4f8::7", userAgent=WINDOWS)
    rules = {r["kind"]: r for r in found["rules"]}
    assert rules["ipRanges"]["matched"] and not rules["countries"]["matched"]  # DE
    assert not rules["deviceTypes"]["matched"] and not rules["languages"]["matched"]
    assert found["assignment"] is None
    found = await _preview(client, marketer, made, ip=GB_IP, userAgent=IPHONE, userId=user)
    assert found["assignment"]["logged"] is True

    missing = await client.post(
        f"/api/v1/admin/campaigns/{uuid.uuid4()}/preview", json={"ip": GB_IP}, headers=marketer
    )
    assert missing.status_code == 404
    nobody = await client.post(
        f"/api/v1/admin/campaigns/{made}/preview",
        json={"ip": GB_IP, "userId": str(uuid.uuid4())},
        headers=marketer,
    )
    assert nobody.status_code == 404
    bad = await client.post(
        f"/api/v1/admin/campaigns/{made}/preview", json={"ip": "10.0.0.300"}, headers=marketer
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "ip"
