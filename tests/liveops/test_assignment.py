"""Assignment: deterministic, split by weight over 100,000 simulated players, coverage,
variants that may not take new players, a weight change moving only some players, and
exclusion groups."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import timedelta

import pytest

from gameportal.liveops.assignment import new_assignment, pick_in_group
from gameportal.liveops.targeting import Campaign
from tests.liveops.support import NOW, campaign, rule

PLAYERS = 100_000
# Chi-square critical values at p = 0.001 by degrees of freedom: a split this far from
# the weights would happen by chance once in a thousand campaigns.
CHI2_CRITICAL_001 = {1: 10.828, 2: 13.816, 3: 16.266}


def _player_keys(count: int, seed: int = 1) -> list[str]:
    """UUIDv7-shaped ids as the app makes them (a millisecond clock, then random bits),
    many sharing a prefix, half as logged-in players and half as anonymous visitors."""
    rng = random.Random(seed)
    millis = 1_760_000_000_000
    keys = []
    for i in range(count):
        millis += rng.randrange(0, 3)
        value = (millis << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62)
        value |= rng.getrandbits(62)
        key = str(uuid.UUID(int=value))
        keys.append(key if i % 2 else "anon:" + key)
    return keys


KEYS = _player_keys(PLAYERS)


def _split(c: Campaign, keys: list[str]) -> Counter[uuid.UUID | None]:
    counts: Counter[uuid.UUID | None] = Counter()
    for key in keys:
        v = new_assignment(c, key, NOW)
        counts[v.id if v is not None else None] += 1
    return counts


def _chi_square(observed: list[int], weights: list[float]) -> float:
    total, wsum = sum(observed), sum(weights)
    expected = [total * w / wsum for w in weights]
    return sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))


@pytest.mark.parametrize("weights", [[1, 1], [0.5, 0.3, 0.2], [70, 10, 10, 10]])
def test_split_over_100000_players_follows_the_weights(weights: list[float]) -> None:
    variants = [rule(w) for w in weights]
    counts = _split(campaign(variants, hash_seed="split"), KEYS)
    assert counts[None] == 0
    observed = [counts[v.id] for v in variants]
    assert _chi_square(observed, weights) < CHI2_CRITICAL_001[len(weights) - 1], observed
    for o, w in zip(observed, weights, strict=True):
        assert abs(o / PLAYERS - w / sum(weights)) < 0.01


def test_coverage_enters_its_share_and_keeps_the_split() -> None:
    variants = [rule(3), rule(1)]
    counts = _split(campaign(variants, coverage=0.25, hash_seed="split"), KEYS)
    entered = PLAYERS - counts[None]
    assert abs(entered / PLAYERS - 0.25) < 0.01
    observed = [counts[v.id] for v in variants]
    assert _chi_square(observed, [3, 1]) < CHI2_CRITICAL_001[1]


def test_raising_coverage_only_adds_players() -> None:
    variants = [rule(1), rule(1)]
    seed = "coverage-seed"
    low = campaign(variants, coverage=0.3, hash_seed=seed)
    high = campaign(variants, coverage=0.8, hash_seed=seed)
    for key in KEYS[:20_000]:
        before = new_assignment(low, key, NOW)
        if before is not None:
            assert new_assignment(high, key, NOW) == before


def test_zero_coverage_and_no_variants_assign_nobody() -> None:
    assert all(new_assignment(campaign(coverage=0), k, NOW) is None for k in KEYS[:1000])
    assert all(new_assignment(campaign([]), k, NOW) is None for k in KEYS[:100])


def test_deterministic_and_seeded() -> None:
    variants = [rule(1), rule(1)]
    c = campaign(variants, hash_seed="a")
    again = campaign(variants, hash_seed="a")
    first = [new_assignment(c, k, NOW) for k in KEYS[:5000]]
    assert [new_assignment(again, k, NOW) for k in KEYS[:5000]] == first
    assert [new_assignment(c, k, NOW) for k in KEYS[:5000]] == first
    # Another seed splits the same players independently: about half agree.
    other = campaign(variants, hash_seed="b")
    same = sum(
        new_assignment(other, k, NOW).id == v.id  # type: ignore[union-attr]
        for k, v in zip(KEYS[:5000], first, strict=True)
        if v is not None
    )
    assert 0.45 < same / 5000 < 0.55


def test_changed_weights_move_only_some_players() -> None:
    """Stickiness is the caller's (the log row wins), but a weight change should not
    reshuffle everyone: moving 50/50 to 60/40 moves only the ~10% between the bounds."""
    a, b = rule(50), rule(50)
    before = campaign([a, b], hash_seed="sticky")
    a2, b2 = rule(60), rule(40)
    a2.id, b2.id = a.id, b.id
    after = campaign([a2, b2], hash_seed="sticky")
    keys = KEYS[:50_000]
    moved: Counter[tuple[uuid.UUID, uuid.UUID]] = Counter()
    for key in keys:
        x, y = new_assignment(before, key, NOW), new_assignment(after, key, NOW)
        assert x is not None and y is not None
        if x.id != y.id:
            moved[(x.id, y.id)] += 1
    assert set(moved) == {(b.id, a.id)}  # only from the shrinking variant to the growing one
    assert abs(sum(moved.values()) / len(keys) - 0.10) < 0.01


def test_only_variants_eligible_now_receive_players() -> None:
    later = NOW + timedelta(days=1)
    inactive = rule(1, active=False)
    future = rule(1, start_at=later)
    ended = rule(1, end_at=NOW)  # endAt is exclusive
    running = rule(1, start_at=NOW, end_at=later)  # startAt is inclusive
    c = campaign([inactive, future, ended, running])
    counts = _split(c, KEYS[:10_000])
    assert counts == {running.id: 10_000}
    # At `later` the window of `running` has closed and `future` has opened.
    assert {new_assignment(c, k, later).id for k in KEYS[:1000]} == {future.id}  # type: ignore[union-attr]


def test_no_eligible_variant_or_only_zero_weight_assigns_nobody() -> None:
    assert new_assignment(campaign([rule(1, active=False)]), KEYS[0], NOW) is None
    c = campaign([rule(0), rule(1, active=False)])
    assert all(new_assignment(c, k, NOW) is None for k in KEYS[:1000])


def test_zero_weight_variant_gets_nobody_new() -> None:
    zero, one = rule(0), rule(1)
    assert _split(campaign([zero, one]), KEYS[:10_000]) == {one.id: 10_000}


def _group(count: int, first: int = 1) -> list[Campaign]:
    """Campaigns with fixed ids, so that the figures below are the same every run."""
    return [
        campaign(exclusion_group="store", campaign_id=uuid.UUID(int=0x0190D5A8 << 96 | i))
        for i in range(first, first + count)
    ]


def test_pick_in_group_is_deterministic_and_order_free() -> None:
    group = _group(4)
    rng = random.Random(4)
    for key in KEYS[:2000]:
        chosen = pick_in_group("store", key, group)
        shuffled = group[:]
        rng.shuffle(shuffled)
        assert pick_in_group("store", key, shuffled) is chosen
        assert pick_in_group("store", key, group) is chosen


def test_pick_in_group_shares_players_evenly() -> None:
    group = _group(4)
    counts = Counter(pick_in_group("store", key, group).id for key in KEYS)
    observed = [counts[c.id] for c in group]
    assert _chi_square(observed, [1, 1, 1, 1]) < CHI2_CRITICAL_001[3], observed


def test_a_campaign_joining_the_group_takes_players_only_for_itself() -> None:
    group = _group(3)
    (newcomer,) = _group(1, first=100)
    moved = 0
    for key in KEYS[:30_000]:
        before = pick_in_group("store", key, group)
        after = pick_in_group("store", key, [*group, newcomer])
        if after is not before:
            assert after is newcomer
            moved += 1
    assert abs(moved / 30_000 - 0.25) < 0.015


def test_pick_in_group_depends_on_the_group_and_needs_candidates() -> None:
    group = _group(2)
    differ = sum(
        pick_in_group("store", k, group) is not pick_in_group("banners", k, group)
        for k in KEYS[:5000]
    )
    assert 0.45 < differ / 5000 < 0.55
    assert pick_in_group("store", KEYS[0], group[:1]) is group[0]
    with pytest.raises(ValueError):
        pick_in_group("store", KEYS[0], [])
