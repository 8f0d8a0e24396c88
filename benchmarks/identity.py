"""Identity hot paths beside their ceilings, measured in one run on this machine.

    .venv/bin/python benchmarks/identity.py [--seconds 10]

Ceilings: a bare FastAPI hello endpoint on the same uvicorn settings (1 worker, uvloop,
httptools), and raw argon2id with gameportal's parameters on as many threads as cores.
Targets (issue 3): GET /me >= 0.4x hello; login >= 0.85x raw argon2 while GET /healthz
p99 stays under 3x its idle value; refresh >= 0.3x hello.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _harness import HERE, gameportal_server, hello_server, paced_probe, wrk
from argon2 import PasswordHasher

from gameportal.config import Settings

PASSWORD = "violet-kettle-harbour-93"


def write_lines(lines: list[str]) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines))
        return f.name


def raw_argon2_rate(seconds: float) -> float:
    s = Settings()
    hasher = PasswordHasher(
        time_cost=s.argon2_time_cost,
        memory_cost=s.argon2_memory_kib,
        parallelism=s.argon2_parallelism,
    )
    stored = hasher.hash(PASSWORD)
    threads = os.cpu_count() or 1
    deadline = time.perf_counter() + seconds
    counts = [0] * threads

    def work(i: int) -> None:
        while time.perf_counter() < deadline:
            hasher.verify(stored, PASSWORD)
            counts[i] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return sum(counts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    secs = args.seconds

    with hello_server() as hello:
        hello_result = wrk(f"{hello}/hello", seconds=secs)
    argon2_rps = raw_argon2_rate(secs)

    with gameportal_server() as base:
        email = f"bench-{int(time.time())}@example.com"
        reg = httpx.post(
            f"{base}/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "name": "Bench"},
        )
        reg.raise_for_status()
        token = reg.json()["accessToken"]

        me = wrk(f"{base}/api/v1/me", seconds=secs, headers={"Authorization": f"Bearer {token}"})
        healthz_idle = paced_probe(f"{base}/healthz", seconds=secs)

        # Login under load (many accounts), and a light /healthz probe beside it.
        accounts = [email]
        with httpx.Client(base_url=base, timeout=30) as client:
            for n in range(63):
                other = f"bench-{n}-{email}"
                client.post(
                    "/api/v1/auth/register",
                    json={"email": other, "password": PASSWORD, "name": "Bench"},
                ).raise_for_status()
                accounts.append(other)
        accounts_file = write_lines(accounts)
        login_env = {"BENCH_ACCOUNTS_FILE": accounts_file, "BENCH_PASSWORD": PASSWORD}
        side: dict[str, object] = {}

        def probe() -> None:
            time.sleep(1)
            side["healthz"] = paced_probe(f"{base}/healthz", seconds=secs - 2)

        thread = threading.Thread(target=probe)
        thread.start()
        login = wrk(
            f"{base}/api/v1/auth/login",
            seconds=secs,
            connections=16,
            script=HERE / "login.lua",
            env=login_env,
        )
        thread.join()
        healthz_busy = side["healthz"]

        # A queue of live refresh tokens, one per session, twice as many as connections.
        connections = 32
        tokens = []
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(connections * 2):
                r = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
                r.raise_for_status()
                tokens.append(r.json()["refreshToken"])
        tokens_file = write_lines(tokens)
        refresh = wrk(
            f"{base}/api/v1/auth/refresh",
            seconds=secs,
            connections=connections,
            script=HERE / "refresh.lua",
            env={"BENCH_TOKENS_FILE": tokens_file},
        )
        for path in (tokens_file, accounts_file):
            Path(path).unlink()

    print(f"\nidentity benchmark, {secs}s per measurement, wrk on loopback, 1 uvicorn worker\n")
    print(hello_result.line("ceiling: FastAPI hello"))
    print(f"{'ceiling: raw argon2id verify':<34} {argon2_rps:>9.1f} /s on {os.cpu_count()} threads")
    print(me.line("GET /api/v1/me (authenticated)"))
    print(login.line("POST /api/v1/auth/login"))
    print(refresh.line("POST /api/v1/auth/refresh"))
    print(healthz_idle.line("GET /healthz idle, 100/s probe"))
    print(healthz_busy.line("GET /healthz, 100/s, during logins"))  # type: ignore[attr-defined]
    print()
    ratios = [
        ("GET /me / hello", me.rps / hello_result.rps, 0.4),
        ("login / raw argon2", login.rps / argon2_rps, 0.85),
        ("refresh / hello", refresh.rps / hello_result.rps, 0.3),
        ("healthz p99 busy / idle (max)", healthz_busy.p99_ms / healthz_idle.p99_ms, 3.0),  # type: ignore[attr-defined]
    ]
    for label, ratio, target in ratios:
        ok = ratio <= target if "max" in label else ratio >= target
        print(f"{label:<34} {ratio:6.2f}   target {target}   {'ok' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
