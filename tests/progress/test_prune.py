"""Idempotency keys are forgotten after their retention, by the worker's periodic task."""

from __future__ import annotations

import asyncpg
import httpx

from gameportal.notifications.registry import periodic_tasks, unregister_periodic
from gameportal.progress.tasks import PruneUpdates, register_progress_tasks
from tests.conftest import make_settings
from tests.progress.support import player, report, world


async def test_keys_past_their_retention_are_forgotten(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    w = await world(client, db)
    user_id, _ = await player(client)
    await report(client, w.game, user_id, pointsDelta=1, idempotencyKey="old")
    await report(client, w.game, user_id, pointsDelta=1, idempotencyKey="new")
    await db.execute(
        "UPDATE progress_updates SET created_at = now() - interval '25 hours' "
        "WHERE idempotency_key = 'old'"
    )
    await PruneUpdates(24)(db)
    keys = await db.fetch("SELECT idempotency_key FROM progress_updates")
    assert [r["idempotency_key"] for r in keys] == ["new"]
    # Past its retention a key is new again: the same update applies a second time.
    again = await report(client, w.game, user_id, pointsDelta=1, idempotencyKey="old")
    assert again.json()["points"] == 3


def test_the_worker_runs_the_pruning(database_url: str) -> None:
    register_progress_tasks(make_settings(database_url, progress_idempotency_hours=2))
    try:
        (task,) = [t for t in periodic_tasks() if t.name == "progress.prune_updates"]
        assert isinstance(task.run, PruneUpdates) and task.run.hours == 2
    finally:
        unregister_periodic("progress.prune_updates")
