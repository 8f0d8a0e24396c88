"""Prometheus series of the queue: depth (read at scrape time), work done, latency."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from gameportal.models import MESSAGE_TYPES

PROCESSED = Counter(
    "gameportal_queue_processed_total", "Messages settled by a worker", ["type", "outcome"]
)
_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200)
LATENCY = Histogram(
    "gameportal_queue_latency_seconds",
    "Waiting while due: from scheduledAt (moved by each retry) to sent",
    ["type"],
    buckets=_BUCKETS,
)
END_TO_END = Histogram(
    "gameportal_queue_end_to_end_seconds",
    "From queued (createdAt) to sent, retries and any deliberate scheduling included",
    ["type"],
    buckets=_BUCKETS,
)
# Set by whichever API process serves a scrape, just before it collects. With several
# processes (PROMETHEUS_MULTIPROC_DIR) each keeps the value of its own last scrape:
# "mostrecent" reports the newest, the one just read from the database, where "max" or
# "sum" would mix in other processes' stale readings and "liveall" would show one series
# per process.
DEPTH = Gauge(
    "gameportal_queue_depth",
    "Unfinished messages by type and status",
    ["type", "status"],
    multiprocess_mode="mostrecent",
)

# Only unfinished rows: the partial indexes make this cheap at any table size.
_DEPTH_SQL = """
SELECT type, status, count(*) AS n FROM messages
WHERE status IN ('PENDING', 'PROCESSING') GROUP BY type, status
"""


async def refresh_depth(app: Any) -> None:
    rows = await app.state.db.pool.fetch(_DEPTH_SQL)
    seen = {(r["type"], r["status"]): r["n"] for r in rows}
    for message_type in MESSAGE_TYPES:
        for status in ("PENDING", "PROCESSING"):
            DEPTH.labels(message_type, status).set(seen.get((message_type, status), 0))
