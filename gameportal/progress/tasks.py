"""What `gameportal worker` does for progress: forget game servers' idempotency keys once
they are past their retention (`GAMEPORTAL_PROGRESS_IDEMPOTENCY_HOURS`)."""

from __future__ import annotations

import asyncpg
import structlog

from gameportal.config import Settings
from gameportal.notifications.registry import register_periodic
from gameportal.progress.repository import updates as repo

log = structlog.get_logger(__name__)

PRUNE_EVERY_SECONDS = 60.0
PRUNE_BATCH = 5000


class PruneUpdates:
    def __init__(self, hours: float) -> None:
        self.hours = hours

    async def __call__(self, pool: asyncpg.Pool) -> None:
        # In batches, each its own short statement: safe beside the hot path, and in
        # several workers at once (each batch deletes what is left).
        total = 0
        while True:
            done = await repo.prune_updates(pool, older_than_hours=self.hours, batch=PRUNE_BATCH)
            total += done
            if done < PRUNE_BATCH:
                break
        if total:
            log.info("progress_idempotency_keys_pruned", count=total)


def register_progress_tasks(settings: Settings) -> None:
    register_periodic(
        "progress.prune_updates",
        PRUNE_EVERY_SECONDS,
        PruneUpdates(settings.progress_idempotency_hours),
    )
