"""Progress updates from game servers: atomic, exactly once per idempotency key, adding up
under concurrency, feeding the week and month scores and telling the leaderboards."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.db import plain_url
from gameportal.progress.schemas import ProgressUpdated
from gameportal.progress.service.updates import answer
from tests.progress.support import player, report, world


async def test_the_first_update_creates_progress_and_later_ones_add(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    first = await report(
        client, w.game, user_id, pointsDelta=10, experienceDelta=3, stats={"kills": 2}
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["userId"] == user_id and body["gameId"] == w.game.id
    assert (body["level"], body["points"], body["experience"]) == (1, 10, 3)
    assert body["stats"] == {"kills": 2} and body["unlocked"] == []
    assert body["lastActivityAt"].endswith("Z")
    second = await report(
        client, w.game, user_id, pointsDelta=5, level=4, stats={"kills": 1, "deaths": 1}
    )
    body = second.json()
    assert (body["level"], body["points"], body["experience"]) == (4, 15, 3)
    assert body["stats"] == {"kills": 3, "deaths": 1}
    read = await client.get(w.game.url(user_id), headers=w.game.server)
    assert read.status_code == 200
    assert read.json()["points"] == 15 and read.json()["achievements"] == []


async def test_the_answer_is_what_the_model_says(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    body = (await report(client, w.game, user_id, pointsDelta=1, stats={"a": 1})).json()
    assert ProgressUpdated.model_validate(body).model_dump(mode="json", by_alias=True) == body
    stored = {
        "level": 2,
        "experience": 3,
        "points": 4,
        "stats": {"x": 1},
        "last_activity_at": "2026-01-02T04:05:06.000007+01:00",
        "unlocked": [
            {
                "id": str(uuid.uuid4()),
                "key": "k",
                "title": "T",
                "points": 5,
                "unlocked_at": "2026-01-02T03:05:06+00:00",
            }
        ],
    }
    built = answer(uuid.uuid4(), uuid.uuid4(), stored)
    assert built["lastActivityAt"] == "2026-01-02T03:05:06.000007Z"
    assert ProgressUpdated.model_validate(built).model_dump(mode="json", by_alias=True) == built


async def test_a_retry_applies_once_and_returns_the_first_answer(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    first = await report(client, w.game, user_id, pointsDelta=7, idempotencyKey="match-42")
    await report(client, w.game, user_id, pointsDelta=1)
    retry = await report(client, w.game, user_id, pointsDelta=7, idempotencyKey="match-42")
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert await db.fetchval("SELECT points FROM user_progress") == 8
    assert await db.fetchval("SELECT count(*) FROM progress_updates") == 2


async def test_concurrent_retries_apply_once(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    answers = await asyncio.gather(
        *(report(client, w.game, user_id, pointsDelta=3, idempotencyKey="same") for _ in range(30))
    )
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert await db.fetchval("SELECT points FROM user_progress") == 3
    week = await db.fetchval("SELECT points FROM leaderboard_scores WHERE period = 'week'")
    assert week == 3


async def test_the_same_key_with_other_changes_is_refused(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    other_id, _ = await player(client)
    await report(client, w.game, user_id, pointsDelta=7, idempotencyKey="k")
    for user, delta in ((user_id, 8), (other_id, 7)):
        refused = await report(client, w.game, user, pointsDelta=delta, idempotencyKey="k")
        assert refused.status_code == 409
        problem = refused.json()
        assert problem["type"].endswith(":idempotency-key-reused")
        assert problem["errors"][0]["field"] == "idempotencyKey"
    assert await db.fetchval("SELECT sum(points) FROM user_progress") == 7


async def test_1000_concurrent_updates_add_up_exactly(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    answers = await asyncio.gather(
        *(
            report(client, w.game, user_id, pointsDelta=n % 7 + 1, stats={"hits": 1})
            for n in range(1000)
        )
    )
    assert [a.status_code for a in answers] == [200] * 1000
    expected = sum(n % 7 + 1 for n in range(1000))
    row = await db.fetchrow("SELECT points, stats FROM user_progress")
    assert row["points"] == expected and row["stats"] == {"hits": 1000}
    boards = await db.fetch("SELECT period, points FROM leaderboard_scores ORDER BY period")
    assert [(r["period"], r["points"]) for r in boards] == [("month", expected), ("week", expected)]
    # Each answer saw its own update on top of the others': all totals differ.
    assert len({a.json()["points"] for a in answers}) == 1000


async def test_scores_go_to_this_week_and_month_and_the_boards_hear(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(plain_url(database_url))
    await listener.add_listener("leaderboard", lambda *args: heard.put_nowait(args[3]))
    try:
        await report(client, w.game, user_id, pointsDelta=0, experienceDelta=4)
        await report(client, w.game, user_id, pointsDelta=6)
        payload = await asyncio.wait_for(heard.get(), 5)
        assert payload == f"{w.game.id}:{user_id}"
        await asyncio.sleep(0.2)
        assert heard.empty()  # the update that moved no points said nothing
    finally:
        await listener.close()
    now = datetime.now(UTC).date()
    week = now - timedelta(days=now.weekday())
    rows = {
        r["period"]: r
        for r in await db.fetch("SELECT period, period_start, points FROM leaderboard_scores")
    }
    assert rows["week"]["period_start"] == week and rows["week"]["points"] == 6
    assert rows["month"]["period_start"] == now.replace(day=1) and rows["month"]["points"] == 6
    progress = await db.fetchrow("SELECT points, points_reached_at FROM user_progress")
    assert progress["points"] == 6


async def test_points_reached_at_moves_only_with_points(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    await report(client, w.game, user_id, pointsDelta=6)
    reached = await db.fetchval("SELECT points_reached_at FROM user_progress")
    await report(client, w.game, user_id, experienceDelta=6, stats={"x": 1})
    assert await db.fetchval("SELECT points_reached_at FROM user_progress") == reached
    await report(client, w.game, user_id, pointsDelta=1)
    assert await db.fetchval("SELECT points_reached_at FROM user_progress") > reached


async def test_unknown_and_blocked_players_and_unpublished_games(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    unknown = await report(client, w.game, str(uuid.uuid4()), pointsDelta=1)
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith(":player-not-found")
    user_id, _ = await player(client)
    await db.execute("UPDATE users SET is_blocked = true WHERE id = $1", uuid.UUID(user_id))
    blocked = await report(client, w.game, user_id, pointsDelta=1)
    assert blocked.status_code == 409
    assert blocked.json()["type"].endswith(":player-blocked")
    other_id, _ = await player(client)
    down = await client.post(f"/api/v1/content/{w.game.id}/unpublish", headers=w.admin)
    assert down.status_code == 200
    unpublished = await report(client, w.game, other_id, pointsDelta=1)
    assert unpublished.status_code == 409
    assert unpublished.json()["type"].endswith(":game-not-published")
    assert await db.fetchval("SELECT count(*) FROM user_progress") == 0
    assert await db.fetchval("SELECT count(*) FROM progress_updates") == 0


@pytest.mark.parametrize(
    "body",
    [
        {"pointsDelta": 1},  # no idempotency key
        {"pointsDelta": -1, "idempotencyKey": "a"},
        {"pointsDelta": 1, "idempotencyKey": "a", "bonus": 1},
        {"stats": {"bad name": 1}, "idempotencyKey": "a"},
        {"stats": {"x": 1.5}, "idempotencyKey": "a"},
        {"level": 0, "idempotencyKey": "a"},
        {"idempotencyKey": "has space"},
    ],
)
async def test_malformed_updates_name_the_field(
    client: httpx.AsyncClient, db: asyncpg.Pool, body: dict[str, object]
) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    refused = await client.post(w.game.url(user_id), json=body, headers=w.game.server)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"]


async def test_reading_progress_before_any(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    missing = await client.get(w.game.url(user_id), headers=w.game.server)
    assert missing.status_code == 404
    assert missing.json()["type"].endswith(":progress-not-found")


async def test_what_vanished_between_check_and_write_is_named(db: asyncpg.Pool) -> None:
    """An erased player or a deleted achievement shows as the foreign key the write
    breaks: each gets its own 404, not a 500."""
    from gameportal.progress.repository import updates as repo
    from gameportal.progress.service.errors import AchievementNotFound, PlayerNotFound
    from gameportal.progress.service.updates import _vanished

    game = await db.fetchval(
        "INSERT INTO content (id, type, title, slug, format, content) "
        "VALUES ($1, 'GAME', 'G', 'g', 'MARKDOWN', '') RETURNING id",
        uuid.uuid4(),
    )
    async with db.acquire() as conn:
        for user, achievement, expected in (
            (uuid.uuid4(), None, PlayerNotFound),
            (None, uuid.uuid4(), AchievementNotFound),
        ):
            if user is None:
                user = await conn.fetchval(
                    "INSERT INTO users (id, email, name, password_hash) "
                    "VALUES ($1, $2, 'n', 'x') RETURNING id",
                    uuid.uuid4(),
                    f"{uuid.uuid4().hex}@example.com",
                )
            with pytest.raises(asyncpg.ForeignKeyViolationError) as caught:
                if achievement is None:
                    await repo.lock_progress(conn, user, game, uuid.uuid4())
                else:
                    await repo.insert_unlocks(conn, user, game, [achievement])
            assert isinstance(_vanished(caught.value, user), expected)


# --- answered directly (kit.routing.answer_directly) and by the declared route alike -------

DECLARED = "application/json; charset=utf-8"  # a content type only the declared route takes


async def _post(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes, content_type: str
) -> httpx.Response:
    return await client.post(url, content=body, headers={**headers, "Content-Type": content_type})


async def test_the_direct_answer_is_the_declared_routes(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    url = w.game.url(user_id)
    body = b'{"pointsDelta":3,"experienceDelta":2,"stats":{"kills":1},"idempotencyKey":"d-1"}'
    direct = await _post(client, url, w.game.server, body, "application/json")
    declared = await _post(client, url, w.game.server, body, DECLARED)  # the retry
    assert direct.status_code == declared.status_code == 200
    assert direct.content == declared.content
    assert direct.headers["content-type"] == declared.headers["content-type"]
    other = b'{"pointsDelta":1,"idempotencyKey":"d-2"}'
    declared = await _post(client, url, w.game.server, other, DECLARED)
    direct = await _post(client, url, w.game.server, other, "application/json")  # the retry
    assert direct.content == declared.content
    assert await db.fetchval("SELECT points FROM user_progress") == 4
    # Errors: the same problem documents, whichever way the request went.
    nobody = w.game.url(str(uuid.uuid4()))
    for url_, payload in ((nobody, other), (url, b'{"pointsDelta":1,"idempotencyKey":"d-1"}')):
        a = await _post(client, url_, w.game.server, payload, "application/json")
        b = await _post(client, url_, w.game.server, payload, DECLARED)
        assert a.status_code == b.status_code and a.status_code in (404, 409)
        assert a.json() == b.json()
    bad = await _post(
        client, url, w.game.server, b'{"pointsDelta":-1,"idempotencyKey":"x"}', "application/json"
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "pointsDelta"
    # A player's token is refused before the body is read, as on the declared route.
    refused = await _post(client, url, {"Authorization": "Bearer a.b.c"}, body, "application/json")
    assert refused.status_code == 403
