"""The `gameportal` command end to end: a real uvicorn on loopback, on an embedded
PostgreSQL in a temporary folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.net import free_port

GAMEPORTAL = [sys.executable, "-m", "gameportal.cli"]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEPORTAL_")}
    env.update({"GAMEPORTAL_DATA_DIR": str(data_dir), "GAMEPORTAL_LOG_LEVEL": "WARNING"}, **extra)
    return env


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the service did not become ready")


def _postgres_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def _serving(data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`gameportal serve` on a free loopback port; SIGTERM when the block ends."""
    port = free_port()
    proc = subprocess.Popen(
        [*GAMEPORTAL, "serve", "--port", str(port)],
        env=_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(port, proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_serve_on_embedded_postgres_then_stop_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with _serving(data_dir) as (base, proc):
        register = httpx.post(
            f"{base}/api/v1/auth/register",
            json={
                "email": "cli@example.com",
                "password": "violet-kettle-harbour-93",
                "name": "Cli",
            },
        )
        assert register.status_code == 201, register.text
        assert register.headers["x-request-id"]

        second = subprocess.run(
            [*GAMEPORTAL, "serve", "--port", str(free_port())],
            env=_env(data_dir),
            capture_output=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert b"already in use" in second.stderr

        # Other commands share the running server instead of refusing.
        url = subprocess.run(
            [*GAMEPORTAL, "db-url"], env=_env(data_dir), capture_output=True, timeout=60, check=True
        )
        assert url.stdout.decode().startswith("postgresql://")
        admin = subprocess.run(
            [*GAMEPORTAL, "create-admin", "--email", "cli@example.com"],
            env=_env(data_dir),
            input=b"violet-kettle-harbour-93\n",
            capture_output=True,
            timeout=60,
        )
        assert admin.returncode == 0, admin.stderr
        assert b"promoted cli@example.com" in admin.stdout
        pruned = subprocess.run(
            [*GAMEPORTAL, "prune"], env=_env(data_dir), capture_output=True, timeout=60
        )
        assert pruned.returncode == 0, pruned.stderr
        assert b"deleted 0 ended sessions" in pruned.stdout
        login = httpx.post(
            f"{base}/api/v1/auth/login",
            json={"email": "cli@example.com", "password": "violet-kettle-harbour-93"},
        )
        assert login.json()["user"]["roles"] == ["user", "admin"]
    assert proc.returncode == 0
    assert not _postgres_running(data_dir / "postgres")

    # The data is kept across restarts.
    with _serving(data_dir) as (base, _):
        login = httpx.post(
            f"{base}/api/v1/auth/login",
            json={"email": "cli@example.com", "password": "violet-kettle-harbour-93"},
        )
        assert login.status_code == 200


def test_production_refuses_a_default_secret(tmp_path: Path) -> None:
    result = subprocess.run(
        [*GAMEPORTAL, "migrate"],
        env=_env(tmp_path, GAMEPORTAL_ENV="production"),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"GAMEPORTAL_SECRET_KEY" in result.stderr
    short = subprocess.run(
        [*GAMEPORTAL, "migrate"],
        env=_env(tmp_path, GAMEPORTAL_ENV="production", GAMEPORTAL_SECRET_KEY="short"),
        capture_output=True,
        timeout=60,
    )
    assert short.returncode == 2


def test_configuration_errors_name_the_setting_but_never_echo_secrets(tmp_path: Path) -> None:
    secret = "a-real-production-secret-0123456789abcdef"
    result = subprocess.run(
        [*GAMEPORTAL, "db-url"],
        env=_env(tmp_path, GAMEPORTAL_SECRET_KEY=secret, GAMEPORTAL_VAPID_PRIVATE_KEY="oops"),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"GAMEPORTAL_VAPID_PRIVATE_KEY" in result.stderr
    assert secret.encode() not in result.stderr
    assert b"oops" not in result.stderr


def test_migrate_sql_prints_the_schema_without_connecting(tmp_path: Path) -> None:
    nowhere = "postgresql://nobody@127.0.0.1:9/nothing"  # offline mode never connects
    result = subprocess.run(
        [*GAMEPORTAL, "migrate", "--sql"],
        env=_env(tmp_path, GAMEPORTAL_DATABASE_URL=nowhere),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert b"CREATE TABLE users" in result.stdout
