"""What each API process keeps for progress: the progress updates being written (group
commit) and the leaderboard notices still to send, when it last wrote a key's lastUsedAt,
and a game's unlock counts for a while."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from gameportal.config import Settings
from gameportal.progress.board_events import ScoreNotices
from gameportal.progress.repository import reads
from gameportal.progress.repository import updates as repo
from gameportal.progress.service.batching import UpdateBatcher

KEY_TOUCH_SECONDS = 60.0
_MAX_ENTRIES = 10_000  # keys or games remembered; past that, start afresh


class KeyUse:
    """A key's lastUsedAt is written at most once a minute per process: a game server
    sending a thousand updates a second must not also write its key's row a thousand
    times (one hot row every request would queue on)."""

    def __init__(self, every_seconds: float = KEY_TOUCH_SECONDS) -> None:
        self.every = every_seconds
        self._written: dict[uuid.UUID, float] = {}

    async def used(self, pool: asyncpg.Pool, key_id: uuid.UUID) -> None:
        now = time.monotonic()
        last = self._written.get(key_id)
        if last is not None and now - last < self.every:
            return
        if len(self._written) >= _MAX_ENTRIES:
            self._written.clear()
        self._written[key_id] = now
        await repo.touch_key(pool, key_id)


@dataclass(frozen=True)
class UnlockCounts:
    players: int
    unlocks: dict[uuid.UUID, int]

    def rate(self, achievement_id: uuid.UUID) -> float:
        if self.players == 0:
            return 0.0
        return min(1.0, self.unlocks.get(achievement_id, 0) / self.players)


class UnlockStats:
    """A game's player and unlock counts, reused for `ttl` seconds: counting a game's
    players reads an index entry per player, too much for every catalogue read of a
    popular game. Rates are statistics; seconds old is fine (0 turns the reuse off)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[uuid.UUID, tuple[float, UnlockCounts]] = {}

    async def of(self, pool: asyncpg.Pool, game_id: uuid.UUID) -> UnlockCounts:
        now = time.monotonic()
        held = self._entries.get(game_id)
        if held is not None and now - held[0] < self.ttl:
            return held[1]
        players, unlocks = await reads.unlock_counts(pool, game_id)
        counts = UnlockCounts(players=players, unlocks=unlocks)
        if self.ttl > 0:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[game_id] = (now, counts)
        return counts


class ProgressRuntime:
    def __init__(self, settings: Settings) -> None:
        self.batcher = UpdateBatcher(
            max_batch=settings.progress_batch_size, in_flight=settings.progress_batches_in_flight
        )
        self.key_use = KeyUse()
        self.unlock_stats = UnlockStats(settings.achievement_stats_seconds)
        self._notices: ScoreNotices | None = None

    def notices(self, pool: asyncpg.Pool) -> ScoreNotices:
        """The leaderboards' notices of this process's hot-path updates (board_events)."""
        if self._notices is None or self._notices.pool is not pool:
            self._notices = ScoreNotices(pool)
        return self._notices


def runtime(state: Any) -> ProgressRuntime:
    """The process's ProgressRuntime, made on first use (`state` is `app.state`)."""
    found: ProgressRuntime | None = getattr(state, "progress", None)
    if found is None:
        found = ProgressRuntime(state.settings)
        state.progress = found
    return found
