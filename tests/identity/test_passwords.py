"""The password-hashing threads run at the niceness the settings ask for."""

from __future__ import annotations

import os
import sys

import pytest

from gameportal.config import Settings
from gameportal.identity.passwords import Passwords, _executor

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux")


def _niceness() -> int:
    # 0: the calling thread (Linux schedules threads, not processes).
    return os.getpriority(os.PRIO_PROCESS, 0)


async def test_hashing_threads_run_at_the_configured_niceness() -> None:
    loop_thread = _niceness()
    # Above any niceness the test run may have been started with: raising it needs no rights.
    settings = Settings(argon2_memory_kib=8192, argon2_time_cost=1, hash_thread_nice=17)
    passwords = Passwords(settings)
    stored = await passwords.hash("violet-kettle-harbour-93")
    assert (await passwords.verify(stored, "violet-kettle-harbour-93")).ok
    assert _executor(17).submit(_niceness).result() == 17
    # The event loop's own thread keeps its priority.
    assert _niceness() == loop_thread
