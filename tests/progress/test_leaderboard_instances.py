"""Leaderboards held by several API processes on one database: a score written anywhere is
ranked everywhere within a second, and a process whose LISTEN connection was cut reads
its boards again (the NOTIFYs it missed are gone)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.app import create_app
from gameportal.progress.leaderboard import period_start
from gameportal.progress.leaderboard_metrics import LOADS
from tests.conftest import PLAYER_IP, make_settings
from tests.progress.leaderboard_support import (
    board,
    bulk_players,
    bulk_scores,
    eventually,
    published_game,
    set_score,
)
from tests.progress.support import player, report, world

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
async def other_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second API instance on the same database, with its own boards and listener."""
    other = create_app(make_settings(database_url))
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=(PLAYER_IP, 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as client:
            client.app = other  # type: ignore[attr-defined]
            yield client


async def _listening(app: FastAPI) -> None:
    assert await app.state.leaderboards.listener.wait_connected(10)


async def test_a_score_written_through_one_instance_is_ranked_by_the_other_within_a_second(
    app: FastAPI,
    client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
    db: asyncpg.Pool,
) -> None:
    await _listening(app)
    await _listening(other_client.app)  # type: ignore[attr-defined]
    game = await published_game(db)
    players = await bulk_players(db, 100)
    await bulk_scores(db, game, [(p, i, T0) for i, p in enumerate(players)])
    week_start = period_start("week", datetime.now(UTC).date())
    # Both instances hold the boards.
    for c in (client, other_client):
        assert (await board(c, game))["items"][0]["userId"] == str(players[-1])
        assert (await board(c, game, period="week"))["items"] == []

    climber = players[0]
    # Written on "this" side (as a progress update through this instance would).
    await set_score(db, game, climber, 1_000)
    await set_score(db, game, climber, 1_000, period="week", start=week_start)

    async def ranked_first_there() -> bool:
        top = (await board(other_client, game, limit=1))["items"][0]
        week = (await board(other_client, game, period="week"))["items"]
        return top["userId"] == str(climber) and [e["userId"] for e in week] == [str(climber)]

    seconds = await eventually(ranked_first_there, within=1.0)
    assert seconds < 1.0

    async def the_same_on_both() -> bool:  # this side hears its NOTIFY in its own time
        return (await board(client, game))["items"] == (await board(other_client, game))["items"]

    await eventually(the_same_on_both, within=1.0)


async def test_after_the_listen_connection_is_cut_the_boards_are_read_again(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await _listening(app)
    game = await published_game(db)
    players = await bulk_players(db, 3)
    await bulk_scores(db, game, [(p, 10 * i, T0) for i, p in enumerate(players)])
    assert (await board(client, game))["items"][0]["userId"] == str(players[-1])

    reloads = LOADS.labels("reload")._value.get()
    # A change whose NOTIFY this process never hears (as while its connection is down).
    await set_score(db, game, players[0], 999, notify=False)
    cut = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    )
    assert cut == 1

    async def read_again() -> bool:
        return (await board(client, game))["items"][0]["userId"] == str(players[0])

    await eventually(read_again, within=10)
    assert LOADS.labels("reload")._value.get() == reloads + 1
    # And it listens again: the next change arrives by NOTIFY.
    await set_score(db, game, players[1], 5_000)

    async def heard() -> bool:
        return (await board(client, game))["items"][0]["userId"] == str(players[1])

    await eventually(heard)
    assert uuid.UUID((await board(client, game))["items"][1]["userId"]) == players[0]


async def test_progress_reported_through_one_instance_is_ranked_by_the_other(
    app: FastAPI,
    client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
    db: asyncpg.Pool,
) -> None:
    """End to end: game servers report through the progress API of one instance; the
    other instance's boards (all time and this week) follow within a second."""
    await _listening(app)
    await _listening(other_client.app)  # type: ignore[attr-defined]
    setup = await world(client, db)
    game = setup.game
    alice, _ = await player(client)
    bob, bob_headers = await player(client)
    for who, points in ((alice, 50), (bob, 30)):
        assert (await report(client, game, who, pointsDelta=points)).status_code == 200
    game_id = uuid.UUID(game.id)

    async def order(c: httpx.AsyncClient, **params: str) -> list[tuple[str, int]]:
        items = (await board(c, game_id, **params))["items"]
        return [(e["userId"], e["points"]) for e in items]

    async def both_see(expected: list[tuple[str, int]]) -> bool:
        for c in (client, other_client):
            if [await order(c), await order(c, period="week")] != [expected, expected]:
                return False
        return True

    await eventually(lambda: both_see([(alice, 50), (bob, 30)]))
    # Bob overtakes, reported through this instance; the other ranks him first in time.
    assert (await report(client, game, bob, pointsDelta=25)).status_code == 200
    seconds = await eventually(lambda: both_see([(bob, 55), (alice, 50)]), within=1.0)
    assert seconds < 1.0
    mine = await other_client.get(f"/api/v1/games/{game.id}/leaderboard/me", headers=bob_headers)
    assert mine.json()["rank"] == 1 and mine.json()["points"] == 55


@pytest.mark.parametrize("settings_overrides", [{"leaderboard_idle_seconds": 0.2}])
async def test_boards_nobody_reads_are_dropped_and_read_again_when_asked_for(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    boards = app.state.leaderboards
    quiet, busy = await published_game(db), await published_game(db)
    players = await bulk_players(db, 3)
    for game in (quiet, busy):
        await bulk_scores(db, game, [(p, 1 + i, T0) for i, p in enumerate(players)])
    first = await board(client, quiet)
    await board(client, busy)
    assert boards.boards_held == 2 and boards.players_held == 6
    await asyncio.sleep(0.3)
    await board(client, busy)  # a read sweeps: the quiet board has been idle too long
    assert boards.boards_held == 1 and boards.players_held == 3
    assert await board(client, quiet) == first  # read again on demand
    assert boards.boards_held == 2
