"""The rank structure on its own: against a brute-force sort, through random changes."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime

from gameportal.progress.leaderboard import (
    Changed,
    RankBoard,
    entry_key,
    key_points,
    key_user,
    keys_from_rows,
    period_start,
    utc_micros,
)


def _order(scores: dict[int, tuple[int, int]]) -> list[int]:
    """Users by most points, then earliest time, then user id: the database's order."""
    return sorted(scores, key=lambda u: (-scores[u][0], scores[u][1], u))


def test_key_round_trips_points_and_user() -> None:
    user = uuid.uuid4().int
    for points in (0, 1, -1, 10**12, (1 << 63) - 1, -(1 << 63)):
        key = entry_key(points, 1_700_000_000_000_000, user)
        assert key_points(key) == points
        assert key_user(key) == user


def test_keys_order_points_then_time_then_user() -> None:
    low, high = 5, 9
    assert entry_key(10, 100, high) < entry_key(9, 0, low)  # more points first
    assert entry_key(10, 100, high) < entry_key(10, 101, low)  # then earlier
    assert entry_key(10, 100, low) < entry_key(10, 100, high)  # then the user id
    # Times outside the key's 53 bits are held at its bounds, not spilled into points.
    assert key_points(entry_key(7, -5, low)) == 7
    assert key_points(entry_key(7, 1 << 60, low)) == 7


def test_keys_from_rows_match_entry_key() -> None:
    user = uuid.uuid4()
    assert keys_from_rows([(42, 123_456, user)]) == [entry_key(42, 123_456, user.int)]


def test_utc_micros_is_exact() -> None:
    moment = datetime(2026, 11, 27, 12, 30, 1, 123_456, tzinfo=UTC)
    assert utc_micros(moment) == int(moment.timestamp()) * 1_000_000 + 123_456


def test_periods_start_at_the_iso_week_monday_and_the_first_of_the_month() -> None:
    sunday = date(2026, 11, 29)
    assert period_start("week", sunday) == date(2026, 11, 23)
    assert period_start("week", date(2026, 11, 30)) == date(2026, 11, 30)  # a Monday
    assert period_start("week", date(2027, 1, 1)) == date(2026, 12, 28)  # ISO week 53
    assert period_start("month", sunday) == date(2026, 11, 1)
    assert period_start("all", sunday) is None


def test_random_changes_agree_with_a_brute_force_sort() -> None:
    rng = random.Random(7)
    users = [uuid.uuid4().int for _ in range(2_000)]
    scores: dict[int, tuple[int, int]] = {}
    for user in users[:1_000]:
        scores[user] = (rng.randint(0, 50), rng.randint(0, 20))  # many ties on purpose
    board = RankBoard(entry_key(p, t, u) for u, (p, t) in scores.items())
    for _ in range(3_000):
        user = rng.choice(users)
        if rng.random() < 0.2:
            board.remove(user)
            scores.pop(user, None)
        else:
            scores[user] = (rng.randint(0, 50), rng.randint(0, 20))
            board.set(entry_key(*scores[user], user))
    expected = _order(scores)
    assert len(board) == len(expected)
    assert [e[1] for e in board.page(0, len(expected))] == expected
    for rank, user in enumerate(expected, start=1):
        assert board.rank_of(user) == rank
    assert [e[0] for e in board.page(10, 5)] == [11, 12, 13, 14, 15]
    assert [e[1] for e in board.page(10, 5)] == expected[10:15]
    assert board.page(len(expected), 10) == []


def test_around_is_the_slice_of_the_list() -> None:
    board = RankBoard(entry_key(100 - i, 0, i + 1) for i in range(20))
    rank, entries = board.around(1 + 9, 3)  # the 10th player
    assert rank == 10
    assert [e[0] for e in entries] == [7, 8, 9, 10, 11, 12, 13]
    assert entries == board.page(6, 7)
    rank, entries = board.around(1, 2)  # the top: nobody above
    assert rank == 1
    assert [e[0] for e in entries] == [1, 2, 3]
    assert board.around(999, 2) == (None, [])


def test_changes_report_the_positions_they_reach() -> None:
    board = RankBoard(entry_key(100 - i, 0, i + 1) for i in range(10))
    # Player 8 (position 7) jumps to the top: positions 0..7 change, the rest do not.
    assert board.set(entry_key(1_000, 0, 8)) == Changed(0, 7)
    assert board.set(entry_key(1_000, 0, 8)) is None  # the same score again
    assert board.set(entry_key(5, 0, 11)) == Changed(10, None)  # a newcomer, last
    assert board.remove(3) == Changed(3, None)  # everyone below moves up
    assert board.remove(3) is None


def test_around_agrees_with_the_list_across_the_inner_sublists() -> None:
    """`around` reads the neighbours out of the sorted list's sublist when they are all in
    it: at every position of a board of several sublists, the same as a page."""
    rng = random.Random(3)
    board = RankBoard(
        entry_key(rng.randint(0, 100), rng.randint(0, 9), uuid.uuid4().int) for _ in range(6_000)
    )
    everyone = board.page(0, len(board))
    for rank, user, _ in everyone:
        for count in (0, 5):
            first = max(rank - 1 - count, 0)
            assert board.around(user, count) == (rank, everyone[first : rank + count])


def test_around_takes_neighbours_from_several_sublists() -> None:
    """Neighbours across the ends of a sublist, and of several (sublists of 2 to 8 keys
    here, as SortedList keeps them for a load of 4): still the slice of the list."""
    rng = random.Random(4)
    board = RankBoard(
        entry_key(rng.randint(0, 30), rng.randint(0, 9), uuid.uuid4().int) for _ in range(300)
    )
    board._sorted._reset(4)
    everyone = board.page(0, len(board))
    for rank, user, _ in everyone:
        for count in (0, 1, 5, 17, 400):
            first = max(rank - 1 - count, 0)
            assert board.around(user, count) == (rank, everyone[first : rank + count])
