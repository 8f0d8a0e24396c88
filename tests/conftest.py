"""Test harness: real PostgreSQL, a migrated template database per xdist worker, and a fresh
copy of it for every test, so tests are isolated and may use real concurrency.

The server is TEST_DATABASE_URL when set, otherwise an embedded one started here. When
neither can be had the tests error out: they never skip for want of a database.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from gameportal.app import create_app
from gameportal.config import Settings
from gameportal.db import EmbeddedPostgres, plain_url
from gameportal.migrations import upgrade
from tests.faults import StoppablePostgres

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_counter = itertools.count()

# Everything a test run puts in the temporary folder (database clusters, media, outbox
# mail, pytest's tmp_path, the S3 server's sockets, the servers the CLI tests start) goes
# into one folder per process, removed when the run ends: runs leave nothing behind.
# Set before anything asks for the temporary folder; subprocesses inherit it.
# Short, since PostgreSQL puts its socket under it and socket paths have a small limit.
TMP_ROOT = Path(tempfile.mkdtemp(prefix=f"gp-{WORKER}-"))
os.environ["TMPDIR"] = tempfile.tempdir = str(TMP_ROOT)
(TMP_ROOT / "run").mkdir(mode=0o700)
os.environ["XDG_RUNTIME_DIR"] = str(TMP_ROOT / "run")
os.environ["GAMEPORTAL_DATA_DIR"] = str(TMP_ROOT / "var")
# Hypothesis (under schemathesis) keeps its files here rather than in ./.hypothesis.
os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = str(TMP_ROOT / "hypothesis")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(TMP_ROOT, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    return make_url(plain_url(url)).set(database=name).render_as_string(hide_password=False)


def _run(coro_factory):  # type: ignore[no-untyped-def]
    """Run a coroutine to completion outside pytest's event loop (alembic starts its own)."""
    result: list[object] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro_factory()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0] if result else None


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield plain_url(given)
        return
    server = EmbeddedPostgres(TMP_ROOT / "pgdata")
    url = server.start()  # raises, failing the run, when no server can start
    try:
        yield plain_url(url)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    name = f"gp_tpl_{WORKER}_{os.getpid()}"

    async def create() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    _run(create)
    _run(lambda: asyncio.to_thread(upgrade, with_database(server_url, name)))
    yield name

    async def drop() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    _run(drop)


@pytest.fixture
async def database_url(server_url: str, template_db: str) -> AsyncIterator[str]:
    name = f"gp_t_{WORKER}_{os.getpid()}_{next(_counter)}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    finally:
        await conn.close()
    yield with_database(server_url, name)
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# /metrics asks for a bearer token (GAMEPORTAL_METRICS_TOKEN); the tests' apps have this one.
METRICS_TOKEN = "test-metrics-token-0123456789"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "database_url": database_url,
        "secret_key": "test-secret-key-0123456789abcdef0123456789",
        # Every test's players register from one address; the registration throttle's own
        # tests (tests/identity/test_registration_throttle.py) set the limit they check.
        "registration_max_per_ip": 10_000,
        "metrics_token": METRICS_TOKEN,
        "db_pool_size": 20,
        "log_json": True,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Override in a test module to run the app with other settings."""
    return {}


@pytest.fixture
async def app(database_url: str, settings_overrides: dict[str, object]) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(database_url, **settings_overrides))
    async with application.router.lifespan_context(application):
        yield application


PLAYER_IP = "8.8.8.8"  # a public address, so country lookup has something to find


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(PLAYER_IP, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def db(app: FastAPI) -> asyncpg.Pool:
    """The app's own pool, for setting up state no API exposes and for checking writes."""
    pool: asyncpg.Pool = app.state.db.pool
    return pool


@pytest.fixture(scope="module")
def stoppable_pg() -> Iterator[StoppablePostgres]:
    """A private PostgreSQL server for outage tests (see tests/faults.py), started; a test
    that stops it must start it again before it ends (`try/finally`)."""
    server = StoppablePostgres()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def stoppable_database_url(stoppable_pg: StoppablePostgres) -> str:
    """A fresh migrated database on the stoppable server."""
    if not stoppable_pg.running():
        stoppable_pg.start()
    return stoppable_pg.create_database(f"gp_f_{WORKER}_{os.getpid()}_{next(_counter)}")
