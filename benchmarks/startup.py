"""From `gameportal serve` to a ready portal, on an existing data folder, beside its ceilings.

    .venv/bin/python benchmarks/startup.py [--rounds 5]

Measured from the moment the command is started:
- API ready: /readyz answers 200 (database up, schema at the latest migration);
- portal ready: a registration made right then has its verification mail in the outbox,
  so the queue worker is up and delivering too.
Ceilings, in the same run: a bare FastAPI hello app under uvicorn (spawn to first 200),
and the embedded PostgreSQL alone starting on the same data folder. The first start
(which creates the database) is reported apart. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _harness import HERE, UVICORN_FLAGS, free_port

from gameportal.db import EmbeddedPostgres

TIMEOUT = 120.0
PASSWORD = "violet-kettle-harbour-93"


def _until(condition: object, proc: subprocess.Popen[bytes], started: float) -> float:
    deadline = started + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if condition():  # type: ignore[operator]
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise SystemExit("not ready in time")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def hello_start() -> float:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    cmd = [sys.executable, "-m", "uvicorn", "hello_app:app", "--port", str(port), *UVICORN_FLAGS]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/hello"
        return _until(lambda: httpx.get(url, timeout=1).status_code == 200, proc, started)
    finally:
        _stop(proc)


def postgres_start(data_dir: Path) -> float:
    started = time.monotonic()
    server = EmbeddedPostgres(data_dir / "postgres")
    server.start()
    elapsed = time.monotonic() - started
    server.stop()
    return elapsed


def serve_start(data_dir: Path, n: int) -> tuple[float, float]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GAMEPORTAL_")},
        "GAMEPORTAL_DATA_DIR": str(data_dir),
        "GAMEPORTAL_LOG_LEVEL": "WARNING",
    }
    base = f"http://127.0.0.1:{port}"
    outbox = data_dir / "outbox"
    before = set(outbox.glob("*.eml")) if outbox.exists() else set()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gameportal.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        api = _until(
            lambda: httpx.get(f"{base}/readyz", timeout=1).status_code == 200, proc, started
        )
        httpx.post(
            f"{base}/api/v1/auth/register",
            json={"email": f"p{n}@example.com", "password": PASSWORD, "name": "P"},
            timeout=30,
        ).raise_for_status()
        portal = _until(lambda: set(outbox.glob("*.eml")) - before, proc, started)
        return api, portal
    finally:
        _stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gp-start-") as tmp:
        data_dir = Path(tmp) / "var"
        first_api, first_portal = serve_start(data_dir, 0)
        print(
            f"first start (creates the database): API ready {first_api:.2f} s, "
            f"portal ready {first_portal:.2f} s"
        )
        hello: list[float] = []
        postgres: list[float] = []
        api: list[float] = []
        portal: list[float] = []
        for n in range(1, args.rounds + 1):
            hello.append(hello_start())
            postgres.append(postgres_start(data_dir))
            a, p = serve_start(data_dir, n)
            api.append(a)
            portal.append(p)
            print(
                f"round {n}: hello {hello[-1]:.2f} s, postgres alone {postgres[-1]:.2f} s, "
                f"serve -> API ready {a:.2f} s, -> portal ready {p:.2f} s"
            )
    med = statistics.median
    print(
        f"\nmedian of {args.rounds}: serve -> API ready {med(api):.2f} s, "
        f"-> portal ready (API and worker) {med(portal):.2f} s; ceilings: hello "
        f"{med(hello):.2f} s + postgres alone {med(postgres):.2f} s = "
        f"{med(hello) + med(postgres):.2f} s "
        f"(portal ready / ceilings {med(portal) / (med(hello) + med(postgres)):.2f}x)"
    )


if __name__ == "__main__":
    main()
