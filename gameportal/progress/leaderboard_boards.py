"""Each API process's leaderboards: loaded from PostgreSQL on first use, then kept in step
by NOTIFY, so that a rank is a lookup in memory and never a count over the table.

- `leaderboard` (game:user, sent by progress updates: see board_events): that player's
  scores in that game are read again (one statement for every NOTIFY that arrived
  meanwhile) and moved on the boards of that game this process holds. NOTIFYs for games
  with no board here cost nothing. `*` (notices were lost): as after a reconnect, below.
- `gameportal_users` (user, sent by identity when a player is blocked, unblocked,
  renamed or erased): the same for every game held, and the cached name is dropped.
- `gameportal_content` (content id): whether that game is a published GAME is asked
  again on its next read.
- After the LISTEN connection comes back (a database outage, a network cut), NOTIFYs may
  have been missed: every board held is loaded again in the background and swapped in;
  until then the old one answers.

A board being loaded remembers the players notified meanwhile and reads them again once
it is in place, so nothing that commits during a load is lost. Boards nobody has read
for `idle_seconds` are dropped (their memory with them) and loaded again when next read.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import asyncpg
import orjson
import structlog

from gameportal.content.repository import CONTENT_CHANNEL
from gameportal.identity.repository import USER_CHANNEL
from gameportal.kit.listener import PgListener
from gameportal.kit.time import utcnow
from gameportal.progress import board_events
from gameportal.progress import leaderboard_repository as repo
from gameportal.progress.leaderboard import Changed, Period, RankBoard, keys_from_rows
from gameportal.progress.leaderboard_metrics import BOARDS, LOAD_SECONDS, LOADS, PLAYERS, REREADS

log = structlog.get_logger(__name__)

BoardKey = tuple[uuid.UUID, Period, date | None]  # game, period, period start

PAGES_PER_BOARD = 64  # rendered pages kept per board (top pages, popular offsets)
SWEEP_EVERY_SECONDS = 60.0
RETRY_SECONDS = 1.0


def player_json(user_id: uuid.UUID, name: str | None) -> bytes:
    """`"userId":"…","displayName":…`: what orjson writes for those two fields."""
    return b'"userId":"%b","displayName":%b' % (str(user_id).encode(), orjson.dumps(name))


@dataclass(frozen=True, slots=True)
class CachedPage:
    etag: str
    body: bytes


@dataclass(eq=False)
class Board:
    key: BoardKey
    ranks: RankBoard
    used_at: float
    # Bumped by every change, so a page rendered across an await is kept only if
    # nothing moved meanwhile.
    version: int = 0
    # (offset, limit) -> the rendered page; a change drops the pages it reaches.
    pages: OrderedDict[tuple[int, int], CachedPage] = field(default_factory=OrderedDict)
    # What every answer about this board starts with, as JSON: `"gameId":…,"period":…,
    # "periodStart":…`.
    head: bytes = b""

    def __post_init__(self) -> None:
        game_id, period, start = self.key
        self.head = b'"gameId":"%b","period":"%b","periodStart":%b' % (
            str(game_id).encode(),
            period.encode(),
            b'"%b"' % start.isoformat().encode() if start is not None else b"null",
        )

    def changed(self, change: Changed) -> None:
        self.version += 1
        if not self.pages:
            return
        first, last = change
        for span in list(self.pages):
            end = span[0] + span[1]
            # A player in or out moves everyone after; and the page that ends where the
            # board did gains or loses its nextCursor.
            reached = end >= first if last is None else end > first and span[0] <= last
            if reached:
                del self.pages[span]

    def keep(self, offset: int, limit: int, page: CachedPage) -> None:
        self.pages[offset, limit] = page
        if len(self.pages) > PAGES_PER_BOARD:
            self.pages.popitem(last=False)


class Leaderboards:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        idle_seconds: float,
        name_cache_entries: int,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.pool = pool
        self.idle_seconds = idle_seconds
        self.name_cache_entries = name_cache_entries
        # What "now" is for the current week and month; tests move it across a boundary.
        self.clock = clock
        self.listener: PgListener | None = None
        self._boards: dict[BoardKey, Board] = {}
        self._by_game: dict[uuid.UUID, set[BoardKey]] = defaultdict(set)
        self._loading: dict[BoardKey, asyncio.Task[Board]] = {}
        self._dirty: dict[BoardKey, set[int]] = {}  # players notified while loading
        self._open_games: set[uuid.UUID] = set()
        self._games_generation = 0
        # (game or None for every game, user as an int): players to read again.
        self._pending: set[tuple[uuid.UUID | None, int]] = set()
        self._drain: asyncio.Task[None] | None = None
        self._reloads: set[asyncio.Task[Board]] = set()
        self._generation = 0  # bumped when NOTIFYs may have been missed
        self._names: OrderedDict[int, bytes] = OrderedDict()  # player_json by user
        self._names_generation = 0
        self._swept = time.monotonic()

    # --- wiring ----------------------------------------------------------------------

    def attach(self, listener: PgListener) -> None:
        self.listener = listener
        listener.on(board_events.LEADERBOARD_CHANNEL, self._on_scores)
        listener.on(USER_CHANNEL, self._on_user)
        listener.on(CONTENT_CHANNEL, self._on_content)
        listener.on_state(self._on_state)

    async def close(self) -> None:
        tasks: list[asyncio.Task[Any]] = [*self._loading.values(), *self._reloads]
        if self._drain is not None:
            tasks.append(self._drain)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- reads -----------------------------------------------------------------------

    async def game_is_open(self, game_id: uuid.UUID) -> bool:
        if game_id in self._open_games:
            return True
        generation = self._games_generation
        found = await repo.game_is_open(self.pool, game_id)
        # Only "yes" is kept: unknown ids must not fill memory. A content NOTIFY during
        # the read may mean the answer is already old.
        if found and generation == self._games_generation:
            self._open_games.add(game_id)
        return found

    def held(self, key: BoardKey) -> Board | None:
        """The board, if this process holds it and knows its game is open (the fast
        path's question: it answers only what needs no await)."""
        if key[0] not in self._open_games:
            return None
        return self._boards.get(key)

    async def board(self, key: BoardKey) -> Board:
        board = self._boards.get(key)
        if board is None:
            task = self._loading.get(key)
            if task is None:
                task = self._start_load(key)
            # Shielded: a client that leaves must not cancel the load others wait for.
            board = await asyncio.shield(task)
        self.touch(board)
        return board

    def touch(self, board: Board) -> None:
        """The board was read now; boards idle too long go (checked now and then)."""
        now = time.monotonic()
        board.used_at = now
        if now - self._swept > min(SWEEP_EVERY_SECONDS, self.idle_seconds):
            self._sweep(now)

    async def players(self, users: list[int]) -> dict[int, bytes]:
        """Each player's part of a leaderboard entry, as JSON (`"userId":…,"displayName":…`),
        from the cache or one query for the ones missing; a player erased meanwhile has a
        null name. Rendered once per player: formatting ids and names was most of the
        time of an answer."""
        cache = self._names
        found: dict[int, bytes] = {}
        missing: list[uuid.UUID] = []
        for user in users:
            part = cache.get(user)
            if part is None:
                missing.append(uuid.UUID(int=user))
            else:
                found[user] = part
                cache.move_to_end(user)  # least recently shown goes first
        if missing:
            generation = self._names_generation
            names = await repo.display_names(self.pool, missing)
            keep = generation == self._names_generation  # no rename meanwhile
            for user_id in missing:
                name = names.get(user_id)
                part = player_json(user_id, name)
                found[user_id.int] = part
                if keep and name is not None:
                    cache[user_id.int] = part
            while len(cache) > self.name_cache_entries:
                cache.popitem(last=False)
        return found

    @property
    def boards_held(self) -> int:
        return len(self._boards)

    @property
    def players_held(self) -> int:
        return sum(len(board.ranks) for board in self._boards.values())

    # --- loading ---------------------------------------------------------------------

    def _start_load(self, key: BoardKey) -> asyncio.Task[Board]:
        self._dirty[key] = set()
        task = asyncio.get_running_loop().create_task(self._load(key))
        self._loading[key] = task
        return task

    async def _load(self, key: BoardKey) -> Board:
        game_id, period, start = key
        try:
            while True:
                generation = self._generation
                started = time.perf_counter()
                keys: list[int] = []
                async for rows in repo.board_rows(self.pool, game_id, period, start):
                    keys.extend(keys_from_rows(rows))
                if generation == self._generation:
                    break
                # The LISTEN connection came back while this read ran: it may predate
                # changes whose NOTIFY was lost. Read again.
            board = Board(key, RankBoard(keys), used_at=time.monotonic())
            replaced = self._boards.get(key)
            if replaced is not None:
                board.used_at = replaced.used_at
            self._boards[key] = board
            self._by_game[game_id].add(key)
            seconds = time.perf_counter() - started
            LOADS.labels("first" if replaced is None else "reload").inc()
            LOAD_SECONDS.observe(seconds)
            self._count()
            log.info(
                "leaderboard_loaded",
                game_id=str(game_id),
                period=period,
                period_start=start.isoformat() if start else None,
                players=len(board.ranks),
                seconds=round(seconds, 3),
            )
            dirty = self._dirty.get(key, set())
            if dirty:
                self._pending.update((game_id, user) for user in dirty)
                self._kick()
            return board
        finally:
            self._loading.pop(key, None)
            self._dirty.pop(key, None)

    def _sweep(self, now: float) -> None:
        self._swept = now
        for key, board in list(self._boards.items()):
            if now - board.used_at > self.idle_seconds and key not in self._loading:
                self._drop(key)
        self._count()

    def _count(self) -> None:
        BOARDS.set(len(self._boards))
        PLAYERS.set(self.players_held)

    def _drop(self, key: BoardKey) -> None:
        self._boards.pop(key, None)
        keys = self._by_game.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_game[key[0]]

    # --- NOTIFY ----------------------------------------------------------------------

    def _on_scores(self, payload: str) -> None:
        if payload == board_events.RESYNC:
            self._missed()
            return
        named = board_events.parse(payload)
        if named is None:
            log.warning("leaderboard_notify_unreadable", payload=payload[:200])
            return
        game_id, user = named[0], named[1].int
        for key, dirty in self._dirty.items():
            if key[0] == game_id:
                dirty.add(user)
        if game_id in self._by_game:
            self._pending.add((game_id, user))
            self._kick()

    def _on_user(self, payload: str) -> None:
        try:
            user = uuid.UUID(payload).int
        except ValueError:
            log.warning("user_notify_unreadable", payload=payload[:200])
            return
        self._names.pop(user, None)
        self._names_generation += 1  # a name read before this must not be kept
        for dirty in self._dirty.values():
            dirty.add(user)
        if self._by_game:
            self._pending.add((None, user))
            self._kick()

    def _on_content(self, payload: str) -> None:
        try:
            content_id = uuid.UUID(payload)
        except ValueError:
            return
        self._games_generation += 1
        self._open_games.discard(content_id)

    def _on_state(self, connected: bool) -> None:
        if connected:
            # Whatever was notified while the connection was down is lost.
            self._missed()

    def _missed(self) -> None:
        """Notices may have been lost: read everything held again."""
        self._generation += 1
        self._games_generation += 1
        self._open_games.clear()
        self._names_generation += 1
        self._names.clear()
        for key in list(self._boards):
            if key not in self._loading:
                task = self._start_load(key)
                self._reloads.add(task)
                task.add_done_callback(self._reload_done)

    def _reload_done(self, task: asyncio.Task[Board]) -> None:
        self._reloads.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The old board stays; the next reconnect (or restart) tries again.
            log.warning("leaderboard_reload_failed", error=repr(task.exception()))

    def _kick(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_task(self._drain_pending())

    async def _drain_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, set()
            try:
                await self._refresh(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away
                if self.listener is not None and not self.listener.connected:
                    return  # the reconnect reads every board again: nothing to retry
                log.warning("leaderboard_refresh_failed", error=repr(exc), players=len(batch))
                self._pending |= batch
                await asyncio.sleep(RETRY_SECONDS)

    async def _refresh(self, batch: set[tuple[uuid.UUID | None, int]]) -> None:
        pairs: set[tuple[uuid.UUID, int]] = set()
        for game_id, user in batch:
            if game_id is None:  # renamed, blocked, unblocked or erased: every game
                pairs.update((held, user) for held in self._by_game)
                self._renamed(user)
            elif game_id in self._by_game:
                pairs.add((game_id, user))
        if not pairs:
            return
        periods = {(key[1], key[2]) for key in self._boards if key[2] is not None}
        REREADS.inc(len(pairs))
        rows = await repo.player_scores(
            self.pool,
            [(game_id, uuid.UUID(int=user)) for game_id, user in pairs],
            sorted(periods),
        )
        scores: dict[tuple[uuid.UUID, int, str, date | None], int] = {}
        for row in rows:
            user = row["user_id"].int
            scores[row["game_id"], user, row["period"], row["period_start"]] = keys_from_rows(
                [(row["points"], row["micros"], row["user_id"])]
            )[0]
        for game_id, user in pairs:
            for key in self._by_game.get(game_id, ()):
                board = self._boards[key]
                entry = scores.get((game_id, user, key[1], key[2]))
                change = board.ranks.remove(user) if entry is None else board.ranks.set(entry)
                if change is not None:
                    board.changed(change)
        PLAYERS.set(self.players_held)

    def _renamed(self, user: int) -> None:
        """Pages showing the player carry their old name: drop them."""
        for board in self._boards.values():
            position = board.ranks.position_of(user)
            if position is not None:
                board.changed(Changed(position, position))
