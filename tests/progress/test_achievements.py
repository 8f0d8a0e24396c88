"""Achievements: editors define them; game servers unlock them (or criteria do), exactly
once, with one reward and one notification; players see the catalogue with unlock rates,
hidden ones masked until theirs."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.factories import bearer, user_with_roles
from tests.progress.support import achievement, in_app, player, report, world

URL = "/api/v1/admin/achievements"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"achievement_stats_seconds": 0}  # unlock rates recounted on every read


async def _ready_image(db: asyncpg.Pool) -> uuid.UUID:
    media_id = uuid.uuid4()
    await db.execute(
        """
        INSERT INTO media_assets (id, file_name, url, mime_type, size_bytes, status, width,
                                  height, renditions, storage_key, storage_backend)
        VALUES ($1, 'badge.png', 'http://cdn.test/badge.png', 'image/png', 100, 'READY', 640,
                640, $2, $3, 'local')
        """,
        media_id,
        [
            {
                "name": "w320",
                "width": 320,
                "height": 320,
                "mimeType": "image/webp",
                "url": "http://cdn.test/badge-320.webp",
            }
        ],
        f"media/{media_id}",
    )
    return media_id


async def test_editors_create_read_change_and_delete(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    editor = bearer(await user_with_roles(client, db, "editor"))
    image = await _ready_image(db)
    made = await achievement(
        client,
        editor,
        w.game,
        key="sharpshooter",
        title="Sharpshooter",
        description="100 hits",
        points=50,
        criteria={"type": "stat", "stat": "hits", "min": 100},
        media=[str(image), str(image)],
    )
    assert made["key"] == "sharpshooter" and made["points"] == 50 and not made["hidden"]
    assert made["criteria"] == {"type": "stat", "stat": "hits", "min": 100}
    (media,) = made["media"]
    assert media["url"] == "http://cdn.test/badge.png" and media["status"] == "READY"
    assert media["renditions"][0]["url"] == "http://cdn.test/badge-320.webp"
    one = await client.get(f"{URL}/{made['id']}", headers=editor)
    assert one.json() == made
    changed = await client.patch(
        f"{URL}/{made['id']}", json={"hidden": True, "criteria": None}, headers=editor
    )
    assert changed.status_code == 200
    assert changed.json()["hidden"] and changed.json()["criteria"] is None
    listed = await client.get(URL, params={"gameId": w.game.id}, headers=editor)
    assert [a["id"] for a in listed.json()["items"]] == [made["id"]]
    assert (await client.delete(f"{URL}/{made['id']}", headers=editor)).status_code == 204
    assert (await client.get(f"{URL}/{made['id']}", headers=editor)).status_code == 404


async def test_admin_lists_page_by_cursor(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    w = await world(client, db)
    made = [(await achievement(client, w.admin, w.game))["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"gameId": w.game.id, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(URL, params=params, headers=w.admin)).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == made


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"criteria": {"type": "kills", "min": 3}}, "criteria"),
        ({"criteria": {"type": "stat", "min": 3}}, "criteria.stat.stat"),
        ({"criteria": {"type": "level", "min": 0}}, "criteria.level.min"),
        ({"criteria": {"type": "points", "min": 5, "extra": 1}}, "criteria.points.extra"),
        ({"criteria": {"type": "stat", "stat": "no spaces", "min": 1}}, "criteria.stat.stat"),
        ({"points": -1}, "points"),
        ({"key": "with space"}, "key"),
        ({"title": ""}, "title"),
        ({"media": [str(uuid.UUID(int=1))]}, "media.0"),
        ({"gameId": str(uuid.UUID(int=2))}, "gameId"),
    ],
)
async def test_fields_are_checked_strictly(
    client: httpx.AsyncClient, db: asyncpg.Pool, fields: dict[str, Any], field: str
) -> None:
    w = await world(client, db)
    body = {"gameId": w.game.id, "key": "k", "title": "T", **fields}
    refused = await client.post(URL, json=body, headers=w.admin)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == field


async def test_a_key_is_unique_per_game(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    w = await world(client, db)
    await achievement(client, w.admin, w.game, key="win")
    again = await client.post(
        URL, json={"gameId": w.game.id, "key": "win", "title": "Again"}, headers=w.admin
    )
    assert again.status_code == 409
    assert again.json()["errors"][0]["field"] == "key"
    other = await achievement(client, w.admin, w.game, key="lose")
    renamed = await client.patch(f"{URL}/{other['id']}", json={"key": "win"}, headers=w.admin)
    assert renamed.status_code == 409


async def test_unlock_is_201_then_200_with_its_reward_once(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    await achievement(client, w.admin, w.game, key="boss", title="Boss down", points=25)
    user_id, _ = await player(client)
    await report(client, w.game, user_id, pointsDelta=5)
    first = await client.post(w.game.url(user_id, "achievements/boss"), headers=w.game.server)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["newlyUnlocked"] and body["achievement"]["key"] == "boss"
    assert body["progress"]["points"] == 30
    again = await client.post(w.game.url(user_id, "achievements/boss"), headers=w.game.server)
    assert again.status_code == 200
    assert not again.json()["newlyUnlocked"]
    assert again.json()["achievement"]["unlockedAt"] == body["achievement"]["unlockedAt"]
    assert again.json()["progress"]["points"] == 30
    week = await db.fetchval("SELECT points FROM leaderboard_scores WHERE period = 'week'")
    assert week == 30
    read = (await client.get(w.game.url(user_id), headers=w.game.server)).json()
    assert [a["key"] for a in read["achievements"]] == ["boss"]
    missing = await client.post(w.game.url(user_id, "achievements/nope"), headers=w.game.server)
    assert missing.status_code == 404
    assert missing.json()["type"].endswith(":achievement-not-found")


async def test_50_concurrent_unlocks_unlock_reward_and_notify_once(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    await achievement(client, w.admin, w.game, key="rush", title="Rush", points=40)
    user_id, _ = await player(client)
    answers = await asyncio.gather(
        *(
            client.post(w.game.url(user_id, "achievements/rush"), headers=w.game.server)
            for _ in range(50)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] * 49 + [201]
    assert await db.fetchval("SELECT count(*) FROM achievement_unlocks") == 1
    assert await db.fetchval("SELECT points FROM user_progress") == 40
    assert await db.fetchval("SELECT points FROM leaderboard_scores WHERE period = 'week'") == 40
    (message,) = await in_app(db, user_id)
    assert message == {
        "subject": "Achievement unlocked: Rush",
        "body": "+40 points",
        "category": "achievements",
    }


async def test_criteria_unlock_on_progress_with_rewards_that_count(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    hits = await achievement(
        client,
        w.admin,
        w.game,
        key="hits",
        title="Hundred hits",
        description="Land 100 hits.",
        points=60,
        criteria={"type": "stat", "stat": "hits", "min": 100},
    )
    # Reached only with the first one's reward: rewards count toward criteria.
    rich = await achievement(
        client, w.admin, w.game, key="rich", points=0, criteria={"type": "points", "min": 100}
    )
    user_id, _ = await player(client)
    quiet = await report(client, w.game, user_id, pointsDelta=50, stats={"hits": 99})
    assert quiet.json()["unlocked"] == []
    crossing = await report(client, w.game, user_id, stats={"hits": 1})
    assert crossing.status_code == 200, crossing.text
    body = crossing.json()
    assert [u["key"] for u in body["unlocked"]] == ["hits", "rich"]
    assert body["points"] == 110
    assert {u["id"] for u in body["unlocked"]} == {hits["id"], rich["id"]}
    assert await db.fetchval("SELECT points FROM leaderboard_scores WHERE period='month'") == 110
    messages = await in_app(db, user_id)
    assert [m["subject"] for m in messages] == [
        "Achievement unlocked: Hundred hits",
        "Achievement unlocked: First steps",
    ]
    assert messages[0]["body"] == "Land 100 hits. +60 points"
    later = await report(client, w.game, user_id, stats={"hits": 50})
    assert later.json()["unlocked"] == [] and later.json()["points"] == 110
    assert len(await in_app(db, user_id)) == 2


async def test_concurrent_updates_crossing_a_criterion_unlock_it_once(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    await achievement(client, w.admin, w.game, points=1000, criteria={"type": "points", "min": 50})
    user_id, _ = await player(client)
    answers = await asyncio.gather(
        *(report(client, w.game, user_id, pointsDelta=1) for _ in range(200))
    )
    assert {a.status_code for a in answers} == {200}
    assert sum(len(a.json()["unlocked"]) for a in answers) == 1
    assert await db.fetchval("SELECT count(*) FROM achievement_unlocks") == 1
    assert await db.fetchval("SELECT points FROM user_progress") == 1200
    assert await db.fetchval("SELECT points FROM leaderboard_scores WHERE period='week'") == 1200
    assert len(await in_app(db, user_id)) == 1


async def test_a_retried_update_that_unlocked_replays_its_unlocks(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    await achievement(
        client, w.admin, w.game, key="p", points=5, criteria={"type": "points", "min": 3}
    )
    user_id, _ = await player(client)
    first = await report(client, w.game, user_id, pointsDelta=3, idempotencyKey="u1")
    again = await report(client, w.game, user_id, pointsDelta=3, idempotencyKey="u1")
    assert first.json()["unlocked"][0]["key"] == "p"
    assert again.json() == first.json()
    assert await db.fetchval("SELECT points FROM user_progress") == 8


async def test_notifications_follow_the_players_preferences(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    await achievement(client, w.admin, w.game, key="a1", title="One")
    await achievement(client, w.admin, w.game, key="a2", title="Two")
    user_id, token = await player(client)
    session_id = await db.fetchval("SELECT id FROM sessions WHERE user_id = $1", uuid.UUID(user_id))
    await db.execute(
        "INSERT INTO push_subscriptions (id, user_id, session_id, endpoint, p256dh, auth) "
        "VALUES ($1, $2, $3, 'https://fcm.googleapis.com/x', 'k', 'a')",
        uuid.uuid4(),
        uuid.UUID(user_id),
        session_id,
    )
    await client.post(w.game.url(user_id, "achievements/a1"), headers=w.game.server)
    kinds = await db.fetch(
        "SELECT type, payload FROM messages WHERE recipient_user_id = $1 AND type <> 'EMAIL' "
        "ORDER BY id",
        uuid.UUID(user_id),
    )
    assert [r["type"] for r in kinds] == ["IN_APP", "PUSH"]
    assert kinds[1]["payload"] == {"title": "Achievement unlocked: One", "category": "achievements"}
    prefs = await client.put(
        "/api/v1/me/notification-preferences",
        json={"inApp": {"achievements": False}, "push": {"achievements": False}},
        headers=token,
    )
    assert prefs.status_code == 200, prefs.text
    await client.post(w.game.url(user_id, "achievements/a2"), headers=w.game.server)
    count = await db.fetchval(
        "SELECT count(*) FROM messages WHERE recipient_user_id = $1 AND type <> 'EMAIL'",
        uuid.UUID(user_id),
    )
    assert count == 2
    assert await db.fetchval("SELECT count(*) FROM achievement_unlocks") == 2


async def test_the_catalogue_masks_hidden_ones_and_gives_unlock_rates(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    image = await _ready_image(db)
    open_one = await achievement(
        client, w.admin, w.game, key="open", title="Open", media=[str(image)]
    )
    secret = await achievement(
        client,
        w.admin,
        w.game,
        key="secret",
        title="The secret ending",
        description="Spoiler",
        hidden=True,
        points=7,
        media=[str(image)],
        criteria={"type": "level", "min": 9},
    )
    players = [await player(client) for _ in range(4)]
    for user_id, _ in players:
        await report(client, w.game, user_id, pointsDelta=1)
    for user_id, _ in players[:3]:
        await client.post(w.game.url(user_id, "achievements/open"), headers=w.game.server)
    finder, finder_token = players[0]
    await client.post(w.game.url(finder, "achievements/secret"), headers=w.game.server)
    catalogue = f"/api/v1/games/{w.game.id}/achievements"

    anonymous = await client.get(catalogue)
    assert anonymous.status_code == 200
    assert anonymous.headers["cache-control"].startswith("public")
    by_id = {a["id"]: a for a in anonymous.json()["items"]}
    assert by_id[open_one["id"]]["unlockRate"] == 0.75
    assert by_id[open_one["id"]]["unlocked"] is None
    assert by_id[open_one["id"]]["media"][0]["renditions"][0]["name"] == "w320"
    masked = by_id[secret["id"]]
    assert masked == {
        "id": secret["id"],
        "key": None,
        "title": None,
        "description": None,
        "points": 7,
        "hidden": True,
        "criteria": None,
        "media": [],
        "unlockRate": 0.25,
        "unlocked": None,
        "unlockedAt": None,
    }
    assert "secret" not in anonymous.text and "Spoiler" not in anonymous.text

    others = await client.get(catalogue, headers=players[1][1])
    theirs = {a["id"]: a for a in others.json()["items"]}
    assert theirs[secret["id"]]["title"] is None and theirs[secret["id"]]["unlocked"] is False
    assert theirs[open_one["id"]]["unlocked"] is True
    assert others.headers["cache-control"] == "private, no-cache"

    mine = await client.get(catalogue, headers=finder_token)
    found = {a["id"]: a for a in mine.json()["items"]}[secret["id"]]
    assert found["title"] == "The secret ending" and found["unlocked"] is True
    assert found["unlockedAt"].endswith("Z") and found["criteria"]["min"] == 9

    cached = await client.get(catalogue, headers={"If-None-Match": anonymous.headers["etag"]})
    assert cached.status_code == 304


async def test_the_catalogue_is_for_published_games(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    await client.post(f"/api/v1/content/{w.game.id}/unpublish", headers=w.admin)
    for game_id in (w.game.id, str(uuid.uuid4())):
        response = await client.get(f"/api/v1/games/{game_id}/achievements")
        assert response.status_code == 404
