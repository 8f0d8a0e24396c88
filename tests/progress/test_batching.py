"""Group commit: updates arriving together are written by one statement, and one update's
failure in a batch stays its own."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Sequence
from functools import partial

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.progress.repository import updates as repo
from gameportal.progress.schemas import ProgressChange
from gameportal.progress.service.batching import UpdateBatcher
from gameportal.progress.service.runtime import runtime
from gameportal.progress.service.updates import request_hash
from tests.progress.support import player, report, world


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"progress_batches_in_flight": 1, "progress_batch_size": 8}


async def test_updates_that_arrive_together_share_a_statement(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    players = [(await player(client))[0] for _ in range(6)]
    sizes: list[int] = []
    real = repo.fast_updates

    async def observed(pool: asyncpg.Pool, updates: Sequence[repo.FastUpdate]) -> list:  # type: ignore[type-arg]
        sizes.append(len(updates))
        return await real(pool, updates)

    repo.fast_updates = observed  # type: ignore[assignment]
    try:
        answers = await asyncio.gather(
            *(report(client, w.game, p, pointsDelta=2) for p in players for _ in range(3))
        )
    finally:
        repo.fast_updates = real  # type: ignore[assignment]
    assert {a.status_code for a in answers} == {200}
    assert sum(sizes) == 18 and len(sizes) < 18, sizes
    assert max(sizes) <= 6  # never two updates of one player in a batch
    totals = await db.fetch("SELECT points FROM user_progress")
    assert [r["points"] for r in totals] == [6] * 6


async def test_a_batch_that_fails_is_tried_update_by_update(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    """A key taken by a transaction elsewhere fails the batch it is in; its neighbour is
    written all the same, and the key gets the other transaction's answer."""
    w = await world(client, db)
    (blocker, taken, neighbour) = [(await player(client))[0] for _ in range(3)]
    await report(client, w.game, blocker, pointsDelta=1)
    change = ProgressChange(points_delta=4, idempotency_key="elsewhere")
    elsewhere = {
        "level": 1,
        "experience": 0,
        "points": 40,
        "stats": {},
        "last_activity_at": "2026-01-01T00:00:00+00:00",
        "unlocked": [],
    }
    holder = await asyncpg.connect(database_url)
    key_holder = await asyncpg.connect(database_url)
    try:
        # The one batch slot is held by an update waiting for a locked row...
        lock = holder.transaction()
        await lock.start()
        await holder.execute(
            "SELECT 1 FROM user_progress WHERE user_id = $1 FOR UPDATE", uuid.UUID(blocker)
        )
        first = asyncio.create_task(report(client, w.game, blocker, pointsDelta=1))
        await asyncio.sleep(0.2)
        # ...while another transaction holds the idempotency key, not yet committed...
        claim = key_holder.transaction()
        await claim.start()
        await key_holder.execute(
            "INSERT INTO progress_updates (game_id, idempotency_key, user_id, request_hash, "
            "result) VALUES ($1, 'elsewhere', $2, $3, $4::jsonb)",
            uuid.UUID(w.game.id),
            uuid.UUID(taken),
            request_hash(uuid.UUID(taken), change),
            json.dumps(elsewhere),
        )
        # ...so these two wait, and go together in the next batch.
        late = [
            asyncio.create_task(
                report(client, w.game, taken, pointsDelta=4, idempotencyKey="elsewhere")
            ),
            asyncio.create_task(report(client, w.game, neighbour, pointsDelta=5)),
        ]
        await asyncio.sleep(0.2)
        assert len(runtime(app.state).batcher._waiting) == 2
        await lock.commit()
        assert (await first).status_code == 200
        await asyncio.sleep(0.3)  # the batch now waits on the uncommitted key
        await claim.commit()
        keyed, other = await asyncio.gather(*late)
    finally:
        await holder.close()
        await key_holder.close()
    assert keyed.status_code == 200, keyed.text
    assert keyed.json()["points"] == 40  # the other transaction's answer
    assert other.status_code == 200 and other.json()["points"] == 5
    taken_points = await db.fetchval(
        "SELECT points FROM user_progress WHERE user_id = $1", uuid.UUID(taken)
    )
    assert taken_points is None  # the update under the taken key was not applied again


