"""The `gameportal` command end to end: a real uvicorn on loopback, on an embedded
PostgreSQL in a temporary folder."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image

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


@pytest.fixture
def data_dir() -> Path:
    """A data folder with a short path: PostgreSQL's socket goes inside it, and a Unix
    socket path must fit in about 100 bytes (pytest's tmp_path can be longer). Under the
    run's temporary folder, which is removed when the run ends."""
    return Path(tempfile.mkdtemp(prefix="v")) / "var"


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


def test_serve_on_embedded_postgres_then_stop_cleanly(data_dir: Path) -> None:
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


def _children(pid: int) -> dict[int, str]:
    """The child processes of `pid`, with their command lines."""
    found: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with suppress(FileNotFoundError):
                found[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes().decode()
    return found


def _worker_pid(serve: subprocess.Popen[bytes]) -> int | None:
    workers = [pid for pid, cmd in _children(serve.pid).items() if "worker" in cmd]
    return workers[0] if workers else None


def _wait(condition: Callable[[], object], within: float = 30) -> object:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def _outbox(data_dir: Path, *args: str) -> str:
    result = subprocess.run(
        [*GAMEPORTAL, "outbox", *args], env=_env(data_dir), capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def test_serve_is_a_whole_portal_mail_media_and_schedules_work_with_no_second_command(
    data_dir: Path,
) -> None:
    password = "violet-kettle-harbour-93"
    with _serving(data_dir) as (base, proc):
        worker = _wait(lambda: _worker_pid(proc))
        subprocess.run(
            [*GAMEPORTAL, "create-admin", "--email", "boss@example.com"],
            env=_env(data_dir),
            input=f"{password}\n".encode(),
            capture_output=True,
            timeout=60,
            check=True,
        )
        token = httpx.post(
            f"{base}/api/v1/auth/login", json={"email": "boss@example.com", "password": password}
        ).json()["accessToken"]
        staff = {"Authorization": f"Bearer {token}"}

        # A registration's mail reaches the outbox, with the link that verifies the account.
        httpx.post(
            f"{base}/api/v1/auth/register",
            json={"email": "player@example.com", "password": password, "name": "P"},
        ).raise_for_status()
        listed = _wait(lambda: _outbox(data_dir, "--to", "player@"))
        assert "Confirm your email address" in str(listed)
        [link] = _outbox(data_dir, "latest", "--links").split()
        assert "/verify-email?token=" in link

        # An upload becomes READY (the worker made its renditions).
        image = io.BytesIO()
        Image.new("RGB", (640, 400), "teal").save(image, "PNG")
        upload = httpx.post(
            f"{base}/api/v1/media",
            files={"file": ("cover.png", image.getvalue(), "image/png")},
            headers=staff,
        )
        assert upload.status_code == 201, upload.text
        media_id = upload.json()["id"]
        _wait(lambda: httpx.get(f"{base}/api/v1/media/{media_id}").status_code == 200)

        # A scheduled item publishes itself.
        news = httpx.post(
            f"{base}/api/v1/content",
            json={"type": "NEWS", "title": "Season 3", "content": "Out now", "media": [media_id]},
            headers=staff,
        )
        assert news.status_code == 201, news.text
        soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
        scheduled = httpx.post(
            f"{base}/api/v1/content/{news.json()['id']}/publish",
            json={"publishAt": soon},
            headers=staff,
        )
        assert scheduled.json()["status"] == "SCHEDULED", scheduled.text
        _wait(lambda: httpx.get(f"{base}/api/v1/content/NEWS/season-3").status_code == 200)

        # A worker that dies is started again, and mail flows on.
        os.kill(int(str(worker)), signal.SIGKILL)
        _wait(lambda: _worker_pid(proc) not in (None, worker))
        httpx.post(
            f"{base}/api/v1/auth/register",
            json={"email": "second@example.com", "password": password, "name": "S"},
        ).raise_for_status()
        _wait(lambda: _outbox(data_dir, "--to", "second@"))
        last_worker = _worker_pid(proc)
    assert proc.returncode == 0
    assert last_worker is not None and not Path(f"/proc/{last_worker}").exists()
    assert not _postgres_running(data_dir / "postgres")


def test_no_command_but_serve_creates_a_database_and_no_worker_means_none(data_dir: Path) -> None:
    for command in (["db-url"], ["migrate"], ["create-admin", "--email", "a@example.com"]):
        result = subprocess.run(
            [*GAMEPORTAL, *command],
            env=_env(data_dir),
            input=b"violet-kettle-harbour-93\n",
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 1, command
        assert f"there is no database in {data_dir}".encode() in result.stderr
    assert not data_dir.exists()

    port = free_port()
    proc = subprocess.Popen(
        [*GAMEPORTAL, "serve", "--port", str(port), "--no-worker"],
        env=_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(port, proc)
        httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/register",
            json={"email": "p@example.com", "password": "violet-kettle-harbour-93", "name": "P"},
        ).raise_for_status()
        time.sleep(1.5)
        assert _worker_pid(proc) is None
        assert not (data_dir / "outbox").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert f"data folder: {data_dir}".encode() in stderr

    # Stopped: db-url has no server to name, and says so instead of starting one.
    stopped = subprocess.run(
        [*GAMEPORTAL, "db-url"], env=_env(data_dir), capture_output=True, timeout=60
    )
    assert stopped.returncode == 1
    assert b"no gameportal server is running" in stopped.stderr
    # The other commands use the existing database.
    migrated = subprocess.run(
        [*GAMEPORTAL, "migrate"], env=_env(data_dir), capture_output=True, timeout=60
    )
    assert migrated.returncode == 0, migrated.stderr


def test_the_data_folder_is_absolute_whatever_the_working_folder(tmp_path: Path) -> None:
    from gameportal.config import Settings

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        settings = Settings(data_dir=Path("./var"))  # type: ignore[call-arg]
    finally:
        os.chdir(here)
    assert settings.data_dir == tmp_path / "var"
    assert settings.embedded_pgdata == tmp_path / "var" / "postgres"
    assert settings.media_folder == tmp_path / "var" / "media"


def test_production_requires_a_mail_server(tmp_path: Path) -> None:
    result = subprocess.run(
        [*GAMEPORTAL, "migrate"],
        env=_env(
            tmp_path,
            GAMEPORTAL_ENV="production",
            GAMEPORTAL_SECRET_KEY="a-real-production-secret-0123456789abcdef",
        ),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"GAMEPORTAL_SMTP_HOST" in result.stderr


def _sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text; 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        got = ",".join(sorted(line[len(name) + 1 : line.index("}")].split(",")))
        if got == wanted:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


HTTP_TOTAL = "gameportal_http_requests_total"


def test_metrics_add_up_across_api_processes_and_the_worker(data_dir: Path) -> None:
    port = free_port()
    token = "scraper-token-0123456789abcdef"
    proc = subprocess.Popen(
        [*GAMEPORTAL, "serve", "--port", str(port), "--workers", "2"],
        env=_env(data_dir, GAMEPORTAL_METRICS_TOKEN=token),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(port, proc)
        # New connections each time, so both API processes answer some of them.
        for _ in range(40):
            assert httpx.get(f"{base}/healthz").status_code == 200
        httpx.post(
            f"{base}/api/v1/auth/register",
            json={"email": "m@example.com", "password": "violet-kettle-harbour-93", "name": "M"},
        ).raise_for_status()
        _wait(lambda: (data_dir / "outbox").exists() and any((data_dir / "outbox").iterdir()))
        for _ in range(6):  # whichever process answers the scrape, the totals are the same
            assert httpx.get(f"{base}/metrics").status_code == 401  # the token is asked for
            scrape = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}).text
            served = _sample(
                scrape,
                "gameportal_http_requests_total",
                method="GET",
                route="/healthz",
                status="200",
            )
            assert served == 40
            # The queue worker is another process; its samples are reported too.
            sent = _sample(scrape, "gameportal_queue_processed_total", type="EMAIL", outcome="sent")
            assert sent >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
