"""Password hashing (argon2id, off the event loop) and the strength rules of OWASP ASVS:
length bounds, no composition rules, common and guessable passwords refused."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

from gameportal.config import Settings
from gameportal.errors import InvalidField

# zxcvbn's matchers are quadratic; it refuses longer input. Past this the first 72
# characters are judged, which still catches a long run of a repeated word.
_ZXCVBN_MAX = 72


def normalize(password: str) -> str:
    # NFKC so the same password typed on two keyboards hashes the same (NIST SP 800-63B).
    return unicodedata.normalize("NFKC", password)


def _lower_priority(nice: int) -> None:
    # Hashing threads run niced, so under a login storm the event loop thread still gets the
    # CPU first and every other request keeps its latency (Linux: per-thread priority).
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


@functools.cache
def _executor(nice: int) -> ThreadPoolExecutor:
    """One pool per process, as many threads as cores: argon2 is CPU-bound and releases
    the GIL, so more threads would only queue inside the OS."""
    return ThreadPoolExecutor(
        max_workers=os.cpu_count() or 1,
        thread_name_prefix="argon2",
        initializer=_lower_priority,
        initargs=(nice,),
    )


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    new_hash: str | None = None  # set when the stored hash used old parameters


class Passwords:
    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self._min_length = settings.password_min_length
        self._max_length = settings.password_max_length
        self._min_score = settings.password_min_score
        self._nice = settings.hash_thread_nice
        # Verified against when the account does not exist, so both answers cost the same.
        self._dummy_hash = self._hasher.hash("gameportal-dummy-password-for-timing")

    def check_strength(self, password: str, *, field: str, user_inputs: list[str]) -> None:
        length = len(password)
        if length < self._min_length:
            raise InvalidField(
                field, f"must be at least {self._min_length} characters", "password_too_short"
            )
        if length > self._max_length:
            # Refused, never truncated: a silently shortened password is a weaker one.
            raise InvalidField(
                field, f"must be at most {self._max_length} characters", "password_too_long"
            )
        result = zxcvbn(password[:_ZXCVBN_MAX], user_inputs=user_inputs, max_length=_ZXCVBN_MAX)
        if result["score"] < self._min_score:
            warning = result["feedback"].get("warning") or "this password is too easy to guess"
            raise InvalidField(
                field,
                f"{warning.rstrip('.')}; choose a longer or less common password",
                "password_too_weak",
            )

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            _executor(self._nice), self._hasher.hash, normalize(password)
        )

    async def verify(self, stored_hash: str | None, password: str) -> VerifyResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            _executor(self._nice), self._verify_sync, stored_hash, password
        )

    def _verify_sync(self, stored_hash: str | None, password: str) -> VerifyResult:
        password = normalize(password)
        if stored_hash is None:
            with contextlib.suppress(VerificationError):
                self._hasher.verify(self._dummy_hash, password)
            return VerifyResult(ok=False)
        try:
            self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return VerifyResult(ok=False)
        if self._hasher.check_needs_rehash(stored_hash):
            return VerifyResult(ok=True, new_hash=self._hasher.hash(password))
        return VerifyResult(ok=True)
