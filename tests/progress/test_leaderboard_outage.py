"""Leaderboards through a database outage (a private PostgreSQL that is stopped and
started again on the same address): pages held are still answered, and afterwards the
boards are read again and follow NOTIFYs as before."""

from __future__ import annotations

import asyncio
import time

import httpx

from gameportal.app import create_app
from gameportal.progress.leaderboard_metrics import LOADS
from tests.conftest import PLAYER_IP, make_settings
from tests.faults import StoppablePostgres
from tests.progress.leaderboard_support import (
    board,
    bulk_players,
    bulk_scores,
    eventually,
    published_game,
    set_score,
)
from tests.progress.test_leaderboard import T0


async def _until(condition: object, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.02)


async def test_held_pages_answer_through_an_outage_and_boards_catch_up_after(
    stoppable_pg: StoppablePostgres, stoppable_database_url: str
) -> None:
    app = create_app(make_settings(stoppable_database_url))
    async with app.router.lifespan_context(app):
        listener = app.state.leaderboards.listener
        transport = httpx.ASGITransport(app=app, client=(PLAYER_IP, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            pool = app.state.db.pool
            game = await published_game(pool)
            players = await bulk_players(pool, 3)
            await bulk_scores(pool, game, [(p, 10 * (i + 1), T0) for i, p in enumerate(players)])
            url = f"/api/v1/games/{game}/leaderboard"
            before = await client.get(url)
            assert before.status_code == 200
            reloads = LOADS.labels("reload")._value.get()

            stoppable_pg.stop()
            try:
                await _until(lambda: not listener.connected, within=10)
                during = await client.get(url)  # the page this process holds
                assert during.status_code == 200 and during.content == before.content
            finally:
                stoppable_pg.start()

            await _until(lambda: listener.connected, within=30)
            await _until(lambda: LOADS.labels("reload")._value.get() == reloads + 1, within=10)
            await set_score(pool, game, players[0], 1_000)

            async def caught_up() -> bool:
                return (await board(client, game))["items"][0]["userId"] == str(players[0])

            await eventually(caught_up, within=2)
