"""The access log line written directly is the line structlog would write."""

from __future__ import annotations

import re

import orjson
import pytest
import structlog

from gameportal import observability
from gameportal.observability import configure_logging, record_request

_TIMESTAMP = re.compile(rb'"timestamp":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)"')


def _lines(capfd: pytest.CaptureFixture[str]) -> list[bytes]:
    return [line.encode() for line in capfd.readouterr().err.splitlines() if line]


def test_direct_access_lines_are_structlogs_lines(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    assert observability._access_lines_direct
    structlog.contextvars.bind_contextvars(request_id="abc-123", api_token="s3cret")
    try:
        capfd.readouterr()
        record_request("GET", "/api/v1/me", 200, 0.0123456)
        record_request("BREW", "/x/{id}", 418, 2.5)
        observability._access_lines_direct = False  # the same calls through structlog
        record_request("GET", "/api/v1/me", 200, 0.0123456)
        record_request("BREW", "/x/{id}", 418, 2.5)
    finally:
        structlog.contextvars.unbind_contextvars("request_id", "api_token")
        configure_logging("WARNING", json=True)
    direct_a, direct_b, logged_a, logged_b = _lines(capfd)
    for direct, logged in ((direct_a, logged_a), (direct_b, logged_b)):
        assert _TIMESTAMP.search(direct) and _TIMESTAMP.search(logged)
        assert _TIMESTAMP.sub(b"T", direct) == _TIMESTAMP.sub(b"T", logged)
    first = orjson.loads(direct_a)
    keys = list(first)
    assert keys[:5] == ["method", "route", "status", "duration_ms", "event"]
    # The bound context in the context's own order (which the process decides), as
    # structlog merges it; then level and time.
    assert set(keys[5:7]) == {"request_id", "api_token"}
    assert keys[7:] == ["level", "timestamp"]
    assert first["api_token"] == "[redacted]"
    assert first["duration_ms"] == 12.35
    assert orjson.loads(direct_b)["method"] == "OTHER"


def test_console_and_quiet_logging_go_through_structlog() -> None:
    configure_logging("INFO", json=False)
    assert not observability._access_lines_direct
    configure_logging("WARNING", json=True)
    assert not observability._access_lines_direct


async def test_lines_of_one_loop_turn_are_written_together(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import os

    writes: list[bytes] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes) -> int:
        if fd == 2:
            writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(observability.os, "write", counting_write)
    configure_logging("INFO", json=True)
    try:
        capfd.readouterr()
        for i in range(300):  # more than one atomic chunk's worth
            record_request("GET", f"/r/{i}", 200, 0.001)
        assert writes == []  # nothing yet: written at the end of this turn
        await asyncio.sleep(0)
    finally:
        configure_logging("WARNING", json=True)
    lines = _lines(capfd)
    assert [orjson.loads(line)["route"] for line in lines] == [f"/r/{i}" for i in range(300)]
    assert 1 < len(writes) < 300
    assert all(len(w) <= observability._ATOMIC_WRITE and w.endswith(b"\n") for w in writes)
