"""Shared pieces of the benchmark scripts: start servers on loopback, drive wrk, parse it.

Only loopback addresses are ever targeted, and every run is bounded in time.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).parent
# Every gameportal process a run starts signs and verifies with this one key: without it
# each data folder would make its own, and a token from one server would be refused by
# the next (every request a fast 401, a figure that means nothing).
SECRET_KEY = os.environ.get("GAMEPORTAL_SECRET_KEY") or secrets.token_urlsafe(32)
UVICORN_FLAGS = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--workers", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not become ready")


@contextmanager
def running(cmd: list[str], ready_url: str, env: dict[str, str]) -> Iterator[None]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(ready_url, proc)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def uvicorn_flags(workers: int = 1) -> list[str]:
    return [*UVICORN_FLAGS[:-1], str(workers)]


@contextmanager
def hello_server(workers: int = 1) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "hello_app:app", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    base = f"http://127.0.0.1:{port}"
    with running([*cmd, *uvicorn_flags(workers)], f"{base}/hello", env):
        yield base


@contextmanager
def gameportal_uvicorn(
    database_url: str,
    *,
    factory: str = "gameportal.app:create_app",
    workers: int = 1,
    multiprocess_metrics: bool = False,
) -> Iterator[str]:
    """The API straight under uvicorn (no `serve`, no queue worker) on a migrated database,
    with the settings `serve` gives it. With `multiprocess_metrics`, in a fresh
    PROMETHEUS_MULTIPROC_DIR, as `serve` runs several processes; otherwise without one."""
    port = free_port()
    env = {
        **os.environ,
        "GAMEPORTAL_DATABASE_URL": database_url,
        "GAMEPORTAL_SECRET_KEY": SECRET_KEY,
        "PYTHONPATH": str(HERE),
        "GAMEPORTAL_LOG_JSON": "true",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    metrics_dir = tempfile.mkdtemp(prefix="gameportal-bench-metrics-")
    if multiprocess_metrics:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    cmd = [sys.executable, "-m", "uvicorn", factory, "--factory", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    try:
        with running([*cmd, *uvicorn_flags(workers)], f"{base}/readyz", env):
            yield base
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


@contextmanager
def gameportal_server(extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """gameportal serve, one worker, on GAMEPORTAL_DATABASE_URL or a fresh embedded server."""
    with gameportal_server_and_url(extra_env) as (base, _):
        yield base


@contextmanager
def gameportal_server_and_url(
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[str, str]]:
    """gameportal_server, and the URL of the (migrated) database it serves."""
    port = free_port()
    env = {**os.environ, "GAMEPORTAL_SECRET_KEY": SECRET_KEY, **(extra_env or {})}
    tmp = None
    if not env.get("GAMEPORTAL_DATABASE_URL"):
        tmp = tempfile.mkdtemp(prefix="gameportal-bench-")
        env["GAMEPORTAL_DATA_DIR"] = tmp
    cmd = [sys.executable, "-m", "gameportal.cli", "serve", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    try:
        with running(cmd, f"{base}/readyz", env):
            url = (
                env.get("GAMEPORTAL_DATABASE_URL")
                or subprocess.run(
                    [sys.executable, "-m", "gameportal.cli", "db-url"],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=60,
                ).stdout.strip()
            )
            yield base, url
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def line(self, label: str) -> str:
        return (
            f"{label:<34} {self.rps:>9.0f} req/s   p50 {self.p50_ms:>7.2f} ms   "
            f"p99 {self.p99_ms:>7.2f} ms   non-2xx/errors {self.errors}"
        )


def median_result(results: list[WrkResult]) -> WrkResult:
    """One figure for interleaved rounds: medians of rate and latency, totals of counts."""
    return WrkResult(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
    )


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(
    url: str,
    *,
    seconds: int = 10,
    connections: int = 32,
    threads: int = 1,
    script: Path | None = None,
    headers: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    allow_3xx: bool = False,
) -> WrkResult:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    if not url.startswith("http://127.0.0.1:"):
        raise SystemExit("benchmarks only target loopback")
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for key, value in (headers or {}).items():
        cmd += ["-H", f"{key}: {value}"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(
        [*cmd, url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        env={**os.environ, **(env or {})},
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {
        p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    }
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = None if allow_3xx else re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(x) for x in sock.groups()) if sock else 0
    )
    return WrkResult(rps=rps, p50_ms=lat["50"], p99_ms=lat["99"], requests=total, errors=errors)


def paced_probe(url: str, *, seconds: float, rate: float = 100.0) -> WrkResult:
    """GET `url` at a steady `rate` on one keep-alive connection and report its latency.

    A light, open-loop probe: unlike wrk it does not saturate the server, so it measures
    what an ordinary request sees while something else loads the service.
    """
    if not url.startswith("http://127.0.0.1:"):
        raise SystemExit("benchmarks only target loopback")
    latencies: list[float] = []
    errors = 0
    interval = 1.0 / rate
    started = time.perf_counter()
    with httpx.Client(timeout=10) as client:
        next_at = started
        while time.perf_counter() - started < seconds:
            t0 = time.perf_counter()
            try:
                if client.get(url).status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.perf_counter() - t0) * 1000)
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return WrkResult(
        rps=len(latencies) / elapsed,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        requests=len(latencies),
        errors=errors,
    )