async def test_the_batcher_alone(app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    """Direct use, as the route does: each caller gets its own update's row."""
    w = await world(client, db)
    players = [uuid.UUID((await player(client))[0]) for _ in range(3)]
    await report(client, w.game, str(players[0]), pointsDelta=1)
    key_row = await db.fetchrow("SELECT key_hash FROM game_api_keys")
    batcher = runtime(app.state).batcher
    execute = partial(repo.fast_updates, db)
    rows = await asyncio.gather(
        *(
            batcher.submit(
                execute,
                dataclasses.replace(
                    _update(n, p),
                    key_hash=bytes(key_row["key_hash"]),
                    game_id=uuid.UUID(w.game.id),
                    idempotency_key=f"direct-{n}",
                    points=n + 1,
                ),
            )
            for n, p in enumerate(players)
        )
    )
    assert [r["points"] for r in rows] == [2, 2, 3]


def _update(n: int, player: uuid.UUID | None = None) -> repo.FastUpdate:
    return repo.FastUpdate(
        key_hash=b"k" * 32,
        game_id=uuid.UUID(int=1),
        user_id=player or uuid.uuid4(),
        idempotency_key=f"policy-{n}",
        request_hash=b"x" * 32,
        points=1,
        experience=0,
        level=None,
        stats={},
        new_id=uuid.uuid4(),
    )


async def test_the_next_batch_forms_behind_the_running_one() -> None:
    """Free slots are not spent on single updates: while a batch is written, arrivals
    wait and go together when it is done; a second batch runs beside it only once a full
    batch waits. (Starting one per arrival made most batches a single update.)"""
    batcher = UpdateBatcher(max_batch=4, in_flight=3)
    started: list[int] = []
    release = [asyncio.Event() for _ in range(3)]

    async def execute(updates: Sequence[repo.FastUpdate]) -> list[dict[str, object]]:
        started.append(len(updates))
        await release[len(started) - 1].wait()
        return [{"n": u.idempotency_key} for u in updates]

    first = asyncio.create_task(batcher.submit(execute, _update(0)))
    await asyncio.sleep(0.01)
    assert started == [1]  # nothing was being written: at once, alone
    waiting = [asyncio.create_task(batcher.submit(execute, _update(n))) for n in range(1, 4)]
    await asyncio.sleep(0.01)
    assert started == [1]  # three wait behind the running batch, slots free or not
    more = [asyncio.create_task(batcher.submit(execute, _update(n))) for n in range(4, 6)]
    await asyncio.sleep(0.01)
    assert started == [1, 4]  # a full batch waited: it runs beside the first
    release[0].set()
    assert (await first)["n"] == "policy-0"
    await asyncio.sleep(0.01)
    assert started == [1, 4]  # the one left waits for the batch still being written
    release[1].set()
    await asyncio.sleep(0.01)
    assert started == [1, 4, 1]
    release[2].set()
    answers = await asyncio.gather(*waiting, *more)
    assert sorted(a["n"] for a in answers) == sorted(f"policy-{n}" for n in range(1, 6))


async def test_single_updates_keep_one_plan(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    """A quiet game's updates come one at a time; PostgreSQL must not plan each afresh.
    Fed arrays of one, it saw one row in every custom plan and a hundred in the generic
    one, so it kept making custom plans: about 1.1 ms each, against 0.4 ms of work."""
    w = await world(client, db)
    game_id = uuid.UUID(w.game.id)
    user_id = uuid.UUID((await player(client))[0])
    key_hash = bytes(await db.fetchval("SELECT key_hash FROM game_api_keys"))
    # A game with a history: on nearly empty tables even arrays kept the generic plan.
    await db.execute(
        """
        WITH u AS (
            INSERT INTO users (id, email, name, password_hash)
            SELECT gen_random_uuid(), 'plan-' || g || '@example.com', 'Player', 'x'
            FROM generate_series(1, 10000) g
            RETURNING id
        ), p AS (
            INSERT INTO user_progress (id, user_id, game_id, points)
            SELECT gen_random_uuid(), id, $1, 1 FROM u
        ), s AS (
            INSERT INTO leaderboard_scores (game_id, period, period_start, user_id, points,
                                            reached_at)
            SELECT $1, b.period, current_date, u.id, 1, now()
            FROM u, (VALUES ('week'), ('month')) AS b (period)
        )
        INSERT INTO progress_updates (game_id, idempotency_key, user_id, request_hash, result)
        SELECT $1, 'old-' || u.id || '-' || n, u.id, '\\x00', '{}'::jsonb
        FROM u, generate_series(1, 3) AS n
        """,
        game_id,
    )
    await db.execute("ANALYZE")
    async with app.state.db.pool.acquire() as conn:  # the API's, with its codecs
        for n in range(8):
            update = dataclasses.replace(_update(n, user_id), key_hash=key_hash, game_id=game_id)
            (row,) = await repo.fast_updates(conn, [update])
            assert row["points"] == n + 1, dict(row)
        plans = await conn.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            repo.FAST_UPDATE_ONE_SQL,
        )
    assert plans["custom_plans"] <= 5 and plans["generic_plans"] >= 3, dict(plans)
