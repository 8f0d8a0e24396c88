"""The assignment hash and buckets are GrowthBook's: the same numbers as the `growthbook`
package for many seeds and keys, ASCII or not, and the same ranges for any weights and
coverage."""

from __future__ import annotations

import random
import uuid

import pytest
from growthbook import Experiment, GrowthBook
from growthbook.core import chooseVariation, gbhash, getBucketRanges
from growthbook.core import fnv1a32 as gb_fnv1a32

from gameportal.liveops.hashing import (
    bucket_ranges,
    choose_variant,
    choose_weighted,
    fnv1a32,
    gb_hash,
)


def _keys(rng: random.Random, count: int) -> list[str]:
    alphabet = "abcXYZ0123456789-_:é漢字🎮"
    keys = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(count // 2)]
    keys += ["anon:" + str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(count // 4)]
    while len(keys) < count:
        keys.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24))))
    return keys


def test_fnv1a32_known_values() -> None:
    # FNV-1a 32-bit test vectors (the empty string is the offset basis).
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968


def test_hash_equals_growthbooks_for_many_seeds_and_keys() -> None:
    rng = random.Random(12)
    seeds = [*_keys(rng, 40), "", "campaign", "__group"]
    values = _keys(rng, 250)
    for seed in seeds:
        for value in values:
            assert fnv1a32(seed + value) == gb_fnv1a32(seed + value)
            assert gb_hash(seed, value) == gbhash(seed, value, 2), (seed, value)


def test_hash_is_in_the_unit_interval_with_ten_thousand_steps() -> None:
    rng = random.Random(3)
    for key in _keys(rng, 2000):
        n = gb_hash("seed", key)
        assert 0 <= n < 1 and n == round(n * 10000) / 10000


@pytest.mark.parametrize("coverage", [0.0, 0.05, 0.5, 0.999, 1.0])
def test_bucket_ranges_equal_growthbooks(coverage: float) -> None:
    rng = random.Random(int(coverage * 1000))
    for _ in range(300):
        count = rng.randrange(1, 7)
        weights = [
            rng.choice([0.0, rng.random(), float(rng.randrange(1, 100))]) for _ in range(count)
        ]
        if sum(weights) == 0:
            weights[0] = 1.0
        total = sum(weights)
        normalised = [w / total for w in weights]
        ours = bucket_ranges(weights, coverage)
        assert ours == getBucketRanges(count, coverage, normalised)
        for n in (0.0, 0.2, 0.3333, 0.5, 0.9999, rng.randrange(10000) / 10000):
            theirs = chooseVariation(n, getBucketRanges(count, coverage, normalised))
            assert choose_variant(n, ours) == (None if theirs == -1 else theirs)


def test_equal_weights_give_growthbooks_default_split() -> None:
    assert bucket_ranges([1, 1, 1, 1], 1) == getBucketRanges(4, 1, None)
    assert bucket_ranges([7, 7], 0.4) == getBucketRanges(2, 0.4, None)


def test_coverage_shrinks_each_range_from_its_start() -> None:
    assert bucket_ranges([1, 3], 0.5) == [(0.0, 0.125), (0.25, 0.625)]
    assert choose_variant(0.2, bucket_ranges([1, 3], 0.5)) is None
    assert choose_variant(0.125, bucket_ranges([1, 3], 0.5)) is None  # end is exclusive
    assert choose_variant(0.25, bucket_ranges([1, 3], 0.5)) == 1  # start is inclusive


@pytest.mark.parametrize("coverage", [-1.0, float("nan"), 0.0])
def test_no_coverage_buckets_nobody(coverage: float) -> None:
    ranges = bucket_ranges([1, 1], coverage)
    assert all(choose_variant(i / 10000, ranges) is None for i in range(0, 10000, 7))


def test_coverage_above_one_is_one() -> None:
    assert bucket_ranges([1, 1], 5) == bucket_ranges([1, 1], 1)


@pytest.mark.parametrize("weights", [[], [0.0, 0.0], [-1.0, 0.0], [float("nan"), 0.0]])
def test_no_positive_weight_buckets_nobody(weights: list[float]) -> None:
    ranges = bucket_ranges(weights, 1)
    assert len(ranges) == len(weights)
    assert choose_variant(0.0, ranges) is None and choose_variant(0.5, ranges) is None


def test_zero_weight_variant_gets_nobody() -> None:
    ranges = bucket_ranges([1, 0, 1], 1)
    assert {choose_variant(i / 10000, ranges) for i in range(10000)} == {0, 2}


def test_experiment_through_growthbooks_sdk_picks_the_same_variant() -> None:
    """The whole path as GrowthBook's SDK runs an experiment with hash version 2."""
    rng = random.Random(5)
    weights = [0.2, 0.5, 0.3]
    for key in _keys(rng, 400):
        gb = GrowthBook(attributes={"id": key})
        result = gb.run(
            Experiment(
                key="exp",
                variations=[0, 1, 2],
                weights=weights,
                coverage=0.8,
                seed="seed-1",
                hashVersion=2,
            )
        )
        ours = choose_variant(gb_hash("seed-1", key), bucket_ranges(weights, 0.8))
        assert (ours is not None) == result.inExperiment
        if ours is not None:
            assert result.variationId == ours
        gb.destroy()


def test_choose_weighted_is_choose_variant_over_bucket_ranges() -> None:
    rng = random.Random(9)
    specials = [0.0, -1.0, float("nan"), float("inf")]
    for _ in range(3000):
        weights = [
            rng.choice([rng.random(), float(rng.randrange(0, 50)), rng.choice(specials)])
            for _ in range(rng.randrange(0, 6))
        ]
        coverage = rng.choice([0.0, 1.0, 2.0, -0.5, float("nan"), rng.random()])
        ranges = bucket_ranges(weights, coverage)
        for n in [rng.randrange(10000) / 10000 for _ in range(5)] + [s for s, _ in ranges]:
            assert choose_weighted(n, weights, coverage) == choose_variant(n, ranges), (
                n,
                weights,
                coverage,
            )


def test_non_ascii_text_hashes_its_utf16_code_units() -> None:
    for text in ["é", "漢字", "🎮", "player-ü-1", "\ud800"]:
        assert fnv1a32(text) == gb_fnv1a32(text)
