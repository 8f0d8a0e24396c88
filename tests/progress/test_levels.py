"""Level thresholds: with them the level follows experience or points, and a level-up
unlocks level criteria and tells the player; without them game servers set the level."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from gameportal.progress import rules
from tests.progress.support import achievement, in_app, player, report, world


def _levels_url(game_id: str) -> str:
    return f"/api/v1/admin/games/{game_id}/levels"


async def test_editors_set_read_and_remove_thresholds(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    url = _levels_url(w.game.id)
    assert (await client.get(url, headers=w.admin)).status_code == 404
    put = await client.put(
        url, json={"basis": "experience", "thresholds": [100, 250]}, headers=w.admin
    )
    assert put.status_code == 200, put.text
    assert put.json()["basis"] == "experience" and put.json()["thresholds"] == [100, 250]
    replaced = await client.put(url, json={"basis": "points", "thresholds": [10]}, headers=w.admin)
    assert replaced.json()["thresholds"] == [10]
    assert (await client.get(url, headers=w.admin)).json()["basis"] == "points"
    assert (await client.delete(url, headers=w.admin)).status_code == 204
    assert (await client.delete(url, headers=w.admin)).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"basis": "experience", "thresholds": [100, 100]},
        {"basis": "experience", "thresholds": [200, 100]},
        {"basis": "experience", "thresholds": []},
        {"basis": "experience", "thresholds": [0]},
        {"basis": "kills", "thresholds": [1]},
    ],
)
async def test_thresholds_are_checked(
    client: httpx.AsyncClient, db: asyncpg.Pool, body: dict[str, object]
) -> None:
    w = await world(client, db)
    refused = await client.put(_levels_url(w.game.id), json=body, headers=w.admin)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"].split(".")[0] in ("thresholds", "basis")


async def test_the_level_follows_thresholds_and_a_level_up_notifies_and_unlocks(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    await client.put(
        _levels_url(w.game.id),
        json={"basis": "experience", "thresholds": [100, 250, 500]},
        headers=w.admin,
    )
    veteran = await achievement(
        client,
        w.admin,
        w.game,
        key="veteran",
        title="Veteran",
        criteria={"type": "level", "min": 3},
    )
    user_id, _ = await player(client)
    first = await report(client, w.game, user_id, experienceDelta=50)
    assert first.json()["level"] == 1
    up = await report(client, w.game, user_id, experienceDelta=60)
    assert up.json()["level"] == 2 and up.json()["unlocked"] == []
    two = await report(client, w.game, user_id, experienceDelta=200)
    assert two.json()["level"] == 3
    assert [u["id"] for u in two.json()["unlocked"]] == [veteran["id"]]
    game_title = (await client.get(f"/api/v1/content/{w.game.id}", headers=w.admin)).json()["title"]
    subjects = [m["subject"] for m in await in_app(db, user_id)]
    assert subjects == [
        f"Level 2 reached in {game_title}",
        "Achievement unlocked: Veteran",
        f"Level 3 reached in {game_title}",
    ]
    same = await report(client, w.game, user_id, experienceDelta=1)
    assert same.json()["level"] == 3
    assert len(await in_app(db, user_id)) == 3


async def test_points_thresholds_count_rewards(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    w = await world(client, db)
    await client.put(
        _levels_url(w.game.id), json={"basis": "points", "thresholds": [100]}, headers=w.admin
    )
    await achievement(client, w.admin, w.game, key="gift", points=100)
    user_id, _ = await player(client)
    unlocked = await client.post(w.game.url(user_id, "achievements/gift"), headers=w.game.server)
    assert unlocked.status_code == 201
    assert unlocked.json()["progress"]["level"] == 2


async def test_a_game_with_thresholds_refuses_a_level(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    await client.put(
        _levels_url(w.game.id), json={"basis": "points", "thresholds": [10]}, headers=w.admin
    )
    refused = await report(client, w.game, user_id, pointsDelta=1, level=5)
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["field"] == "level"


async def test_without_thresholds_the_server_sets_the_level(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    await achievement(client, w.admin, w.game, key="l5", criteria={"type": "level", "min": 5})
    user_id, _ = await player(client)
    five = await report(client, w.game, user_id, level=5)
    assert five.json()["level"] == 5 and five.json()["unlocked"][0]["key"] == "l5"
    down = await report(client, w.game, user_id, level=2)
    assert down.json()["level"] == 2 and down.json()["unlocked"] == []
    # One level-up (to 5), one unlock; going down tells nobody.
    assert len(await in_app(db, user_id)) == 2


def test_rules_go_round_until_nothing_more_unlocks() -> None:
    import uuid

    def rule(key: str, points: int, **criteria: object) -> rules.Rule:
        return rules.Rule(uuid.uuid4(), key, key, "", points, dict(criteria) or None)

    chain = [
        rule("stat", 40, type="stat", stat="wins", min=1),
        rule("rich", 10, type="points", min=50),
        rule("lvl3", 0, type="level", min=3),
        rule("never", 0, type="stat", stat="losses", min=1),
    ]
    levels = rules.Levels(basis="points", thresholds=[30, 60])
    start = rules.State(level=1, experience=0, points=10, stats={})
    outcome = rules.advance(
        start, rules.Change(stats={"wins": 1}), levels=levels, rules=chain, held=set()
    )
    assert [r.key for r in outcome.unlocked] == ["stat", "rich", "lvl3"]
    assert outcome.state.points == 60 and outcome.state.level == 3 and outcome.levelled_up
    again = rules.advance(
        outcome.state,
        rules.Change(stats={"wins": 1}),
        levels=levels,
        rules=chain,
        held={r.id for r in outcome.unlocked},
    )
    assert again.unlocked == [] and not again.levelled_up
    granted = rules.advance(
        start, rules.Change(), levels=None, rules=[], held=set(), grant=chain[3]
    )
    assert granted.unlocked == [chain[3]]
