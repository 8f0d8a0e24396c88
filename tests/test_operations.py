import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from gameportal.app import create_app
from tests.conftest import METRICS_AUTH, make_settings, with_database
from tests.factories import bearer, register


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_migration_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces"
    assert len(generated.headers["x-request-id"]) == 32


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/admin/users/00000000-0000-0000-0000-000000000000")
    text = (await client.get("/metrics", headers=METRICS_AUTH)).text
    assert 'route="/api/v1/admin/users/{user_id}"' in text
    assert "gameportal_http_request_duration_seconds_bucket" in text
    assert "gameportal_logins_total" in text or "gameportal_registrations_total" in text


async def test_openapi_documents_problems_and_auth(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "Problem" in spec["components"]["schemas"]
    assert "AccessToken" in spec["components"]["securitySchemes"]
    login = spec["paths"]["/api/v1/auth/login"]["post"]
    assert {"401", "422", "429"} <= set(login["responses"])
    assert "passwordHash" not in str(spec) and "password_hash" not in str(spec)


@pytest.mark.parametrize("settings_overrides", [{"cors_origins": ["https://play.example.com"]}])
async def test_cors_allows_only_configured_origins(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/api/v1/me",
        headers={
            "Origin": "https://play.example.com",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://play.example.com"
    other = await client.get("/healthz", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("settings_overrides", [{"log_level": "INFO"}])
async def test_logs_never_carry_passwords_or_tokens(
    client: httpx.AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    data = await register(client, password="secret-lantern-ocean-77")
    await client.post(
        "/api/v1/auth/login",
        json={"email": data["user"]["email"], "password": "wrong-lantern-ocean"},
    )
    fresh = (
        await client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    ).json()
    await client.post(  # replayed from another device: reuse, logged
        "/api/v1/auth/refresh",
        json={"refreshToken": data["refreshToken"]},
        headers={"User-Agent": "another device"},
    )
    await client.get("/api/v1/me", headers=bearer(fresh))
    out, err = capfd.readouterr()
    logs = out + err
    assert "refresh_token_reuse" in logs and '"route":"/api/v1/auth/login"' in logs
    for secret in (
        "secret-lantern-ocean-77",
        "wrong-lantern-ocean",
        data["refreshToken"],
        fresh["refreshToken"],
        fresh["accessToken"],
        data["accessToken"],
    ):
        assert secret not in logs  # ...without the secrets


async def test_made_up_methods_do_not_mint_metric_series(client: httpx.AsyncClient) -> None:
    for n in range(3):
        response = await client.request(f"BOGUS{n}", "/healthz")
        assert response.status_code == 405
    text = (await client.get("/metrics", headers=METRICS_AUTH)).text
    assert "BOGUS" not in text
    assert 'method="OTHER",route="/healthz",status="405"' in text


async def test_readyz_is_503_until_migrations_are_applied(server_url: str) -> None:
    name = f"gp_unmigrated_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        app = create_app(make_settings(with_database(server_url, name)))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                response = await c.get("/readyz")
                assert (await c.get("/healthz")).status_code == 200  # alive, not ready
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert "gameportal migrate" in response.json()["detail"]
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_docs_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


# --- metrics across processes (PROMETHEUS_MULTIPROC_DIR) ----------------------------------

_WRITER = """
import sys
from gameportal.observability import record_request
from gameportal.notifications.metrics import DEPTH, PROCESSED
requests, depth = int(sys.argv[1]), float(sys.argv[2])
for _ in range(requests):
    record_request("GET", "/healthz", 200, 0.003)
PROCESSED.labels("EMAIL", "sent").inc(requests)
DEPTH.labels("EMAIL", "PENDING").set(depth)
"""

_SCRAPER = """
import sys
from gameportal.observability import latest_metrics, multiprocess_dir
assert multiprocess_dir() is not None
sys.stdout.write(latest_metrics().decode())
"""


def _in_process(code: str, folder: Path | None, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    if folder is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _value(scrape: str, prefix: str) -> float:
    lines = [line for line in scrape.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, (prefix, lines)
    return float(lines[0].rsplit(" ", 1)[1])


def test_metrics_of_several_processes_add_up(tmp_path: Path) -> None:
    _in_process(_WRITER, tmp_path, "3", "7")
    _in_process(_WRITER, tmp_path, "5", "2")  # the newer reading of the queue's depth
    scrape = _in_process(_SCRAPER, tmp_path)
    assert (
        _value(
            scrape,
            'gameportal_http_requests_total{method="GET",route="/healthz",status="200"}',
        )
        == 8
    )
    assert (
        _value(
            scrape, 'gameportal_http_request_duration_seconds_count{method="GET",route="/healthz"}'
        )
        == 8
    )
    assert (
        _value(
            scrape,
            'gameportal_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"}',
        )
        == 8
    )
    assert _value(scrape, 'gameportal_queue_processed_total{outcome="sent",type="EMAIL"}') == 8
    # One series, the most recent value: not a sum or maximum of stale readings.
    assert _value(scrape, 'gameportal_queue_depth{status="PENDING",type="EMAIL"}') == 2


def test_one_process_keeps_its_metrics_in_memory() -> None:
    code = "from gameportal.observability import multiprocess_dir; print(multiprocess_dir())"
    assert _in_process(code, None).strip() == "None"


def test_a_scrape_in_multiprocess_mode_refreshes_the_depth_first(tmp_path: Path) -> None:
    # The app's /metrics in a process writing to the folder, as each `serve` worker is.
    code = """
import asyncio
from gameportal.notifications.metrics import DEPTH
from gameportal.observability import metrics_endpoint, refresh_on_scrape

async def refresher(app):
    DEPTH.labels("PUSH", "PENDING").set(4)

class Request:  # what metrics_endpoint reads of one
    class app:
        class state:
            class settings:
                metrics_token = "scraper-token-0123456789"
    headers = {"authorization": "Bearer scraper-token-0123456789"}

refresh_on_scrape(refresher)
print(asyncio.run(metrics_endpoint(Request())).body.decode())
"""
    _in_process(_WRITER, tmp_path, "1", "9")
    scrape = _in_process(code, tmp_path)
    assert _value(scrape, 'gameportal_queue_depth{status="PENDING",type="PUSH"}') == 4
    assert _value(scrape, 'gameportal_queue_depth{status="PENDING",type="EMAIL"}') == 9
    assert "gameportal_http_requests_total" in scrape


_FORKER = """
import os
from prometheus_client import values
from gameportal.observability import record_request
assert values.ValueClass._cached_process_id  # the process id is not asked per increment
record_request("GET", "/healthz", 200, 0.003)
child = os.fork()
if child == 0:
    record_request("GET", "/healthz", 200, 0.003)
    record_request("GET", "/healthz", 200, 0.003)
    os._exit(0)
os.waitpid(child, 0)
record_request("GET", "/healthz", 200, 0.003)
"""


def test_a_forked_process_keeps_its_metrics_apart(tmp_path: Path) -> None:
    # The process id is cached: a child must still see that it forked and write files
    # of its own, or it and its parent overwrite each other's counts.
    _in_process(_FORKER, tmp_path)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2
    scrape = _in_process(_SCRAPER, tmp_path)
    requests = 'gameportal_http_requests_total{method="GET",route="/healthz",status="200"}'
    assert _value(scrape, requests) == 4
