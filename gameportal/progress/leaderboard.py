"""The in-memory rank structure of one leaderboard, and the periods boards are kept for.

A board is a sorted list of one integer per player (sortedcontainers' SortedList: a list
of sorted sublists of about a thousand items with a positional index over them, so that
insert, remove, "position of this key" and "the items at positions i..j" all cost
O(log n)), plus a dict from player to that integer. The integer packs the whole order:

    key = (2**63 - 1 - points) << 181  |  reached_at in µs << 128  |  user id (128 bits)

so ascending keys are most points first, then whoever reached the score first, then the
user id: exactly the order of the database's board indexes (`points DESC, reached_at,
user_id`; PostgreSQL compares uuids bytewise, as their integers compare). One Python int
per player instead of a tuple, and the user id comes back out of the key, so a page needs
no second lookup. Measured: about 150 bytes per player (README, Leaderboards).
"""

from __future__ import annotations

import uuid
from bisect import bisect_left
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Literal, NamedTuple

from sortedcontainers import SortedList

Period = Literal["all", "week", "month"]
PERIODS: tuple[Period, ...] = ("all", "week", "month")

_POINTS_MAX = (1 << 63) - 1  # points are a PostgreSQL bigint
_POINTS_MIN = -(1 << 63)
_USER_BITS = 128
_TIME_BITS = 53  # microseconds since 1970 up to the year 2255
_USER_MASK = (1 << _USER_BITS) - 1
_TIME_MAX = (1 << _TIME_BITS) - 1
_POINTS_SHIFT = _USER_BITS + _TIME_BITS


def period_start(period: Period, day: date) -> date | None:
    """The first day of the period that holds `day` (UTC): the ISO week's Monday, the
    month's first; None for the all-time board. A new period is a new board, so weekly
    and monthly boards start empty at their boundary with nothing deleted."""
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return None


def utc_micros(moment: datetime) -> int:
    """Microseconds since 1970 of an aware datetime, exactly (no float on the way)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def entry_key(points: int, reached_micros: int, user: int) -> int:
    """The sort key of one player; `user` is the user id as an integer."""
    points = min(max(points, _POINTS_MIN), _POINTS_MAX)
    reached = min(max(reached_micros, 0), _TIME_MAX)
    return ((_POINTS_MAX - points) << _POINTS_SHIFT) | (reached << _USER_BITS) | user


def keys_from_rows(rows: Iterable[tuple[int, int, uuid.UUID]]) -> list[int]:
    """Keys of (points, reached_at µs, user id) rows whose µs the query already bounded
    to the key's range (a board of a million players is a million of these)."""
    return [((_POINTS_MAX - p) << _POINTS_SHIFT) | (m << _USER_BITS) | u.int for p, m, u in rows]


def key_points(key: int) -> int:
    return _POINTS_MAX - (key >> _POINTS_SHIFT)


def key_user(key: int) -> int:
    return key & _USER_MASK


# (rank, user id as an integer, points): a plain tuple, since a page makes one per entry.
Ranked = tuple[int, int, int]


class Changed(NamedTuple):
    """Positions (0-based, inclusive) whose occupant may differ after a change; `last`
    is None when everything from `first` to the end moved."""

    first: int
    last: int | None


class RankBoard:
    """One board's players in rank order. Not thread-safe; one event loop owns it."""

    __slots__ = ("_keys", "_sorted")

    def __init__(self, keys: Iterable[int] = ()) -> None:
        by_user = {key & _USER_MASK: key for key in keys}
        self._keys: dict[int, int] = by_user
        # From sorted input (a board read in index order) this is a linear pass.
        self._sorted = SortedList(by_user.values())

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, user: int) -> bool:
        return user in self._keys

    def set(self, key: int) -> Changed | None:
        """Put the player of `key` at the place `key` gives them; None if unchanged."""
        user = key & _USER_MASK
        old = self._keys.get(user)
        if old == key:
            return None
        sorted_keys = self._sorted
        if old is None:
            sorted_keys.add(key)
            self._keys[user] = key
            return Changed(sorted_keys.bisect_left(key), None)
        before = sorted_keys.index(old)
        sorted_keys.remove(old)
        sorted_keys.add(key)
        self._keys[user] = key
        after = sorted_keys.bisect_left(key)
        return Changed(min(before, after), max(before, after))

    def remove(self, user: int) -> Changed | None:
        key = self._keys.pop(user, None)
        if key is None:
            return None
        position = self._sorted.index(key)
        del self._sorted[position]
        return Changed(position, None)

    def rank_of(self, user: int) -> int | None:
        """1-based rank: a bisection in the positional index, O(log n)."""
        key = self._keys.get(user)
        return None if key is None else self._sorted.bisect_left(key) + 1

    def position_of(self, user: int) -> int | None:
        key = self._keys.get(user)
        return None if key is None else self._sorted.bisect_left(key)

    def page(self, offset: int, limit: int) -> list[Ranked]:
        """The players at ranks offset + 1 .. offset + limit: O(log n + limit)."""
        start = max(offset, 0)
        return [
            (rank, key & _USER_MASK, _POINTS_MAX - (key >> _POINTS_SHIFT))
            for rank, key in enumerate(self._sorted.islice(start, start + max(limit, 0)), start + 1)
        ]

    def around(self, user: int, count: int) -> tuple[int | None, list[Ranked]]:
        """The player's rank and the `count` players above and below (with the player)."""
        key = self._keys.get(user)
        if key is None:
            return None, []
        # Found as SortedList.bisect_left finds it (its layout: sorted sublists of about a
        # thousand keys and their maxima; `_loc` turns a place in a sublist into a
        # position), the neighbours then taken from that sublist and, at its ends, from
        # the next ones out: a positional slice of the whole list walks the index twice,
        # a third of the caller's rank request, measured. A test checks this against
        # `page` at every position of a board of many sublists.
        sorted_keys = self._sorted
        lists = sorted_keys._lists
        place = bisect_left(sorted_keys._maxes, key)
        index = bisect_left(lists[place], key)
        position: int = sorted_keys._loc(place, index)
        keys: list[int] = []
        wanted, here, at = min(count, position), place, index  # those above
        while wanted:
            if at == 0:
                here -= 1
                at = len(lists[here])
            taken = min(wanted, at)
            keys[:0] = lists[here][at - taken : at]
            at -= taken
            wanted -= taken
        wanted, here, at = count + 1, place, index  # the player and those below
        while wanted and here < len(lists):
            taken_keys = lists[here][at : at + wanted]
            keys += taken_keys
            wanted -= len(taken_keys)
            here, at = here + 1, 0
        first = position - min(count, position) + 1
        return position + 1, [
            (rank, k & _USER_MASK, _POINTS_MAX - (k >> _POINTS_SHIFT))
            for rank, k in enumerate(keys, first)
        ]
