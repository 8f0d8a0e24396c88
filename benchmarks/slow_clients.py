"""Slow clients against `gameportal serve`: many connections that trickle their request one
byte a second, the server under a 1,024 file-descriptor limit (`ulimit -n` of many
machines). Prints how many of them the server has closed, and whether a new client is
answered while they are open.

    .venv/bin/python benchmarks/slow_clients.py [--clients 1000] [--seconds 20]

Uses GAMEPORTAL_DATABASE_URL when set, otherwise a fresh embedded PostgreSQL; the server's
settings come from the environment (GAMEPORTAL_HEADER_TIMEOUT_SECONDS and so on).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import httpx
from _harness import free_port, wait_ready

FD_LIMIT = 1024


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


class Slow:
    def __init__(self) -> None:
        self.closed_at: float | None = None
        self.answer = b""


async def _trickle(port: int, slow: Slow, started: float, until: float) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        slow.closed_at = time.monotonic() - started
        return

    async def read() -> None:
        with contextlib.suppress(OSError):
            slow.answer = (await reader.read(64)).split(b"\r\n", 1)[0]
        if slow.closed_at is None:
            slow.closed_at = time.monotonic() - started

    reading = asyncio.create_task(read())
    header = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
    try:
        for byte in header:
            if reading.done() or time.monotonic() > until:
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(1)
    except OSError:
        pass
    finally:
        reading.cancel()
        writer.close()


def _probe(base: str) -> str:
    started = time.monotonic()
    try:
        status = httpx.get(f"{base}/healthz", timeout=5).status_code
    except httpx.HTTPError as exc:
        return f"no answer ({type(exc).__name__} after {time.monotonic() - started:.1f} s)"
    return f"{status} in {time.monotonic() - started:.2f} s"


async def _scenario(base: str, port: int, clients: int, seconds: float) -> None:
    started = time.monotonic()
    until = started + seconds
    slows = [Slow() for _ in range(clients)]
    tasks = []
    for i, slow in enumerate(slows):
        tasks.append(asyncio.create_task(_trickle(port, slow, started, until)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    print(f"{clients} slow clients connecting, each sending one byte a second")
    for at in (5.0, seconds / 2, seconds - 1):
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        closed = sum(1 for s in slows if s.closed_at is not None)
        answer = await asyncio.to_thread(_probe, base)
        print(
            f"t={time.monotonic() - started:5.1f} s  slow connections closed by the server: "
            f"{closed:4}/{clients}   a new client: {answer}"
        )
    await asyncio.gather(*tasks, return_exceptions=True)
    answers: dict[bytes, int] = {}
    for s in slows:
        if s.closed_at is not None and s.closed_at < seconds:
            answers[s.answer] = answers.get(s.answer, 0) + 1
    print("how the server ended them:", {k.decode() or "(closed)": v for k, v in answers.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.clients + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.clients + 1000), hard))

    port = free_port()
    env = {**os.environ, "GAMEPORTAL_LOG_LEVEL": "WARNING"}
    tmp = None
    if not env.get("GAMEPORTAL_DATABASE_URL"):
        tmp = tempfile.mkdtemp(prefix="gameportal-slow-")
        env["GAMEPORTAL_DATA_DIR"] = tmp
    cmd = [sys.executable, "-m", "gameportal.cli", "serve", "--port", str(port), "--no-worker"]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_limit_fds,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/readyz", proc)
        print(f"gameportal serve, file-descriptor limit {FD_LIMIT}")
        asyncio.run(_scenario(base, port, args.clients, args.seconds))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
