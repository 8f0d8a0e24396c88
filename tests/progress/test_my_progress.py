"""A player's own progress and achievements; erasing the account erases them."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.factories import STRONG_PASSWORD
from tests.progress.support import achievement, new_game, player, report, world


async def test_players_read_their_progress_in_every_game(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    other = await new_game(client, w.admin)
    user_id, token = await player(client)
    someone, _ = await player(client)
    await achievement(client, w.admin, w.game, key="w1", title="Win one")
    await report(client, w.game, user_id, pointsDelta=3, stats={"wins": 1})
    await report(client, other, user_id, experienceDelta=9)
    await report(client, w.game, someone, pointsDelta=99)
    await client.post(w.game.url(user_id, "achievements/w1"), headers=w.game.server)

    listed = await client.get("/api/v1/me/progress", headers=token)
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [i["gameId"] for i in items] == [other.id, w.game.id]  # most recent first
    assert {i["userId"] for i in items} == {user_id}
    first_page = await client.get("/api/v1/me/progress", params={"limit": 1}, headers=token)
    rest = await client.get(
        "/api/v1/me/progress",
        params={"limit": 1, "cursor": first_page.json()["nextCursor"]},
        headers=token,
    )
    assert [i["gameId"] for i in rest.json()["items"]] == [w.game.id]
    assert rest.json()["nextCursor"] is None

    one = await client.get(f"/api/v1/me/progress/{w.game.id}", headers=token)
    body = one.json()
    assert body["points"] == 3 and body["stats"] == {"wins": 1}
    assert [a["key"] for a in body["achievements"]] == ["w1"]
    assert body["personalizedOffers"] == []
    never = await client.get(f"/api/v1/me/progress/{uuid.uuid4()}", headers=token)
    assert never.status_code == 404


async def test_players_list_their_achievements(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    w = await world(client, db)
    other = await new_game(client, w.admin)
    await achievement(client, w.admin, w.game, key="a", title="A")
    await achievement(client, w.admin, w.game, key="b", title="B", hidden=True)
    await achievement(client, w.admin, other, key="c", title="C")
    user_id, token = await player(client)
    for game, key in ((w.game, "a"), (other, "c"), (w.game, "b")):
        made = await client.post(game.url(user_id, f"achievements/{key}"), headers=game.server)
        assert made.status_code == 201
    everything = await client.get("/api/v1/me/achievements", headers=token)
    assert [i["achievement"]["key"] for i in everything.json()["items"]] == ["b", "c", "a"]
    hidden = everything.json()["items"][0]
    assert hidden["achievement"]["title"] == "B" and hidden["achievement"]["unlocked"] is True
    assert hidden["achievement"]["unlockRate"] == 1.0
    in_game = await client.get(
        "/api/v1/me/achievements", params={"gameId": w.game.id, "limit": 1}, headers=token
    )
    assert [i["achievement"]["key"] for i in in_game.json()["items"]] == ["b"]
    rest = await client.get(
        "/api/v1/me/achievements",
        params={"gameId": w.game.id, "cursor": in_game.json()["nextCursor"]},
        headers=token,
    )
    assert [i["achievement"]["key"] for i in rest.json()["items"]] == ["a"]


async def test_erasing_the_account_erases_its_progress(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    await achievement(client, w.admin, w.game, key="a")
    user_id, token = await player(client)
    await report(client, w.game, user_id, pointsDelta=5, idempotencyKey="gone-1")
    await client.post(w.game.url(user_id, "achievements/a"), headers=w.game.server)
    erased = await client.request(
        "DELETE", "/api/v1/me", json={"password": STRONG_PASSWORD}, headers=token
    )
    assert erased.status_code == 204, erased.text
    uid = uuid.UUID(user_id)
    for table in ("user_progress", "achievement_unlocks", "leaderboard_scores", "progress_updates"):
        assert await db.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", uid) == 0
    gone = await report(client, w.game, user_id, pointsDelta=5)
    assert gone.status_code == 404
