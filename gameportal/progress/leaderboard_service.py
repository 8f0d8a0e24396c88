"""Leaderboard answers: which board a request means, and its pages as the bytes sent.

Used by the routes and by the fast path alike, so both answer with the same bytes; the
shapes are `LeaderboardPage` and `MyRank` (a test keeps them equal)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import date

from gameportal.content.public import digest_etag
from gameportal.errors import NotFound
from gameportal.kit.pagination import InvalidCursor
from gameportal.progress.leaderboard import Period, Ranked, period_start
from gameportal.progress.leaderboard_boards import Board, BoardKey, CachedPage, Leaderboards

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_AROUND = 50
DEFAULT_AROUND = 5
# Far past any board: an offset beyond it is a cursor this API did not give.
MAX_OFFSET = 1 << 40
CACHE_CONTROL = "public, no-cache"  # always revalidated: ranks move by the second

_CURSOR_PREFIX = b"rank:"


class UnknownGame(NotFound):
    slug = "game-not-found"
    title = "No such game"


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(_CURSOR_PREFIX + str(offset).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The rank offset a `nextCursor` stands for."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    digits = raw.removeprefix(_CURSOR_PREFIX)
    if raw == digits or not digits.isdigit() or int(digits) > MAX_OFFSET:
        raise InvalidCursor("the cursor is not one this API returned")
    return int(digits)


def board_key(
    boards: Leaderboards, game_id: uuid.UUID, period: Period, at: date | None
) -> BoardKey:
    """The board a request means: the period holding `at`, or today (UTC) by default.
    The all-time board has no past periods: `at` does not change it."""
    day = at if at is not None else boards.clock().date()
    return (game_id, period, period_start(period, day))


async def open_board(boards: Leaderboards, key: BoardKey) -> Board:
    held = boards.held(key)  # the usual case, answered without a coroutine
    if held is not None:
        boards.touch(held)
        return held
    if not await boards.game_is_open(key[0]):
        raise UnknownGame(f"no published game {key[0]}")
    return await boards.board(key)


def _items(entries: list[Ranked], players: dict[int, bytes]) -> bytes:
    """The entries as a JSON array, byte for byte what orjson writes for the same dicts
    (a test compares them); built from each player's rendered part."""
    return b"[%b]" % b",".join(
        [b'{"rank":%d,%b,"points":%d}' % (r, players[u], p) for r, u, p in entries]
    )


def _optional(number: int | None) -> bytes:
    return b"null" if number is None else b"%d" % number


async def list_page(boards: Leaderboards, key: BoardKey, offset: int, limit: int) -> CachedPage:
    """Ranks offset + 1 .. offset + limit, rendered once and kept until a change reaches
    them."""
    board = await open_board(boards, key)
    cached = board.pages.get((offset, limit))
    if cached is not None:
        return cached
    version = board.version
    entries = board.ranks.page(offset, limit)  # one snapshot: ranks agree within a page
    more = offset + limit < len(board.ranks)
    players = await boards.players([entry[1] for entry in entries])
    cursor = b'"%b"' % encode_cursor(offset + limit).encode() if more else b"null"
    body = b'{%b,"items":%b,"nextCursor":%b}' % (board.head, _items(entries, players), cursor)
    page = CachedPage(digest_etag(body), body)
    if board.version == version and boards.held(key) is board:  # nothing moved meanwhile
        board.keep(offset, limit, page)
    return page


async def my_rank(boards: Leaderboards, key: BoardKey, user_id: uuid.UUID, around: int) -> bytes:
    """The caller's rank on the board, with the `around` players above and below; rank
    null when they have no score there."""
    board = await open_board(boards, key)
    user = user_id.int
    rank, entries = board.ranks.around(user, around)
    points = entries[rank - entries[0][0]][2] if rank is not None else None
    players = await boards.players([entry[1] for entry in entries])
    return b'{%b,"rank":%b,"points":%b,"items":%b}' % (
        board.head,
        _optional(rank),
        _optional(points),
        _items(entries, players),
    )
