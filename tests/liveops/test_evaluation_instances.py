"""The campaign snapshot held by several API processes on one database: a change made
through one process's admin API is evaluated by the other within a second; a process whose
LISTEN connection was cut reads the campaigns again; a database outage leaves the snapshot
in place, and changes reach it again afterwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.app import create_app
from gameportal.liveops import LIVEOPS_CHANNEL
from tests.conftest import PLAYER_IP, make_settings
from tests.faults import StoppablePostgres
from tests.liveops.evaluation_support import (
    GB_IP,
    active,
    campaign,
    eventually,
    ids,
    settle,
    variant,
    visitor,
)


@pytest.fixture
async def other_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second API instance on the same database, with its own snapshot and listener."""
    other = create_app(make_settings(database_url))
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=(PLAYER_IP, 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as client:
            client.app = other  # type: ignore[attr-defined]
            yield client


async def test_a_change_committed_through_one_instance_is_evaluated_by_the_other_within_a_second(
    app: FastAPI,
    client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
    db: asyncpg.Pool,
) -> None:
    other: FastAPI = other_client.app  # type: ignore[attr-defined]
    made = await campaign(db, [await variant(db)], active=False)
    await settle(app)
    await settle(other)
    who = visitor()
    assert await active(other_client, who) == []

    async def switch(on: bool) -> None:
        # As the admin API does on this instance's pool: the change and its NOTIFY in
        # one transaction, heard at commit.
        async with db.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE campaigns SET active = $2 WHERE id = $1", made, on)
            await conn.execute("SELECT pg_notify($1, $2)", LIVEOPS_CHANNEL, str(made))

    await switch(True)

    async def seen_there() -> bool:
        return ids(await active(other_client, who)) == [made]

    assert await eventually(seen_there, within=1.0) < 1.0
    await switch(False)

    async def gone_there() -> bool:
        return await active(other_client, who) == []

    assert await eventually(gone_there, within=1.0) < 1.0


async def test_after_the_listen_connection_is_cut_the_campaigns_are_read_again(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await settle(app)
    loads = app.state.liveops.loads
    # A change whose NOTIFY this process never hears (as while its connection is down).
    made = await campaign(db, [await variant(db)])
    cut = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    )
    assert cut == 1

    async def read_again() -> bool:
        return ids(await active(client, visitor())) == [made]

    await eventually(read_again, within=10)
    assert app.state.liveops.loads > loads


async def test_a_notify_reloads_and_the_periodic_resync_catches_what_no_one_announced(
    database_url: str, db: asyncpg.Pool
) -> None:
    app = create_app(make_settings(database_url, liveops_resync_seconds=0.3))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(PLAYER_IP, 40002))
        async with httpx.AsyncClient(transport=transport, base_url="http://third") as client:
            pool = app.state.db.pool
            quiet = await campaign(pool, [await variant(pool)])  # no NOTIFY sent

            async def resynced() -> bool:
                return ids(await active(client, visitor())) == [quiet]

            await eventually(resynced, within=5)
            heard = app.state.liveops.notified
            await pool.execute("SELECT pg_notify($1, 'changed')", LIVEOPS_CHANNEL)
            await eventually(lambda: _heard(app, heard), within=2)


async def _heard(app: FastAPI, before: int) -> bool:
    return bool(app.state.liveops.notified > before)


async def test_the_snapshot_answers_through_a_database_outage_and_follows_changes_after(
    stoppable_pg: StoppablePostgres, stoppable_database_url: str
) -> None:
    app = create_app(make_settings(stoppable_database_url, trusted_proxies=["8.8.8.0/24"]))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(PLAYER_IP, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            pool = app.state.db.pool
            ranged = await campaign(pool, [await variant(pool)], ip_ranges=["81.2.69.0/24"])
            await settle(app)
            listener = app.state.inbox_hub.listener
            assert ids(await active(client, visitor(), ip=GB_IP)) == [ranged]

            stoppable_pg.stop()
            try:
                await _until(lambda: not listener.connected, within=10)
                # Nothing matches this address: answered from memory, no statement needed.
                assert await active(client, visitor(), ip="5.9.0.1") == []
                # A match needs the log: the database is away, 503 with Retry-After.
                down = await client.get(
                    "/api/v1/campaigns/active",
                    headers={**visitor(), "X-Forwarded-For": GB_IP},
                )
                assert down.status_code == 503 and "Retry-After" in down.headers
                assert app.state.liveops.current.by_id.keys() == {ranged}
            finally:
                stoppable_pg.start()

            await _until(lambda: listener.connected, within=30)
            later = await campaign(pool, [await variant(pool)], countries=["DE"])
            await pool.execute("SELECT pg_notify($1, 'changed')", LIVEOPS_CHANNEL)

            async def caught_up() -> bool:
                return ids(await active(client, visitor(), ip="5.9.0.1")) == [later]

            await eventually(caught_up, within=5)


async def _until(condition: object, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.02)
