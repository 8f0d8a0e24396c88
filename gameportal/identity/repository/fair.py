"""A first-come, first-served gate in front of the hot-path pool.

With more requests in flight than connections (32 against 10 in the benchmark), GET /me's
p99 was 4x its median (16 ms against 3.8 ms) and a smaller pool made it worse (40 ms with
4 connections): the tail is requests waiting for a connection. A semaphore as wide as the
pool (FIFO in Python 3.11) lets them at the connections in the order they came, and the
pool itself never has anyone waiting: measured p99 8-10 ms at the same throughput. Why
asyncpg's own wait queue leaves the longer tail was not pinned down (a test of arrival
order did not show it), so this is a measured remedy, not a proven diagnosis.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

# A process has one pool (tests make one per app): the newest few are kept. asyncpg's
# Pool takes no weak reference, hence the pool itself beside its gate.
_gates: dict[int, tuple[asyncpg.Pool, asyncio.Semaphore]] = {}
_KEPT = 8


def gate(pool: asyncpg.Pool) -> asyncio.Semaphore:
    found = _gates.get(id(pool))
    if found is None or found[0] is not pool:
        if len(_gates) >= _KEPT:
            del _gates[next(iter(_gates))]
        found = _gates[id(pool)] = (pool, asyncio.Semaphore(pool.get_max_size()))
    return found[1]


async def fetchrow(pool: asyncpg.Pool, query: str, *args: Any) -> asyncpg.Record | None:
    async with gate(pool):
        row: asyncpg.Record | None = await pool.fetchrow(query, *args)
        return row
