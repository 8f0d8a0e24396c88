"""The progress hot path tells the leaderboards after its commit (board_events.ScoreNotices):
the notices arrive, survive a failed send, collapse into one RESYNC when too many wait, and
a process starting up sends again those of the last minute's updates."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from gameportal.progress.board_events import (
    LEADERBOARD_CHANNEL,
    RESYNC,
    ScoreNotices,
    announce_recent_scores,
)
from gameportal.progress.leaderboard_metrics import LOADS
from tests.progress.leaderboard_support import board, bulk_players, eventually, published_game
from tests.progress.support import player, report, world


async def _listen(database_url: str) -> tuple[asyncpg.Connection, asyncio.Queue[str]]:
    heard: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(database_url)
    await conn.add_listener(LEADERBOARD_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    return conn, heard


async def _drain(heard: asyncio.Queue[str], within: float = 2.0) -> list[str]:
    got = [await asyncio.wait_for(heard.get(), within)]
    await asyncio.sleep(0.1)
    while not heard.empty():
        got.append(heard.get_nowait())
    return got


async def test_a_hot_path_update_is_announced_after_its_commit(
    client: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    setup = await world(client, db)
    alice, _ = await player(client)
    conn, heard = await _listen(database_url)
    try:
        assert (await report(client, setup.game, alice, pointsDelta=5)).status_code == 200
        assert await _drain(heard) == [f"{setup.game.id}:{alice}"]
        # No points, nothing for the boards to hear.
        assert (await report(client, setup.game, alice, experienceDelta=5)).status_code == 200
        await asyncio.sleep(0.3)
        assert heard.empty()
    finally:
        await conn.close()


async def test_notices_wait_out_a_failed_send(db: asyncpg.Pool, database_url: str) -> None:
    class Flaky:
        """The real pool, whose first two statements fail as in a database outage."""

        failures = 2

        async def execute(self, *args: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise ConnectionResetError("the database went away")
            return await db.execute(*args)

    flaky = Flaky()
    notices = ScoreNotices(flaky, retry_seconds=0.05)  # type: ignore[arg-type]
    conn, heard = await _listen(database_url)
    try:
        game, user = uuid.uuid4(), uuid.uuid4()
        notices.changed(game, user)
        notices.changed(game, user)  # the same player twice: one notice
        assert await _drain(heard) == [f"{game}:{user}"]
        assert flaky.failures == 0
    finally:
        await notices.close()
        await conn.close()


async def test_too_many_waiting_become_one_resync_and_the_boards_are_read_again(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    assert await app.state.leaderboards.listener.wait_connected(10)
    game = await published_game(db)
    await bulk_players(db, 2)
    await board(client, game)  # this process now holds the board
    reloads = LOADS.labels("reload")._value.get()
    notices = ScoreNotices(db, max_pending=3)
    conn, heard = await _listen(database_url)
    try:
        for _ in range(5):  # sent only once this test yields: all five wait
            notices.changed(game, uuid.uuid4())
        assert await _drain(heard) == [RESYNC]

        async def read_again() -> bool:
            return bool(LOADS.labels("reload")._value.get() == reloads + 1)

        await eventually(read_again, within=5)
    finally:
        await notices.close()
        await conn.close()


async def test_a_starting_process_announces_the_last_minutes_updates(
    client: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    setup = await world(client, db)
    alice, _ = await player(client)
    bob, _ = await player(client)
    for who in (alice, bob, alice):
        assert (await report(client, setup.game, who, pointsDelta=1)).status_code == 200
    await db.execute(
        "UPDATE progress_updates SET created_at = now() - interval '5 minutes' WHERE user_id = $1",
        uuid.UUID(bob),
    )
    await asyncio.sleep(0.3)  # the updates' own notices have gone out
    conn, heard = await _listen(database_url)
    notices = ScoreNotices(db)
    try:
        assert await announce_recent_scores(db, notices, seconds=60) == 1
        assert await _drain(heard) == [f"{setup.game.id}:{alice}"]
    finally:
        await notices.close()
        await conn.close()
