"""When to try a failed message again: capped exponential backoff with jitter, and the
longer schedule of channels that ride out outages of hours (SMTP)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gameportal.config import Settings

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


@dataclass(frozen=True)
class Schedule:
    """The patience of a channel that meets outages measured in hours (SMTP relays): the
    wait doubles from `first` up to `longest`, and the message is given up once the
    waits would add up to more than `give_up_after`. Counted in attempts, not from the
    clock, so a message scheduled for later gets the whole schedule too. Jitter is ±10%
    (the worker's own backoff uses half its step), so that the schedule keeps its length
    while retries after one outage still spread out."""

    first: float
    longest: float
    give_up_after: float

    @classmethod
    def of(cls, settings: Settings) -> Schedule:
        """The SMTP schedule (GAMEPORTAL_SMTP_RETRY_*)."""
        first = settings.smtp_retry_first_seconds
        return cls(
            first=first,
            longest=max(first, settings.smtp_retry_max_seconds),
            give_up_after=settings.smtp_retry_hours * 3600,
        )

    def nominal(self, retry: int) -> float:
        """The wait, before jitter, after failed attempt number `retry + 1`."""
        return min(self.longest, self.first * 2.0 ** min(retry, 64))

    def elapsed(self, waits: int) -> float:
        """What the first `waits` waits add up to, before jitter."""
        total, n = 0.0, 0
        while n < waits and self.first * 2.0**n < self.longest:  # the doubling part
            total += self.first * 2.0**n
            n += 1
        return total + (waits - n) * self.longest if waits > n else total

    @property
    def attempts(self) -> int:
        """How many attempts the schedule makes at most: the first, and one after each
        wait that still fits."""
        waits = 0
        while self.elapsed(waits + 1) <= self.give_up_after:
            if self.first * 2.0**waits >= self.longest:  # the rest are all `longest`
                rest = (self.give_up_after - self.elapsed(waits)) // self.longest
                return 1 + waits + int(rest)
            waits += 1
        return 1 + waits

    def next_delay(self, retry_count: int, rng: random.Random | None = None) -> timedelta | None:
        """The wait after a failed attempt when `retry_count` attempts failed before it;
        None when the schedule is over (the message is to fail for good)."""
        if retry_count + 1 >= self.attempts:
            return None
        jitter = 0.9 + 0.2 * (rng or random).random()
        return timedelta(seconds=self.nominal(retry_count) * jitter)
