"""When to try a failed message again: capped exponential backoff with jitter."""

from __future__ import annotations

import random
from datetime import timedelta

BASE_SECONDS = 5.0
CAP_SECONDS = 3600.0


def retry_delay(
    retry_count: int,
    *,
    base: float = BASE_SECONDS,
    cap: float = CAP_SECONDS,
    rng: random.Random | None = None,
) -> timedelta:
    """The wait before attempt `retry_count + 1`. "Equal jitter": half the exponential
    step is fixed, half random, so retries spread out (no thundering herd after an
    outage) yet never come back sooner than half the step."""
    step = min(cap, base * (2 ** min(retry_count, 32)))
    draw = (rng or random).random()
    return timedelta(seconds=step / 2 + draw * step / 2)
