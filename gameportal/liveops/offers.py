"""Personalized offers (the seed's `UserProgress.personalizedOffers`): which campaigns each
player's progress row lists, and how the lists are kept in step.

A player's offers in a game are the live campaigns they are in (a request of theirs matched
and they were assigned a variant) whose segment their progress meets now; a campaign with
a segment is offered in its segment's game, one without in each of the player's games
(evaluation.offers_for). The lists are written where they change, and only there:

- on the player's own evaluation (GET /campaigns/active), which has the player's progress
  and stored offers from its one read anyway: a progress change (a level reached, an
  achievement unlocked) shows in the offers at the player's next evaluation, and the
  progress hot path does no live-ops work at all;
- by `gameportal worker` every GAMEPORTAL_LIVEOPS_OFFERS_SECONDS (`RefreshOffers`): the
  campaigns whose offer-relevant state moved since its last pass (activated, deactivated,
  deleted, their window opened or closed, their segment or variants edited) have their
  players' offers recomputed. Time-driven changes (a window that opens at 09:00) need no
  NOTIFY for this. A worker's first pass checks everything once.

Both write with one conditional UPDATE per batch; running in several workers at once only
repeats work, never disagrees.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable
from datetime import datetime

import asyncpg
import structlog

from gameportal.config import Settings
from gameportal.kit.time import utcnow
from gameportal.liveops import evaluation_repository as repo
from gameportal.liveops.evaluation import offers_for, player_state
from gameportal.liveops.snapshot import Snapshot, load
from gameportal.liveops.targeting import Campaign
from gameportal.notifications.registry import register_periodic

log = structlog.get_logger(__name__)

BATCH = 500


def _signature(c: Campaign, now: datetime) -> Hashable:
    """What a campaign's offers depend on, besides the players' progress."""
    in_window = (c.start_at is None or c.start_at <= now) and (c.end_at is None or now < c.end_at)
    return (c.active and in_window, c.segment, frozenset(v.id for v in c.variants))


class RefreshOffers:
    """The worker's periodic pass (see the module's docstring). Holds, between passes,
    each live campaign's signature as last seen."""

    def __init__(self) -> None:
        self._seen: dict[uuid.UUID, Hashable] | None = None

    async def __call__(self, pool: asyncpg.Pool) -> None:
        snap = await load(pool)
        now = utcnow()
        seen = {cid: _signature(view, now) for cid, view in snap.offer_views.items()}
        previous = self._seen
        changed = [cid for cid, sig in seen.items() if previous is None or previous.get(cid) != sig]
        gone = previous is None or any(cid not in seen for cid in previous)
        if changed or gone:
            updated = await refresh(pool, snap, changed, stale=gone, now=now)
            if updated:
                log.info("liveops_offers_refreshed", rows=updated, campaigns=len(changed))
        self._seen = seen


async def refresh(
    pool: asyncpg.Pool,
    snap: Snapshot,
    changed: list[uuid.UUID],
    *,
    stale: bool,
    now: datetime,
) -> int:
    """Recompute the offers of the players in `changed` campaigns (and, with `stale`, of
    those holding offers no longer live); how many progress rows changed."""
    live = [c.id for c in snap.campaigns] if stale else None
    updated = 0
    async for users in repo.affected_players(pool, changed, live=live, batch=BATCH):
        rows = await repo.players_state(pool, users, snap.achievement_games, snap.achievement_keys)
        changes: list[tuple[uuid.UUID, uuid.UUID, str]] = []
        for row in rows:
            state = player_state(row)
            computed = offers_for(snap, state.assigned, state.progress, now)
            for game, text in computed.items():
                if state.offers.get(game) != text:
                    changes.append((row["user_id"], game, text))
        updated += await repo.set_offers(pool, changes)
    return updated


def register_liveops_tasks(settings: Settings) -> None:
    register_periodic("liveops.refresh_offers", settings.liveops_offers_seconds, RefreshOffers())
