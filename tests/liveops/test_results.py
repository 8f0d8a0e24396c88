"""GET /api/v1/admin/campaigns/{id}/results and /results/daily: the counts, the figures, the
edges (no players, 0% and 100% variants, one variant, a variant no longer listed, unknown
campaign), and the trigger-kept counts against a plain count of the log through every kind
of change the log sees."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from tests.factories import register
from tests.liveops.results_support import (
    DAILY,
    RESULTS,
    campaign,
    counts,
    counts_from_log,
    daily_counts,
    daily_counts_from_log,
    experiment,
    marketer,
    players,
    rule,
)


async def results_of(
    client: httpx.AsyncClient, who: dict[str, str], campaign_id: uuid.UUID
) -> dict:  # type: ignore[type-arg]
    answer = await client.get(RESULTS.format(campaign_id), headers=who)
    assert answer.status_code == 200, answer.text
    body: dict = answer.json()  # type: ignore[type-arg]
    return body


async def test_results_per_variant_give_gbstats_figures(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    control = await rule(db, 1, "Control price")
    discount = await rule(db, 1, "Discount")
    campaign_id = await campaign(db, [control, discount], "Spring Promo")
    await players(db, campaign_id, control, 10000, 1000)
    await players(db, campaign_id, discount, 10000, 1100)

    body = await results_of(client, who, campaign_id)

    assert body["campaignId"] == str(campaign_id)
    assert body["name"] == "Spring Promo"
    assert body["confidenceLevel"] == 0.95 and body["sequentialTuning"] == 5000
    assert (body["assigned"], body["conversions"]) == (20000, 2100)
    assert body["computedAt"].endswith("Z")
    first, second = body["variants"]
    assert first["variantId"] == str(control) and first["name"] == "Control price"
    assert first["control"] is True and first["vsControl"] is None
    assert (first["assigned"], first["conversions"], first["conversionRate"]) == (10000, 1000, 0.1)
    assert first["weight"] == 1 and first["expectedShare"] == 0.5 and first["inCampaign"]
    low, high = first["conversionRateInterval"]["low"], first["conversionRateInterval"]["high"]
    assert low < 0.1 < high and high - low == pytest.approx(0.0118, abs=1e-3)
    assert second["control"] is False and second["name"] == "Discount"
    # gbstats 0.8.0 on these counts (tests/liveops/test_stats.py, "ten_vs_eleven").
    vs = second["vsControl"]
    assert vs["uplift"] == pytest.approx(0.09999999999999995, rel=1e-9)
    assert vs["upliftInterval"]["low"] == pytest.approx(0.010864708144846927, rel=1e-9)
    assert vs["upliftInterval"]["high"] == pytest.approx(0.189135291855153, rel=1e-9)
    assert vs["pValue"] == pytest.approx(0.027889528764600602, rel=1e-9)
    assert vs["chanceToBeatControl"] == pytest.approx(0.9860609494573318, rel=1e-9)
    assert vs["sequentialInterval"]["low"] == pytest.approx(-0.04220635376208545, rel=1e-9)
    assert vs["sequentialInterval"]["high"] == pytest.approx(0.24220635376208535, rel=1e-9)
    assert vs["sequentialPValue"] == pytest.approx(0.5490379443452079, rel=1e-9)
    assert vs["unavailable"] is None
    assert body["sampleRatio"] == {
        "pValue": 1.0,
        "mismatch": False,
        "threshold": 0.001,
        "unavailable": None,
    }


async def test_a_split_off_the_weights_is_flagged(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    balanced, _ = await experiment(db, [(5030, 400), (2460, 200), (2510, 210)], [2, 1, 1])
    skewed, _ = await experiment(db, [(5000, 400), (5400, 410)], [1, 1])

    ok = await results_of(client, who, balanced)
    assert [v["expectedShare"] for v in ok["variants"]] == [0.5, 0.25, 0.25]
    # gbstats check_srm([5030, 2460, 2510], [0.5, 0.25, 0.25]) (tests/liveops/test_stats.py)
    assert ok["sampleRatio"]["pValue"] == pytest.approx(0.6505090947233165, rel=1e-9)
    assert ok["sampleRatio"]["mismatch"] is False
    off = await results_of(client, who, skewed)
    assert off["sampleRatio"]["pValue"] == pytest.approx(8.769942375590228e-05, rel=1e-9)
    assert off["sampleRatio"]["mismatch"] is True


async def test_a_campaign_without_players_answers_zeros_and_says_why(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    campaign_id, variants = await experiment(db, [(0, 0), (0, 0)])

    body = await results_of(client, who, campaign_id)
    assert (body["assigned"], body["conversions"]) == (0, 0)
    assert [v["variantId"] for v in body["variants"]] == [str(v) for v in variants]
    for variant in body["variants"]:
        assert variant["assigned"] == 0 and variant["conversionRate"] is None
        assert variant["conversionRateInterval"] is None
    assert body["variants"][1]["vsControl"]["unavailable"] == "no players in the control yet"
    assert body["variants"][1]["vsControl"]["pValue"] is None
    assert body["sampleRatio"]["pValue"] is None and body["sampleRatio"]["mismatch"] is False
    assert body["sampleRatio"]["unavailable"] == "no players yet"

    daily = await client.get(DAILY.format(campaign_id), headers=who)
    assert daily.status_code == 200, daily.text
    assert daily.json()["days"] == []
    assert [v["control"] for v in daily.json()["variants"]] == [True, False]


async def test_variants_at_zero_and_at_every_conversion_have_rates_but_no_interval(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    campaign_id, _ = await experiment(db, [(500, 50), (400, 0), (30, 30)])

    _, none, every = (await results_of(client, who, campaign_id))["variants"]
    assert none["conversionRate"] == 0.0
    assert none["conversionRateInterval"]["low"] == 0.0
    assert 0 < none["conversionRateInterval"]["high"] < 0.01
    assert none["vsControl"]["uplift"] == -1.0
    assert none["vsControl"]["upliftInterval"] is None and none["vsControl"]["pValue"] is None
    assert "converts at 0%" in none["vsControl"]["unavailable"]
    assert every["conversionRate"] == 1.0 and every["conversionRateInterval"]["high"] == 1.0
    assert every["vsControl"]["uplift"] == pytest.approx(9.0)
    assert every["vsControl"]["chanceToBeatControl"] is None
    assert "converts at 100%" in every["vsControl"]["unavailable"]


async def test_a_control_without_conversions_gives_no_uplift(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    campaign_id, _ = await experiment(db, [(300, 0), (300, 12)])
    variant = (await results_of(client, who, campaign_id))["variants"][1]
    assert variant["conversionRate"] == 0.04
    assert variant["vsControl"]["uplift"] is None
    assert "no conversions in the control" in variant["vsControl"]["unavailable"]


async def test_a_campaign_of_one_variant_has_no_comparison_and_no_split_to_check(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    campaign_id, _ = await experiment(db, [(120, 30)])
    body = await results_of(client, who, campaign_id)
    [only] = body["variants"]
    assert only["control"] is True and only["vsControl"] is None
    assert only["expectedShare"] == 1.0 and only["conversionRate"] == 0.25
    assert body["sampleRatio"]["pValue"] is None
    assert body["sampleRatio"]["unavailable"] == "one variant: there is no split to check"


async def test_a_variant_no_longer_listed_keeps_its_players_outside_the_split_check(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    campaign_id, (a, b, c) = await experiment(db, [(1000, 100), (1000, 110), (200, 30)])
    await db.execute("UPDATE campaigns SET ab_variants = $2 WHERE id = $1", campaign_id, [a, b])

    body = await results_of(client, who, campaign_id)
    assert [(v["variantId"], v["inCampaign"]) for v in body["variants"]] == [
        (str(a), True),
        (str(b), True),
        (str(c), False),
    ]
    dropped = body["variants"][2]
    assert dropped["expectedShare"] is None and dropped["assigned"] == 200
    assert dropped["vsControl"]["uplift"] == pytest.approx(0.5)
    assert body["assigned"] == 2200
    assert body["sampleRatio"]["pValue"] == 1.0  # 1000 against 1000: c is not in it

    daily = (await client.get(DAILY.format(campaign_id), headers=who)).json()
    assert [v["inCampaign"] for v in daily["variants"]] == [True, True, False]


async def test_a_variant_without_a_numeric_weight_leaves_the_split_unchecked(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    campaign_id, _ = await experiment(db, [(100, 10), (100, 12)], [1, None])
    body = await results_of(client, who, campaign_id)
    assert body["variants"][1]["weight"] is None and body["variants"][1]["expectedShare"] is None
    assert body["sampleRatio"]["pValue"] is None
    assert "no weight" in body["sampleRatio"]["unavailable"]


async def test_an_unknown_campaign_is_404_on_both(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    for path in (RESULTS, DAILY):
        answer = await client.get(path.format(uuid.uuid4()), headers=who)
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].endswith("campaign-not-found")


async def test_players_and_marketers_only(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    campaign_id, _ = await experiment(db, [(10, 1), (10, 2)])
    player = await register(client)
    for path in (RESULTS, DAILY):
        url = path.format(campaign_id)
        assert (await client.get(url)).status_code == 401
        refused = await client.get(
            url, headers={"Authorization": f"Bearer {player['accessToken']}"}
        )
        assert refused.status_code == 403


async def test_daily_counts_assignments_and_conversions_on_their_own_utc_days(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    who = await marketer(client, db)
    control, variant = await rule(db), await rule(db)
    campaign_id = await campaign(db, [control, variant])
    day = datetime(2026, 3, 1, tzinfo=UTC)
    last_second = day + timedelta(hours=23, minutes=59, seconds=59)
    # 3 control players on 1 March (the last second of it, in UTC), one converting on 3 March;
    # 2 variant players at midnight on 2 March, both converting the same day; none on 4 March;
    # one control player on 5 March.
    await players(db, campaign_id, control, 2, 0, last_second)
    await players(db, campaign_id, control, 1, 1, last_second, day + timedelta(days=2))
    await players(db, campaign_id, variant, 2, 2, day + timedelta(days=1))
    await players(db, campaign_id, control, 1, 0, day + timedelta(days=4, hours=12))

    answer = await client.get(DAILY.format(campaign_id), headers=who)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["campaignId"] == str(campaign_id)
    assert [v["variantId"] for v in body["variants"]] == [str(control), str(variant)]
    table = [
        (
            d["day"],
            [
                (
                    v["assigned"],
                    v["conversions"],
                    v["cumulativeAssigned"],
                    v["cumulativeConversions"],
                )
                for v in d["variants"]
            ],
        )
        for d in body["days"]
    ]
    assert table == [
        ("2026-03-01", [(3, 0, 3, 0), (0, 0, 0, 0)]),
        ("2026-03-02", [(0, 0, 3, 0), (2, 2, 2, 2)]),
        ("2026-03-03", [(0, 1, 3, 1), (0, 0, 2, 2)]),
        ("2026-03-04", [(0, 0, 3, 1), (0, 0, 2, 2)]),
        ("2026-03-05", [(1, 0, 4, 1), (0, 0, 2, 2)]),
    ]
    totals = await results_of(client, who, campaign_id)
    assert [(v["assigned"], v["conversions"]) for v in totals["variants"]] == [(4, 1), (2, 2)]


async def test_the_counts_equal_a_count_of_the_log_through_every_change(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    a, b = await rule(db), await rule(db)
    first = await campaign(db, [a, b])
    second = await campaign(db, [a, b])
    day = datetime(2026, 5, 1, 22, tzinfo=UTC)
    await players(db, first, a, 40, 5, day)
    await players(db, first, b, 35, 0, day + timedelta(hours=3))
    await players(db, second, a, 10, 10, day, day + timedelta(days=3))
    # Players with accounts, as the evaluation writes them: one row per statement.
    users = [uuid.UUID((await register(client))["user"]["id"]) for _ in range(3)]
    for user_id in users:
        await db.execute(
            "INSERT INTO ab_experiment_log (id, campaign_id, user_id, variant_id) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            uuid.uuid4(),
            first,
            user_id,
            b,
        )
    # A repeat of an assignment that exists inserts nothing, and counts nothing.
    await db.execute(
        "INSERT INTO ab_experiment_log (id, campaign_id, user_id, variant_id) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        uuid.uuid4(),
        first,
        users[0],
        a,
    )
    assert await counts(db, first) == await counts_from_log(db, first)

    changes = [
        # conversions, on a later day
        "UPDATE ab_experiment_log SET conversion_event = assigned_at + interval '1 day' "
        "WHERE conversion_event IS NULL AND campaign_id = '{first}' AND variant_id = '{b}'",
        # a visitor's rows passing to an account: nothing counted changes
        "UPDATE ab_experiment_log SET anonymous_id = gen_random_uuid()",
        # a conversion taken back, one moved to another day
        "UPDATE ab_experiment_log SET conversion_event = NULL "
        "WHERE id = (SELECT id FROM ab_experiment_log WHERE conversion_event IS NOT NULL "
        "ORDER BY id LIMIT 1)",
        "UPDATE ab_experiment_log SET conversion_event = conversion_event + interval '5 days' "
        "WHERE id = (SELECT id FROM ab_experiment_log WHERE conversion_event IS NOT NULL "
        "ORDER BY id DESC LIMIT 1)",
        # a row moved to another variant and day
        "UPDATE ab_experiment_log SET variant_id = '{a}', assigned_at = assigned_at - "
        "interval '2 days' WHERE id = (SELECT id FROM ab_experiment_log "
        "WHERE variant_id = '{b}' ORDER BY id LIMIT 1)",
        # rows deleted, one by one and many at once
        "DELETE FROM ab_experiment_log WHERE id = (SELECT id FROM ab_experiment_log "
        "ORDER BY id DESC LIMIT 1)",
        "DELETE FROM ab_experiment_log WHERE campaign_id = '{second}' AND conversion_event < "
        "'2026-05-04T12:00:00Z'",
        # an account deleted: its rows go by cascade
        "DELETE FROM users WHERE id = '{user}'",
    ]
    for change in changes:
        await db.execute(change.format(first=first, second=second, a=a, b=b, user=users[1]))
        assert await daily_counts(db) == await daily_counts_from_log(db), change
    assert await counts(db, first) == await counts_from_log(db, first)

    # A campaign deleted takes its counts with it; the other's stay right.
    await db.execute("DELETE FROM campaigns WHERE id = $1", second)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM ab_experiment_counts WHERE campaign_id = $1", second
        )
        == 0
    )
    assert await daily_counts(db) == await daily_counts_from_log(db)
    await db.execute("TRUNCATE ab_experiment_log")
    assert await db.fetchval("SELECT count(*) FROM ab_experiment_counts") == 0


async def test_concurrent_writers_add_up(db: asyncpg.Pool) -> None:
    a, b = await rule(db), await rule(db)
    campaign_id = await campaign(db, [a, b])

    async def writer(variant_id: uuid.UUID) -> None:
        async with db.acquire() as conn:
            for _ in range(25):
                async with conn.transaction():
                    await players(conn, campaign_id, variant_id, 2, 1)

    await asyncio.gather(*(writer(v) for v in (a, b) * 4))
    assert await counts(db, campaign_id) == {a: (200, 100), b: (200, 100)}
    assert await counts(db, campaign_id) == await counts_from_log(db, campaign_id)
    slots = await db.fetchval(
        "SELECT count(DISTINCT slot) FROM ab_experiment_counts WHERE campaign_id = $1",
        campaign_id,
    )
    assert slots > 1  # several connections wrote to rows of their own
