"""Fixtures for tests in a real browser: Playwright driving Debian's Chromium against the
app served on a loopback port, as a player's or an operator's browser would see it.

What a browser test can ask for (every fixture is per test unless noted):

- `chromium` (per test process): the browser, launched once from /usr/bin/chromium
  (GAMEPORTAL_TEST_CHROMIUM to use another) with `--no-sandbox`; never downloaded. When
  it cannot start the tests are skipped on a developer's machine and FAIL in CI (CI=true):
  `.ci/run` installs it (`apt-get install chromium`).
- `new_context(**options)`: a fresh browser profile (cookies, storage, service workers),
  closed after the test; options are Playwright's `new_context` ones. Every page opened
  in it records its console errors and uncaught exceptions: `page_errors(page)`.
- `screenshot(page, label)`: a PNG under the artifacts folder (`$ARTIFACTS_DIR/browser`,
  else tests/artifacts/browser; gitignored), named after the test; look at them.
- `live_server`: the app (`create_app` with the test's settings) under uvicorn on
  127.0.0.1; `.url`, `.stop()`, `.start()` and `.restart()` (a new app on the same port:
  what a browser sees when the server restarts). Its settings are `settings_overrides`
  below, so the `app`/`client` fixtures of tests/conftest.py are a second instance on
  the same database (an admin can act through it while the live server is down).
- `second_origin`: a StaticSite (tests/browser/site.py) on another loopback port, listed
  in GAMEPORTAL_CORS_ORIGINS: serve a test page there with `.add(path, html)`.
  `.cross_site_url` reaches it as http://localhost:<port>, another site, not listed.
- `mailbox`: aiosmtpd on loopback, the app's SMTP server (`.find(to, subject)`).
- `queue_worker`: a worker (IN_APP, EMAIL, media processing) on a pool of its own, so it
  keeps working across `live_server.restart()`.
- `api`: an httpx client on the live server (admin set-up calls), `db`: asyncpg.

A module changes the settings by overriding `browser_settings` (a dict merged last).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, suppress
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from gameportal.app import create_app
from gameportal.config import Settings
from gameportal.db import Database, plain_url
from gameportal.notifications.vapid import generate_keys
from tests.browser.site import Mailbox, StaticSite
from tests.conftest import make_settings
from tests.net import free_port

CHROMIUM = os.environ.get("GAMEPORTAL_TEST_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR") or ROOT / "tests" / "artifacts") / "browser"
_CHROMIUM_FOUND = Path(CHROMIUM).exists()
VAPID = generate_keys()

# Every browser test is marked, so `-m browser` (or `-m "not browser"`) selects them.
_HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: runs in a real browser (tests/browser)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def _unavailable(reason: str) -> None:
    """No browser: a failure in CI, where .ci/run installs it; a skip elsewhere."""
    message = f"{reason} (apt-get install chromium; Playwright is in the test extra)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


# --- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed")
    if not _CHROMIUM_FOUND:
        _unavailable(f"no Chromium at {CHROMIUM}")
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"], timeout=60_000
            )
        except Exception as exc:
            _unavailable(f"Chromium at {CHROMIUM} did not start: {exc}")
        try:
            yield browser
        finally:
            await browser.close()


_ERRORS: dict[int, list[str]] = {}


def page_errors(page: Any) -> list[str]:
    """The console errors and uncaught exceptions of a page opened by `new_context`."""
    return _ERRORS.setdefault(id(page), [])


def _watch(page: Any) -> None:
    errors = page_errors(page)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))


async def scripts_ran(page: Any) -> None:
    """Waits until the current page's scripts have run and put their handlers in place.

    A heading is visible as soon as the HTML is parsed; deferred and module scripts run
    after that, so an event a test sends in between is lost (a person is never that fast).
    """
    await page.wait_for_load_state("load")


NewContext = Callable[..., Awaitable[Any]]


@pytest.fixture
async def new_context(chromium: Any) -> AsyncIterator[NewContext]:
    contexts: list[Any] = []

    async def make(**options: Any) -> Any:
        context = await chromium.new_context(**options)
        context.set_default_timeout(10_000)
        context.on("page", _watch)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        with suppress(Exception):
            await context.close()


Screenshot = Callable[..., Awaitable[Path]]


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Screenshot:
    test = re.sub(r"[^\w.-]+", "_", request.node.name)[:80]

    async def take(page: Any, label: str, *, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{test}-{label}.png"
        await page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


# --- the servers beside the app -------------------------------------------------------------


@pytest.fixture
def second_origin() -> Iterator[StaticSite]:
    site = StaticSite().start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox().start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def live_port() -> int:
    return free_port()


@pytest.fixture
def browser_settings() -> dict[str, object]:
    """Override in a module to change the app's settings for its browser tests."""
    return {}


