import random
from datetime import timedelta

from gameportal.notifications.backoff import retry_delay


def test_delay_doubles_within_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for retry in range(12):
        step = min(3600.0, 5.0 * 2**retry)
        delay = retry_delay(retry, rng=rng).total_seconds()
        assert step / 2 <= delay <= step
    assert retry_delay(10_000).total_seconds() <= 3600  # no overflow, capped


def test_jitter_spreads_retries() -> None:
    rng = random.Random(1)
    delays = {retry_delay(3, rng=rng) for _ in range(50)}
    assert len(delays) > 40
    assert min(delays) >= timedelta(seconds=20)
