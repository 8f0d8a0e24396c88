"""Deterministic bucketing, as GrowthBook publishes it (hash version 2).

A player's place in a campaign is `gb_hash(seed, player_key)`, a number in [0, 1) with
10,000 steps; `bucket_ranges` turns the variants' weights and the campaign's coverage into
one half-open range per variant, and `choose_variant` finds the range the number falls in.
The same seed and key always give the same number, so no state is needed to repeat a
choice, and two campaigns with different seeds split the same players independently.

Reference: GrowthBook's SDKs (`gbhash`, `getBucketRanges`, `chooseVariation`); the tests
check these functions against the `growthbook` package's own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fnv_hash_fast import fnv1a_32 as _fnv1a32_bytes

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF


def fnv1a32(text: str) -> int:
    """FNV-1a, 32 bits, over the text's UTF-16 code units (as the JavaScript SDK's
    `charCodeAt` loop does). For ASCII text these are its bytes, hashed in C
    (fnv-hash-fast: 0.3 us for a seed and a player id, against 7 us in a Python loop)."""
    if text.isascii():
        return _fnv1a32_bytes(text.encode("ascii"))
    h = _FNV_OFFSET
    data = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        h = ((h ^ (data[i] | (data[i + 1] << 8))) * _FNV_PRIME) & _MASK
    return h


def gb_hash(seed: str, value: str) -> float:
    """GrowthBook's hash version 2: `fnv1a32(str(fnv1a32(seed + value))) % 10000 / 10000`,
    in [0, 1). Hashing the decimal text of the first hash spreads seeds that differ only
    in their last characters."""
    inner = fnv1a32(seed + value)
    return (_fnv1a32_bytes(str(inner).encode("ascii")) % 10000) / 10000


def bucket_ranges(weights: Sequence[float], coverage: float) -> list[tuple[float, float]]:
    """One half-open range [start, end) per weight, laid end to end over [0, 1).

    Weights are normalised to sum to 1 (all zero, or none positive: every range is empty,
    nobody is bucketed). Coverage (clamped to 0..1) shrinks each range from its start, so
    raising coverage later only adds players and never moves one between variants; this
    is GrowthBook's getBucketRanges given the normalised weights."""
    cov = 0.0 if not coverage > 0 else min(float(coverage), 1.0)  # NaN counts as 0
    clean = [float(w) if w > 0 and math.isfinite(w) else 0.0 for w in weights]
    total = sum(clean)
    if not total > 0 or not math.isfinite(total):
        return [(0.0, 0.0) for _ in clean]
    ranges: list[tuple[float, float]] = []
    cumulative = 0.0
    for w in clean:
        share = w / total
        start = cumulative
        cumulative += share
        ranges.append((start, start + cov * share))
    return ranges


def choose_variant(n: float, ranges: Sequence[tuple[float, float]]) -> int | None:
    """The index of the range holding `n` (start inclusive, end exclusive), or None when
    `n` falls outside coverage."""
    for i, (start, end) in enumerate(ranges):
        if start <= n < end:
            return i
    return None


def choose_weighted(n: float, weights: Sequence[float], coverage: float) -> int | None:
    """`choose_variant(n, bucket_ranges(weights, coverage))` in one pass without building
    the ranges (the assignment's hot path); the same arithmetic, so the same answer."""
    cov = 0.0 if not coverage > 0 else min(float(coverage), 1.0)
    total = 0.0
    for w in weights:
        if 0 < w < math.inf:
            total += w
    if not 0 < total < math.inf:
        return None
    cumulative = 0.0
    for i, w in enumerate(weights):
        share = w / total if 0 < w < math.inf else 0.0
        start = cumulative
        cumulative += share
        if start <= n < start + cov * share:
            return i
        if n < start:
            return None  # the ranges only go up from here
    return None
