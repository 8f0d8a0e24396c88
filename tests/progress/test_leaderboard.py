"""Leaderboards through the HTTP API: ranks against a brute-force sort, ties, periods and
their boundaries, the caller's rank, blocked and erased players, and errors."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx
import orjson
from fastapi import FastAPI

from gameportal.progress.leaderboard_schemas import LeaderboardPage, MyRank
from tests.factories import bearer, login, register, user_with_roles
from tests.progress.leaderboard_support import (
    board,
    bulk_players,
    bulk_scores,
    eventually,
    published_game,
    set_score,
    whole_board,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday


def _brute_force(scores: dict[uuid.UUID, tuple[int, datetime]]) -> list[uuid.UUID]:
    """Players with points, most first, then earliest, then by user id."""
    ranked = [u for u in scores if scores[u][0] != 0]
    return sorted(ranked, key=lambda u: (-scores[u][0], scores[u][1], u.int))


async def test_ranks_agree_with_a_brute_force_sort_of_10000_random_players(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    rng = random.Random(11)
    game = await published_game(db)
    players = await bulk_players(db, 10_000)
    # Few distinct points and times, so that ties of both are everywhere.
    scores = {p: (rng.randint(0, 300), T0 + timedelta(seconds=rng.randint(0, 50))) for p in players}
    await bulk_scores(db, game, [(p, s, t) for p, (s, t) in scores.items()])

    entries = await whole_board(client, game)

    expected = _brute_force(scores)
    assert [uuid.UUID(e["userId"]) for e in entries] == expected
    assert [e["rank"] for e in entries] == list(range(1, len(expected) + 1))
    assert 9_900 < len(expected) < 10_000  # no points, no rank
    assert [e["points"] for e in entries] == [scores[p][0] for p in expected]
    names = dict(await db.fetch("SELECT id, name FROM users WHERE id = ANY($1)", players))
    assert all(e["displayName"] == names[uuid.UUID(e["userId"])] for e in entries)
    # And PostgreSQL's own order of the same rows says the same.
    in_db = await db.fetch(
        "SELECT user_id FROM user_progress WHERE game_id = $1 AND points <> 0 "
        "ORDER BY points DESC, points_reached_at, user_id",
        game,
    )
    assert [r["user_id"] for r in in_db] == expected

    # Scores that move afterwards (up, down, newcomers) still agree.
    newcomers = await bulk_players(db, 50)
    for player in rng.sample(players, 150) + newcomers:
        scores[player] = (rng.randint(0, 300), T0 + timedelta(seconds=rng.randint(0, 50)))
        await set_score(db, game, player, scores[player][0], at=scores[player][1])
    expected = _brute_force(scores)

    async def caught_up() -> bool:
        entries = await whole_board(client, game)
        return [uuid.UUID(e["userId"]) for e in entries] == expected

    await eventually(caught_up, within=5)


async def test_ties_go_to_whoever_reached_the_score_first(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    game = await published_game(db)
    a, b, c, d = sorted(await bulk_players(db, 4), key=lambda u: u.int)
    await bulk_scores(
        db,
        game,
        [
            (a, 100, T0 + timedelta(seconds=2)),
            (b, 100, T0 + timedelta(seconds=1)),  # same points, earlier: above a
            (c, 100, T0 + timedelta(seconds=2)),  # same points, same time: by user id
            (d, 101, T0 + timedelta(seconds=9)),
        ],
    )
    page = await board(client, game)
    assert [(e["rank"], uuid.UUID(e["userId"])) for e in page["items"]] == [
        (1, d),
        (2, b),
        (3, a),
        (4, c),
    ]
    # Reaching the same score later does not pass anyone.
    await set_score(db, game, d, 100, at=T0 + timedelta(seconds=3))

    async def d_is_last() -> bool:
        items = (await board(client, game))["items"]
        return [uuid.UUID(e["userId"]) for e in items] == [b, a, c, d]

    await eventually(d_is_last)


async def test_pages_follow_the_cursor_and_match_the_documented_shape(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    game = await published_game(db)
    players = await bulk_players(db, 25)
    await bulk_scores(db, game, [(p, 1000 - i, T0) for i, p in enumerate(players)])

    first = await client.get(f"/api/v1/games/{game}/leaderboard", params={"limit": 10})
    assert first.status_code == 200
    assert first.headers["cache-control"] == "public, no-cache"
    body = first.json()
    assert LeaderboardPage.model_validate(body).model_dump(mode="json", by_alias=True) == body
    assert first.content == orjson.dumps(body)  # built by hand, byte for byte orjson's
    assert body["period"] == "all" and body["periodStart"] is None
    assert [e["rank"] for e in body["items"]] == list(range(1, 11))
    second = await board(client, game, limit=10, cursor=body["nextCursor"])
    third = await board(client, game, limit=10, cursor=second["nextCursor"])
    assert [e["rank"] for e in second["items"]] == list(range(11, 21))
    assert [e["rank"] for e in third["items"]] == list(range(21, 26))
    assert third["nextCursor"] is None
    assert [uuid.UUID(e["userId"]) for e in body["items"] + second["items"] + third["items"]] == (
        players
    )

    # The same page again comes from the page this process keeps: the same bytes.
    again = await client.get(f"/api/v1/games/{game}/leaderboard", params={"limit": 10})
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    not_modified = await client.get(
        f"/api/v1/games/{game}/leaderboard",
        params={"limit": 10},
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert not_modified.status_code == 304 and not_modified.content == b""


async def test_a_week_boundary_starts_an_empty_weekly_board_and_leaves_all_time_alone(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    boards = app.state.leaderboards
    boards.clock = lambda: T0  # Wednesday 2026-11-25: the week of Monday 2026-11-23
    game = await published_game(db)
    p1, p2 = await bulk_players(db, 2)
    this_week, next_week = date(2026, 11, 23), date(2026, 11, 30)
    for player, points in ((p1, 30), (p2, 20)):
        await set_score(db, game, player, points * 10)
        await set_score(db, game, player, points, period="week", start=this_week)
        await set_score(db, game, player, points, period="month", start=date(2026, 11, 1))

    week = await board(client, game, period="week")
    assert week["periodStart"] == "2026-11-23"
    assert [(uuid.UUID(e["userId"]), e["points"]) for e in week["items"]] == [(p1, 30), (p2, 20)]
    all_time = await board(client, game)

    # Monday 00:00 UTC: a new week, a new board, empty; nothing was deleted.
    boards.clock = lambda: datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    new_week = await board(client, game, period="week")
    assert new_week["periodStart"] == "2026-11-30" and new_week["items"] == []
    assert await board(client, game) == all_time
    assert (await board(client, game, period="month"))["periodStart"] == "2026-11-01"
    # The week that ended stays readable.
    past = await board(client, game, period="week", at="2026-11-29")
    assert past["items"] == week["items"]

    # Points gained in the new week go on its board only.
    await set_score(db, game, p2, 5, period="week", start=next_week)

    async def on_new_board() -> bool:
        items = (await board(client, game, period="week"))["items"]
        return [(uuid.UUID(e["userId"]), e["points"]) for e in items] == [(p2, 5)]

    await eventually(on_new_board)
    assert (await board(client, game, period="week", at="2026-11-23"))["items"] == week["items"]


async def test_my_rank_is_the_same_entry_as_in_the_list(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    game = await published_game(db)
    others = await bulk_players(db, 40)
    await bulk_scores(db, game, [(p, 10 * i, T0) for i, p in enumerate(others)])
    me = await register(client, name='Zoë "Me" \\ Myself 🚀')
    my_id = uuid.UUID(me["user"]["id"])
    headers = bearer(me)

    nothing = await client.get(f"/api/v1/games/{game}/leaderboard/me", headers=headers)
    assert nothing.status_code == 200
    assert nothing.json()["rank"] is None and nothing.json()["items"] == []

    await set_score(db, game, my_id, 155)  # between 150 and 160: rank 25 of 41

    async def ranked() -> bool:
        response = await client.get(f"/api/v1/games/{game}/leaderboard/me", headers=headers)
        return bool(response.json()["rank"])

    await eventually(ranked)
    response = await client.get(
        f"/api/v1/games/{game}/leaderboard/me", params={"around": 5}, headers=headers
    )
    body = response.json()
    assert MyRank.model_validate(body).model_dump(mode="json", by_alias=True) == body
    assert response.content == orjson.dumps(body)
    assert body["rank"] == 25 and body["points"] == 155
    listed = await whole_board(client, game)
    assert listed[body["rank"] - 1] == {
        "rank": 25,
        "userId": str(my_id),
        "displayName": 'Zoë "Me" \\ Myself 🚀',
        "points": 155,
    }
    assert body["items"] == listed[19:30]
    # Near the top there is no one above to show.
    await set_score(db, game, my_id, 10_000)

    async def on_top() -> bool:
        response = await client.get(
            f"/api/v1/games/{game}/leaderboard/me", params={"around": 2}, headers=headers
        )
        return response.json()["items"] == (await whole_board(client, game))[:3]

    await eventually(on_top)

    # Without FastAPI's parameter handling (the plain path) and with it (an odd but valid
    # query goes to the declared route), the same answer.
    plain = await client.get(f"/api/v1/games/{game}/leaderboard/me?around=3", headers=headers)
    declared = await client.get(f"/api/v1/games/{game}/leaderboard/me?around=03", headers=headers)
    assert plain.status_code == declared.status_code == 200
    assert plain.content == declared.content


async def test_blocked_erased_and_renamed_players_are_shown_as_they_are_now(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    game = await published_game(db)
    admin = await user_with_roles(client, db, "admin")
    blocked, erased = await register(client, name="Blocky"), await register(client, name="Gone")
    crowd = await bulk_players(db, 5)
    await bulk_scores(db, game, [(p, 10 + i, T0) for i, p in enumerate(crowd)])
    await set_score(db, game, uuid.UUID(blocked["user"]["id"]), 500)
    await set_score(db, game, uuid.UUID(erased["user"]["id"]), 400)

    async def names() -> list[str]:
        return [e["displayName"] for e in (await board(client, game))["items"]]

    assert (await names())[:2] == ["Blocky", "Gone"]

    response = await client.patch(
        f"/api/v1/admin/users/{blocked['user']['id']}",
        json={"isBlocked": True},
        headers=bearer(admin),
    )
    assert response.status_code == 200, response.text

    async def blocky_gone() -> bool:
        return (await names())[0] == "Gone"

    await eventually(blocky_gone)
    entries = (await board(client, game))["items"]
    assert [e["rank"] for e in entries] == list(range(1, 7))  # no hole where they were

    await client.patch(
        f"/api/v1/admin/users/{blocked['user']['id']}",
        json={"isBlocked": False},
        headers=bearer(admin),
    )

    async def blocky_back() -> bool:
        return (await names())[0] == "Blocky"

    await eventually(blocky_back)

    response = await client.request(
        "DELETE", "/api/v1/me", json={"password": erased["password"]}, headers=bearer(erased)
    )
    assert response.status_code == 204, response.text

    async def erased_gone() -> bool:
        return "Gone" not in await names()

    await eventually(erased_gone)

    again = await login(client, blocked["user"]["email"])  # blocking ended their sessions
    response = await client.patch("/api/v1/me", json={"name": "Blocky II"}, headers=bearer(again))
    assert response.status_code == 200

    async def renamed() -> bool:
        return (await names())[0] == "Blocky II"

    await eventually(renamed)


async def test_unknown_unpublished_and_malformed_requests_are_refused(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    game = await published_game(db)
    draft = await published_game(db, status="DRAFT")
    for game_id in (uuid.uuid4(), draft):
        response = await client.get(f"/api/v1/games/{game_id}/leaderboard")
        assert response.status_code == 404
        assert response.json()["type"].endswith("game-not-found")

    async def problem(url: str, status: int, field: str | None = None) -> None:
        response = await client.get(url)
        assert response.status_code == status, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        if field:
            assert [e["field"] for e in response.json()["errors"]] == [field], response.text

    base = f"/api/v1/games/{game}/leaderboard"
    await problem(f"{base}?period=year", 422, "period")
    await problem(f"{base}?limit=0", 422, "limit")
    await problem(f"{base}?limit=201", 422, "limit")
    await problem(f"{base}?at=2026-02-30&period=week", 422, "at")
    await problem(f"{base}?cursor=bm9wZQ", 400)
    await problem("/api/v1/games/not-a-uuid/leaderboard", 422, "game_id")
    await problem(f"{base}/me", 401)

    # Unpublishing the game closes its boards at once (the content NOTIFY).
    assert (await client.get(base)).status_code == 200
    await db.execute("UPDATE content SET status = 'ARCHIVED' WHERE id = $1", game)
    await db.execute("SELECT pg_notify('gameportal_content', $1)", str(game))

    async def closed() -> bool:
        return (await client.get(base)).status_code == 404

    await eventually(closed)