@pytest.fixture
def settings_overrides(
    live_port: int,
    second_origin: StaticSite,
    mailbox: Mailbox,
    tmp_path: Path,
    browser_settings: dict[str, object],
) -> dict[str, object]:
    """The app as a browser reaches it: its public URL on the live port, the second origin
    allowed (CORS with credentials, browser session mode), mail to the mailbox, Web Push
    configured. Also the settings of tests/conftest.py's `app` (a second instance)."""
    return {
        "public_base_url": f"http://127.0.0.1:{live_port}",
        "cors_origins": [second_origin.url],
        "smtp_host": "127.0.0.1",
        "smtp_port": mailbox.port,
        "media_dir": tmp_path / "media",
        "vapid_private_key": VAPID.private_key,
        "log_json": True,
        **browser_settings,
    }


class LiveServer:
    """The app under uvicorn on 127.0.0.1:`port`, with its lifespan; restartable."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.app: FastAPI | None = None
        self._stack: AsyncExitStack | None = None
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        assert self._stack is None, "already running"
        stack = AsyncExitStack()
        app = create_app(self.settings)
        await stack.enter_async_context(app.router.lifespan_context(app))
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                lifespan="off",
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=2,
            )
        )
        serving = asyncio.create_task(server.serve())
        for _ in range(500):  # bounded: 10 s
            if server.started or serving.done():
                break
            await asyncio.sleep(0.02)
        if not server.started:
            await stack.aclose()
            raise AssertionError(f"uvicorn did not start on {self.url}")
        assert await app.state.inbox_hub.wait_connected(within=5)
        self.app, self._stack, self._server, self._serving = app, stack, server, serving

    async def stop(self) -> None:
        """As `gameportal serve` on SIGTERM: live streams end (their clients reconnect),
        then the server and the app's lifespan."""
        if self._stack is None:
            return
        assert self.app is not None and self._server is not None and self._serving is not None
        self.app.state.inbox_hub.shut_down()
        self._server.should_exit = True
        await self._serving
        await self._stack.aclose()
        self.app = self._stack = self._server = self._serving = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@pytest.fixture
async def live_server(
    database_url: str, settings_overrides: dict[str, object], live_port: int
) -> AsyncIterator[LiveServer]:
    server = LiveServer(make_settings(database_url, **settings_overrides), live_port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def api(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the live server, for set-up the test does as an admin."""
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as client:
        yield client


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:  # type: ignore[override]
    pool = await asyncpg.create_pool(plain_url(database_url), min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def queue_worker(live_server: LiveServer, database_url: str) -> AsyncIterator[None]:
    """What `gameportal worker` does for these tests (IN_APP, EMAIL, media processing),
    tuned to react at once, on a pool of its own."""
    from gameportal.content.tasks import register_content_tasks
    from gameportal.notifications.channels import register_builtin_handlers
    from gameportal.notifications.registry import (
        close_handlers,
        unregister_handler,
        unregister_periodic,
    )
    from gameportal.notifications.worker import Worker, WorkerConfig

    settings = live_server.settings
    register_builtin_handlers(settings)
    register_content_tasks(settings)
    database = await Database.connect(settings)
    worker = Worker(
        database.pool,
        plain_url(database_url),
        WorkerConfig(
            types=["IN_APP", "EMAIL", "MEDIA_PROCESSING"],
            poll_interval=0.2,
            retry_base_seconds=0.05,
            reap_interval=0.3,
            shutdown_grace=2,
        ),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await running
        await close_handlers()
        for message_type in ("IN_APP", "EMAIL", "PUSH", "MEDIA_PROCESSING"):
            unregister_handler(message_type)
        unregister_periodic("content.publish_due")
        unregister_periodic("media.abandoned_uploads")
        await database.close()
