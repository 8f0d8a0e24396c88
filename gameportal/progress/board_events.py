"""Scores changed: what a progress write tells the leaderboards' rank caches.

The payload is `<gameId>:<userId>`; each API process LISTENs on `LEADERBOARD_CHANNEL` and
reads that player's scores again. `*` means "notices may have been lost: read every board
again".

Two ways to send, by how hot the write is:

- `notify_scores`, inside the write's transaction (an unlock, a level-up: rare), so the
  notice goes out at commit and only if it commits.
- `ScoreNotices`, after the commit (the progress hot path). A transaction that NOTIFYs
  holds PostgreSQL's notification lock from its commit's start until its WAL is on disk,
  so notifying transactions commit one at a time: measured with pgbench here (16 clients,
  one-row UPDATE per transaction), 5,000 commits a second without NOTIFY, 600 with it in
  the transaction, 2,700 with it sent after. The hot path's notices are gathered per
  process and sent, deduplicated, in one statement per turn of sending.
  The price: a process that dies between a commit and its notice (milliseconds) leaves
  other processes' boards behind for those players. `announce_recent_scores`, run when an
  API process starts, sends again the notices of the last minute's updates, which covers
  a worker the supervisor restarts after a crash.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import structlog

from gameportal.kit.db_outage import database_unavailable

LEADERBOARD_CHANNEL = "leaderboard"
RESYNC = "*"  # notices were lost: every board is read again

log = structlog.get_logger(__name__)

_SEND_SQL = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p"


def payload(game_id: uuid.UUID, user_id: uuid.UUID) -> str:
    return f"{game_id}:{user_id}"


def parse(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The game and player a payload names, or None for one this module did not write."""
    game, _, user = text.partition(":")
    try:
        return uuid.UUID(game), uuid.UUID(user)
    except ValueError:
        return None


async def notify_scores(conn: asyncpg.Connection, game_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Tell every API process, at commit, that this player's scores in this game moved."""
    await conn.execute("SELECT pg_notify($1, $2)", LEADERBOARD_CHANNEL, payload(game_id, user_id))


class ScoreNotices:
    """The notices of one API process's committed hot-path updates, sent after the commit.

    `changed` only records (no I/O, no waiting); one task sends everything recorded, in
    one statement, and again while more came meanwhile. While the database cannot be
    reached the notices wait and are retried every `retry_seconds`; past `max_pending`
    distinct players they are replaced by one RESYNC."""

    def __init__(
        self, pool: asyncpg.Pool, *, max_pending: int = 100_000, retry_seconds: float = 1.0
    ) -> None:
        self.pool = pool
        self.max_pending = max_pending
        self.retry_seconds = retry_seconds
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def changed(self, game_id: uuid.UUID, user_id: uuid.UUID) -> None:
        if RESYNC not in self._pending:
            self._pending.add(payload(game_id, user_id))
            if len(self._pending) > self.max_pending:
                self._pending = {RESYNC}
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, set()
            try:
                await self.pool.execute(_SEND_SQL, LEADERBOARD_CHANNEL, list(batch))
            except Exception as exc:
                self._pending |= batch
                if len(self._pending) > self.max_pending:
                    self._pending = {RESYNC}
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "leaderboard_notices_waiting",
                        players=len(self._pending),
                        database_unavailable=database_unavailable(exc),
                        error=repr(exc),
                    )
                await asyncio.sleep(self.retry_seconds)
                continue
            if self._failing:
                self._failing = False
                log.info("leaderboard_notices_sent_again")

    async def close(self, within: float = 2.0) -> None:
        """Send what is left (for at most `within` seconds), then stop."""
        task = self._task
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), within)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


_RECENT_SQL = """
SELECT DISTINCT game_id, user_id FROM progress_updates
WHERE created_at > now() - make_interval(secs => $1)
"""


async def announce_recent_scores(
    pool: asyncpg.Pool, notices: ScoreNotices, seconds: float = 60.0
) -> int:
    """Send again the notices of the updates of the last `seconds` (see the module's
    docstring); how many players that was."""
    try:
        rows = await pool.fetch(_RECENT_SQL, seconds)
    except asyncpg.UndefinedTableError:
        return 0  # a database not migrated yet (/readyz says so): nothing was written
    for row in rows:
        notices.changed(row["game_id"], row["user_id"])
    return len(rows)
