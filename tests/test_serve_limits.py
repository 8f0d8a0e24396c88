"""`gameportal serve` against slow and numerous clients, over raw sockets: headers and
bodies trickled a byte at a time are cut off after their timeouts, connections past the
limit are answered 503 at once, a normal client is answered meanwhile, and an anonymous
upload hears 401 before it has sent its body."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from tests.net import free_port

GAMEPORTAL = [sys.executable, "-m", "gameportal.cli"]
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    data_dir = Path(tempfile.mkdtemp(prefix="v")) / "var"  # short: PostgreSQL's socket
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEPORTAL_")}
    env.update(
        GAMEPORTAL_DATA_DIR=str(data_dir),
        GAMEPORTAL_LOG_LEVEL="WARNING",
        GAMEPORTAL_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        GAMEPORTAL_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        GAMEPORTAL_BODY_MIN_RATE_BYTES="1000",
        GAMEPORTAL_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
    )
    port = free_port()
    proc = subprocess.Popen(
        [*GAMEPORTAL, "serve", "--port", str(port), "--no-worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited early: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            with suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the service did not become ready"
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


class Trickler:
    """A raw connection sending `data` one byte every `every` seconds (after `first`,
    sent at once), recording what the server answers and when it closes."""

    def __init__(self, base: str, first: bytes, data: bytes, every: float = 0.5) -> None:
        self.sock = socket.create_connection(("127.0.0.1", _port(base)))
        self.opened = time.monotonic()
        self.closed_after: float | None = None
        self.answer = b""
        self._stop = threading.Event()
        if first:
            self.sock.sendall(first)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._send, args=(data, every), daemon=True).start()

    def _read(self) -> None:
        with suppress(OSError):
            while chunk := self.sock.recv(4096):
                self.answer += chunk
        self.closed_after = time.monotonic() - self.opened

    def _send(self, data: bytes, every: float) -> None:
        for byte in data:
            if self._stop.wait(every) or self.closed_after is not None:
                return
            try:
                self.sock.send(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        with suppress(OSError):
            self.sock.close()


@contextmanager
def trickling(base: str, count: int, first: bytes, data: bytes) -> Iterator[list[Trickler]]:
    clients = [Trickler(base, first, data) for _ in range(count)]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def _wait_closed(clients: list[Trickler], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(c.closed_after is None for c in clients):
        time.sleep(0.05)
    assert all(c.closed_after is not None for c in clients), "the server kept slow clients"


SLOW_HEADERS = b"X-Slow: " + b"a" * 1000


def test_headers_trickled_a_byte_at_a_time_are_cut_off_and_others_are_served(
    server: str,
) -> None:
    request_line = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    with trickling(server, 10, request_line, SLOW_HEADERS) as slow:
        time.sleep(0.3)
        started = time.monotonic()
        assert httpx.get(f"{server}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - started < 2
        _wait_closed(slow, HEADER_TIMEOUT + 3)
    for client in slow:
        assert client.closed_after is not None
        assert HEADER_TIMEOUT - 0.5 <= client.closed_after <= HEADER_TIMEOUT + 2.5
        assert client.answer.startswith(b"HTTP/1.1 408 "), client.answer[:100]
        assert b"request-timeout" in client.answer


def test_a_silent_connection_is_cut_off_too(server: str) -> None:
    with trickling(server, 3, b"", b"") as silent:
        _wait_closed(silent, HEADER_TIMEOUT + 3)
    assert all(c.answer.startswith(b"HTTP/1.1 408 ") for c in silent)


def test_a_body_trickled_a_byte_at_a_time_is_cut_off(server: str) -> None:
    head = (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    )
    with trickling(server, 5, head + b'{"email": ', b" " * 490) as slow:
        _wait_closed(slow, BODY_TIMEOUT + 3)
    for client in slow:
        assert client.closed_after is not None and client.closed_after <= BODY_TIMEOUT + 2.5
        assert client.answer.startswith(b"HTTP/1.1 408 "), client.answer[:100]


def test_past_the_connection_limit_new_clients_get_a_quick_503(server: str) -> None:
    with trickling(server, MAX_CONNECTIONS + 5, b"", b"") as idle:
        time.sleep(0.3)
        started = time.monotonic()
        refused = httpx.get(f"{server}/healthz", timeout=5)
        assert time.monotonic() - started < 2
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/problem+json"
        # The connections past the limit are let go within about a second; the others at
        # the header timeout. Then there is room again.
        _wait_closed(idle, HEADER_TIMEOUT + 3)
    late = sorted(c.closed_after or 0 for c in idle)
    assert late[4] <= 2.0, late  # five over the limit, each let go within a second or so
    deadline = time.monotonic() + 5
    while httpx.get(f"{server}/healthz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline


def test_an_anonymous_upload_hears_401_before_sending_its_body(server: str) -> None:
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=5) as sock:
        sock.sendall(
            b"POST /api/v1/media HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=xyz\r\n"
            b"Content-Length: 20971520\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            assert chunk, "closed without an answer"
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
        assert b"connection: close" in answer.lower()
        # It was not waiting for the body: the connection ends after the answer.
        while chunk := sock.recv(4096):
            answer += chunk
        assert b"unauthorized" in answer
