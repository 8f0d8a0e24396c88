"""The hot-path pool hands connections out in the order they were asked for.

asyncpg's own pool lets a request that asks just as a connection comes back take it from
a request that was already waiting (which then goes to the back of the line); under load
that was GET /me's long tail. Database's pool (db.FairPool) does not."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from gameportal.db import Database, plain_url
from tests.conftest import make_settings


async def _order_of_acquisition(pool: asyncpg.Pool) -> list[str]:
    """One connection, held; a request waits for it; another arrives as it comes back."""
    order: list[str] = []
    held = await pool.acquire()

    async def waiter() -> None:
        async with pool.acquire():
            order.append("waiting first")

    async def newcomer() -> None:
        # A request that arrives on the turn of the event loop the connection comes
        # back (under load there is always one).
        while pool.get_idle_size() == 0:  # noqa: ASYNC110 (polling is the point)
            await asyncio.sleep(0)
        async with pool.acquire():
            order.append("arrived later")

    first = asyncio.create_task(waiter())
    for _ in range(5):
        await asyncio.sleep(0)  # the waiter is now waiting for the connection
    second = asyncio.create_task(newcomer())
    await asyncio.sleep(0)
    await pool.release(held)
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    return order


async def test_asyncpg_pool_lets_a_newcomer_barge_ahead(database_url: str) -> None:
    # The cause, shown on a plain asyncpg pool: if this starts passing, asyncpg has
    # become fair and FairPool can go.
    pool = await asyncpg.create_pool(plain_url(database_url), min_size=1, max_size=1)
    try:
        assert await _order_of_acquisition(pool) == ["arrived later", "waiting first"]
    finally:
        await pool.close()


async def test_database_pool_is_first_come_first_served(database_url: str) -> None:
    db = await Database.connect(make_settings(database_url, db_pool_size=1))
    try:
        assert await _order_of_acquisition(db.pool) == ["waiting first", "arrived later"]
        # Permits come back: the pool is usable to its full width afterwards.
        assert await db.pool.fetchval("SELECT 1") == 1
    finally:
        await db.close()


async def test_database_pool_acquire_timeout_counts_the_wait(database_url: str) -> None:
    db = await Database.connect(make_settings(database_url, db_pool_size=1))
    try:
        async with db.pool.acquire():
            with pytest.raises(TimeoutError):
                await db.pool.acquire(timeout=0.05)
        # The timed-out attempt gave nothing away and took nothing.
        async with db.pool.acquire(timeout=1) as con:
            assert await con.fetchval("SELECT 1") == 1
    finally:
        await db.close()
