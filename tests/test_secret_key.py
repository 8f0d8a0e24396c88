"""The secret key: no public default. Outside production a random key is made on the first
start and kept in the data folder, and every process on that folder uses it; production
refuses to start without an explicit one."""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt
import pytest

from gameportal.config import PUBLIC_SECRET_KEYS, Settings
from tests.net import free_port

GAMEPORTAL = [sys.executable, "-m", "gameportal.cli"]
PASSWORD = "violet-kettle-harbour-93"


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEPORTAL_")}
    env.update({"GAMEPORTAL_DATA_DIR": str(data_dir), "GAMEPORTAL_LOG_LEVEL": "WARNING"}, **extra)
    return env


@pytest.fixture
def data_dir() -> Path:
    # Short: the embedded PostgreSQL puts its socket inside (see tests/test_cli.py).
    return Path(tempfile.mkdtemp(prefix="k")) / "var"


def _key_file(data_dir: Path) -> tuple[str, int]:
    path = data_dir / "secret_key"
    return path.read_text().strip(), stat.S_IMODE(path.stat().st_mode)


@contextmanager
def _process(data_dir: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [*GAMEPORTAL, *args], env=_env(data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@contextmanager
def _serving(data_dir: Path) -> Iterator[str]:
    """`serve --no-worker`: the queue worker is another command, started by the test."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with _process(data_dir, "serve", "--port", str(port), "--no-worker") as proc:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "serve did not become ready"
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield base


def _unsubscribe_link(outbox: Path, deadline: float) -> str:
    while time.monotonic() < deadline:
        for path in outbox.glob("*.eml") if outbox.exists() else []:
            mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            header = mail["List-Unsubscribe"]
            if header:
                return str(header).strip("<>")
        time.sleep(0.2)
    raise AssertionError("the queue worker sent no mail with an unsubscribe link")


def test_every_command_on_a_data_folder_uses_one_generated_key(data_dir: Path) -> None:
    # A command that needs no key, run where there is no data folder, leaves none behind.
    nothing = subprocess.run(
        [*GAMEPORTAL, "migrate"], env=_env(data_dir), capture_output=True, timeout=60
    )
    assert nothing.returncode == 1
    assert not data_dir.exists()

    # `serve` makes the key on its first start; a `gameportal worker` started on the same
    # folder (another command, another process) signs with the same key.
    with _serving(data_dir) as base:
        key, mode = _key_file(data_dir)
        assert mode == 0o600
        assert len(key) >= 32
        assert key not in PUBLIC_SECRET_KEYS
        registered = httpx.post(
            f"{base}/api/v1/auth/register",
            json={"email": "keys@example.com", "password": PASSWORD, "name": "Keys"},
        )
        assert registered.status_code == 201, registered.text
        claims = jwt.decode(
            registered.json()["accessToken"], key, algorithms=["HS256"], audience="gameportal-api"
        )
        assert claims["sub"] == registered.json()["user"]["id"]

        promoted = subprocess.run(
            [*GAMEPORTAL, "create-admin", "--email", "keys@example.com"],
            env=_env(data_dir),
            input=f"{PASSWORD}\n".encode(),
            capture_output=True,
            timeout=60,
        )
        assert promoted.returncode == 0, promoted.stderr
        login = httpx.post(
            f"{base}/api/v1/auth/login", json={"email": "keys@example.com", "password": PASSWORD}
        )
        admin = {"Authorization": f"Bearer {login.json()['accessToken']}"}
        queued = httpx.post(
            f"{base}/api/v1/admin/notifications",
            headers=admin,
            json={
                "type": "EMAIL",
                "recipientUserId": registered.json()["user"]["id"],
                "payload": {"subject": "Season 3", "body": "New maps.", "category": "marketing"},
            },
        )
        assert queued.status_code == 201, queued.text
        with _process(data_dir, "worker"):
            link = _unsubscribe_link(data_dir / "outbox", time.monotonic() + 30)
        # The worker signed this link; the API process takes it.
        token = re.search(r"token=([^&>]+)", link).group(1)  # type: ignore[union-attr]
        unsubscribed = httpx.post(f"{base}/api/v1/unsubscribe", params={"token": token})
        assert unsubscribed.status_code == 204, unsubscribed.text

    assert _key_file(data_dir) == (key, 0o600)  # kept, not made again


def test_processes_starting_together_on_a_new_folder_agree(tmp_path: Path) -> None:
    script = "from gameportal.config import get_settings; print(get_settings().secret_key)"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], env=_env(tmp_path / "var"), stdout=subprocess.PIPE
        )
        for _ in range(4)
    ]
    keys = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert keys == {_key_file(tmp_path / "var")[0].encode()}
    assert [p.name for p in (tmp_path / "var").iterdir()] == ["secret_key"]  # no leftovers


def test_production_refuses_to_start_without_an_explicit_key(data_dir: Path) -> None:
    Settings(data_dir=data_dir).with_secret_key()  # a development start left one behind
    result = subprocess.run(
        [*GAMEPORTAL, "migrate"],
        env=_env(data_dir, GAMEPORTAL_ENV="production", GAMEPORTAL_SMTP_HOST="127.0.0.1"),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"GAMEPORTAL_SECRET_KEY must be set in production" in result.stderr
    assert _key_file(data_dir)[0].encode() not in result.stderr

    explicit = "a-real-production-secret-0123456789abcdef"
    settings = Settings(env="production", smtp_host="mail", secret_key=explicit, data_dir=data_dir)
    assert settings.secret_key == explicit


def test_an_explicit_key_wins_and_no_file_is_made(tmp_path: Path) -> None:
    settings = Settings(secret_key="k" * 40, data_dir=tmp_path / "var").with_secret_key()
    assert settings.secret_key == "k" * 40
    assert settings.secret_key_file is None
    assert not (tmp_path / "var").exists()


def test_the_published_development_key_is_refused_everywhere(tmp_path: Path) -> None:
    (public,) = PUBLIC_SECRET_KEYS
    with pytest.raises(ValueError, match="published development key"):
        Settings(secret_key=public, data_dir=tmp_path)


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    generated = Settings(data_dir=tmp_path).with_secret_key().secret_key
    (tmp_path / "secret_key").chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600") as refused:
        Settings(data_dir=tmp_path).with_secret_key()
    assert generated not in str(refused.value)
