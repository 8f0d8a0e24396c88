"""The stoppable server used by fault tests really stops and comes back on the same URL."""

from __future__ import annotations

import asyncpg
import pytest

from tests.faults import StoppablePostgres


async def test_stop_refuses_connections_and_start_restores_them(
    stoppable_pg: StoppablePostgres, stoppable_database_url: str
) -> None:
    conn = await asyncpg.connect(stoppable_database_url)
    assert await conn.fetchval("SELECT count(*) FROM alembic_version") == 1
    await conn.close()
    stoppable_pg.stop()
    try:
        with pytest.raises(OSError):
            await asyncpg.connect(stoppable_database_url, timeout=5)
    finally:
        stoppable_pg.start()
    conn = await asyncpg.connect(stoppable_database_url)
    assert await conn.fetchval("SELECT 1") == 1
    await conn.close()
