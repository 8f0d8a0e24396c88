"""Each API process's snapshot of the live campaigns: compiled, with one IP range index
over all of them and every answer fragment rendered, so that evaluating a request is work
in memory only.

- Loaded at start, then again on `LIVEOPS_CHANNEL` (sent after any campaign or A/B rule
  change commits): a NOTIFY reaches every process within milliseconds, and the new
  snapshot (one repeatable-read transaction, compiled off the event loop) replaces the old
  one whole, so a request sees either.
- On `gameportal_content` for an item some campaign shows (its title or status changed).
- After the LISTEN connection comes back (a database outage, a network cut), since the
  NOTIFYs sent meanwhile are lost; and every `resync_seconds` whatever happens, a safety
  net for anything missed (and to drop campaigns whose end has passed).

NOTIFYs that arrive during a load make one more load once it is done. A load that fails
(the database is away) keeps the old snapshot and is tried again every second; the outage
is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
import structlog
from prometheus_client import Counter, Gauge

from gameportal.content.repository import CONTENT_CHANNEL
from gameportal.kit.listener import PgListener
from gameportal.kit.schemas import utc_text
from gameportal.kit.time import utcnow
from gameportal.liveops import LIVEOPS_CHANNEL
from gameportal.liveops import evaluation_repository as repo
from gameportal.liveops.ipranges import IpRangeIndex
from gameportal.liveops.targeting import Campaign, Variant, compile_campaign
from gameportal.models.liveops import ABRule, MarketingCampaign

log = structlog.get_logger(__name__)

RETRY_SECONDS = 1.0

CAMPAIGNS = Gauge(
    "gameportal_liveops_campaigns",
    "Live campaigns held by each API process's snapshot",
    multiprocess_mode="livemax",
)
SNAPSHOT_LOADS = Counter(
    "gameportal_liveops_snapshot_loads_total",
    "Campaign snapshots read from the database, by outcome (`ok`, `failed`)",
    ["outcome"],
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    campaigns: tuple[Campaign, ...]  # by id: creation order
    by_id: Mapping[uuid.UUID, Campaign]
    position: Mapping[uuid.UUID, int]
    # Campaigns without IP ranges: candidates for every request. The others are found
    # through the index.
    unranged: tuple[Campaign, ...]
    ip_index: IpRangeIndex
    variants: Mapping[uuid.UUID, Mapping[uuid.UUID, Variant]]  # campaign -> id -> variant
    # The answer's JSON object for each (campaign, variant).
    fragments: Mapping[tuple[uuid.UUID, uuid.UUID], bytes]
    # Each campaign with its request rules (countries, IP ranges, devices, languages) left
    # out: what a player's personalized offers are checked against.
    offer_views: Mapping[uuid.UUID, Campaign]
    # The (game, achievement key) pairs segments ask about, as the statements take them.
    achievement_games: list[uuid.UUID]
    achievement_keys: list[str]
    # Every content item a campaign or variant names, published or not.
    referenced_content: frozenset[uuid.UUID]

    @classmethod
    def empty(cls) -> Snapshot:
        return build(repo.SnapshotRows([], [], [], []))


def _content_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "type": row["type"],
        "title": row["title"],
        "slug": row["slug"],
        "locale": row["locale"],
    }


def _fragment(
    c: Campaign, v: Variant, content: Mapping[uuid.UUID, dict[str, Any]], end_at: datetime | None
) -> bytes:
    # The campaign's content, then the variant's; unpublished items are left out.
    shown = [content[i] for i in dict.fromkeys((*c.content_ids, *v.content_ids)) if i in content]
    return orjson.dumps(
        {
            "id": str(c.id),
            "variantId": str(v.id),
            "payload": v.payload,
            "content": shown,
            "endAt": utc_text(end_at) if end_at is not None else None,
        }
    )


def _row(model: type[Any], record: asyncpg.Record) -> Any:
    # compile_campaign takes the ORM rows; built detached from the records.
    return model(**dict(record))


def build(rows: repo.SnapshotRows) -> Snapshot:
    """Compile the rows into a snapshot (CPU only: run off the event loop)."""
    rules: dict[uuid.UUID, ABRule] = {r["id"]: _row(ABRule, r) for r in rows.rules}
    ranged = {r["campaign_id"] for r in rows.ranges}
    content = {r["id"]: _content_json(r) for r in rows.content}
    campaigns: list[Campaign] = []
    for record in rows.campaigns:
        row: MarketingCampaign = _row(MarketingCampaign, record)
        campaigns.append(compile_campaign(row, rules, record["id"] in ranged))
    index = IpRangeIndex.build((r["campaign_id"], r["cidr"]) for r in rows.ranges)
    fragments: dict[tuple[uuid.UUID, uuid.UUID], bytes] = {}
    variants: dict[uuid.UUID, dict[uuid.UUID, Variant]] = {}
    achievements: set[tuple[uuid.UUID, str]] = set()
    offer_views: dict[uuid.UUID, Campaign] = {}
    for c in campaigns:
        variants[c.id] = {v.id: v for v in c.variants}
        for v in c.variants:
            fragments[c.id, v.id] = _fragment(c, v, content, c.end_at)
        if c.segment is not None and c.segment.has_achievement is not None:
            achievements.add((c.segment.game_id, c.segment.has_achievement))
        offer_views[c.id] = dataclasses.replace(
            c, countries=None, device_types=None, languages=None, has_ip_ranges=False
        )
    pairs = sorted(achievements)
    return Snapshot(
        campaigns=tuple(campaigns),
        by_id={c.id: c for c in campaigns},
        position={c.id: i for i, c in enumerate(campaigns)},
        unranged=tuple(c for c in campaigns if not c.has_ip_ranges),
        ip_index=index,
        variants=variants,
        fragments=fragments,
        offer_views=offer_views,
        achievement_games=[g for g, _ in pairs],
        achievement_keys=[k for _, k in pairs],
        referenced_content=frozenset(
            i
            for c in campaigns
            for i in (*c.content_ids, *(x for v in c.variants for x in v.content_ids))
        ),
    )


async def load(pool: asyncpg.Pool) -> Snapshot:
    rows = await repo.snapshot_rows(pool)
    return await asyncio.to_thread(build, rows)


class CampaignSnapshots:
    """The process's current snapshot, kept in step (see the module's docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        resync_seconds: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.pool = pool
        self.resync_seconds = resync_seconds
        # What "now" is for schedules; tests move it to a window's edges.
        self.clock = clock
        self.current: Snapshot | None = None
        self.loads = 0  # snapshots put in place so far
        self.notified = 0  # LIVEOPS_CHANNEL NOTIFYs heard so far
        self._again = False
        self._loader: asyncio.Task[None] | None = None
        self._resync: asyncio.Task[None] | None = None
        self._failing_since: float | None = None
        self._loaded = asyncio.Event()

    # --- wiring ----------------------------------------------------------------------

    def attach(self, listener: PgListener) -> None:
        listener.on(LIVEOPS_CHANNEL, self._on_change)
        listener.on(CONTENT_CHANNEL, self._on_content)
        listener.on_state(self._on_state)

    async def start(self, *, within: float = 10.0) -> None:
        """Load the first snapshot (waiting up to `within` seconds: until it is in place
        the evaluation answers 503) and start the periodic resync."""
        self.reload()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._loaded.wait(), within)
        self._resync = asyncio.get_running_loop().create_task(self._resync_forever())

    async def close(self) -> None:
        tasks = [t for t in (self._loader, self._resync) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def settled(self) -> bool:
        """No load under way nor asked for: the snapshot reflects every change heard."""
        return self.current is not None and (self._loader is None or self._loader.done())

    # --- loading ---------------------------------------------------------------------

    def reload(self) -> None:
        """Load again soon: now, or right after the load under way."""
        self._again = True
        if self._loader is None or self._loader.done():
            self._loader = asyncio.get_running_loop().create_task(self._load_while_asked())

    async def _load_while_asked(self) -> None:
        while self._again:
            self._again = False
            started = time.perf_counter()
            try:
                snapshot = await load(self.pool)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: keep the old snapshot
                SNAPSHOT_LOADS.labels("failed").inc()
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.warning("liveops_snapshot_load_failed", error=repr(exc)[:300])
                self._again = True
                await asyncio.sleep(RETRY_SECONDS)
                continue
            self.current = snapshot
            self.loads += 1
            self._loaded.set()
            SNAPSHOT_LOADS.labels("ok").inc()
            CAMPAIGNS.set(len(snapshot.campaigns))
            if self._failing_since is not None:
                log.warning(
                    "liveops_snapshot_load_restored",
                    down_seconds=round(time.monotonic() - self._failing_since, 2),
                )
                self._failing_since = None
            log.debug(
                "liveops_snapshot_loaded",
                campaigns=len(snapshot.campaigns),
                ip_ranges=snapshot.ip_index.range_count,
                seconds=round(time.perf_counter() - started, 4),
            )

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            self.reload()

    # --- NOTIFY ----------------------------------------------------------------------

    def _on_change(self, _payload: str) -> None:
        self.notified += 1
        self.reload()

    def _on_content(self, payload: str) -> None:
        try:
            content_id = uuid.UUID(payload)
        except ValueError:
            return
        # Only an item some campaign names (its title changed, it was published or
        # withdrawn) changes an answer.
        current = self.current
        if current is None or content_id in current.referenced_content:
            self.reload()

    def _on_state(self, connected: bool) -> None:
        if connected:
            # Whatever was notified while the connection was down is lost.
            self.reload()
