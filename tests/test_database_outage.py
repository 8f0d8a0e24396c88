"""The API while its PostgreSQL is stopped: 503 problem documents with Retry-After (not 500
with a traceback per request), one log line when the outage starts and one when it ends
with the count of refused requests, and requests served again once it is back."""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import exc as sa_exc

from gameportal.app import create_app
from gameportal.kit.db_outage import RETRY_AFTER_SECONDS, database_unavailable
from tests.conftest import PLAYER_IP, make_settings
from tests.factories import bearer, register, user_with_roles
from tests.faults import StoppablePostgres


def _lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            out.append({"event": "<not json>", "text": line})
    return out


async def _until(check: Callable[[], Any], within: float = 20) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_an_outage_is_503_with_retry_after_and_two_log_lines(
    stoppable_pg: StoppablePostgres,
    stoppable_database_url: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    app = create_app(make_settings(stoppable_database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(PLAYER_IP, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            editor_pool: asyncpg.Pool = app.state.db.pool
            editor = bearer(await user_with_roles(client, editor_pool, "editor"))
            player = bearer(await register(client))
            created = await client.post(
                "/api/v1/content",
                json={"type": "NEWS", "title": "Up", "content": "x"},
                headers=editor,
            )
            assert created.status_code == 201
            capfd.readouterr()

            # The hot path (asyncpg pool, answered by hand), a public read, an ORM read
            # and an ORM write: each kind of database use.
            requests = [
                ("GET", "/api/v1/me", player, None),
                ("GET", "/api/v1/content/NEWS/nothing-here", {}, None),
                ("GET", f"/api/v1/content/{created.json()['id']}", editor, None),
                ("GET", "/api/v1/me/sessions", player, None),
                ("PATCH", "/api/v1/me", player, {"name": "Renamed"}),
            ]
            stoppable_pg.stop()
            try:
                refused = 0
                for _ in range(3):
                    for method, path, headers, body in requests:
                        response = await client.request(method, path, headers=headers, json=body)
                        assert response.status_code == 503, (path, response.text)
                        assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
                        assert response.headers["content-type"] == "application/problem+json"
                        assert response.json()["type"].endswith(":database-unavailable")
                        assert response.headers["x-request-id"]
                        refused += 1
                # Still alive, and honest about readiness.
                assert (await client.get("/healthz")).status_code == 200
                assert (await client.get("/readyz")).status_code == 503
                during = _lines(capfd.readouterr().err)
            finally:
                stoppable_pg.start()

            # Back: the probe notices within a second or so, and requests go through.
            async def ended() -> list[dict[str, Any]]:
                seen = _lines(capfd.readouterr().err)
                after.extend(seen)
                return [e for e in after if "refused_requests" in e]

            after: list[dict[str, Any]] = []
            [end] = await _until(ended)

            async def served() -> bool:
                for method, path, headers, body in requests:
                    response = await client.request(method, path, headers=headers, json=body)
                    if response.status_code not in (200, 404):
                        return False
                return True

            await _until(served)

    # One line per outage, not a traceback per request. (Other parts, such as the LISTEN
    # connection, may say their own piece once.)
    starts = [e for e in during if "answering 503" in e.get("action", "")]
    assert len(starts) == 1, during
    assert starts[0]["event"] == "database_unavailable"
    assert starts[0]["level"] == "warning"
    assert "Connect" in starts[0]["error"] or "connection" in starts[0]["error"].lower()
    assert len(during) <= 3, during
    assert not [e for e in during if "exception" in e or e["event"] == "unhandled_error"]
    assert end["level"] == "warning"
    assert "request_id" not in end  # the outage's line, not the first refused request's
    assert end["refused_requests"] == refused == 15
    assert end["event"] == "database_available"
    assert end["outage_s"] > 0
    assert not [e for e in after if "exception" in e or e["event"] == "unhandled_error"]


# --- which errors mean an outage -----------------------------------------------------------


async def test_connection_level_errors_are_told_from_the_requests_own(
    stoppable_pg: StoppablePostgres,
) -> None:
    async def raised(coro: Any) -> BaseException:
        try:
            await coro
        except BaseException as exc:
            return exc
        raise AssertionError("no error")

    # Refused: the server is down (asyncpg directly, and through SQLAlchemy's engine).
    stoppable_pg.stop()
    try:
        refused = await raised(asyncpg.connect(stoppable_pg.url))
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(stoppable_pg.url.replace("postgresql:", "postgresql+asyncpg:"))

        async def via_orm() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        through_orm = await raised(via_orm())
        await engine.dispose()
    finally:
        stoppable_pg.start()
    assert database_unavailable(refused)
    assert database_unavailable(through_orm)

    # A connection the server ends (a restart), seen by the driver and through SQLAlchemy.
    conn = await asyncpg.connect(stoppable_pg.url)
    admin = await asyncpg.connect(stoppable_pg.url)
    await admin.execute(
        "SELECT pg_terminate_backend($1)", await conn.fetchval("SELECT pg_backend_pid()")
    )
    await admin.close()
    # Wait for the driver to read the server's goodbye: a query sent while it is still
    # reading it fails with asyncpg's own state error instead (seen once in CI's run).
    for _ in range(250):
        if conn.is_closed():
            break
        await asyncio.sleep(0.02)
    ended = await raised(conn.fetchval("SELECT 1"))
    assert database_unavailable(ended), repr(ended)
    wrapped = sa_exc.OperationalError("SELECT 1", None, ended)  # type: ignore[arg-type]
    wrapped.__cause__ = ended
    assert database_unavailable(wrapped)

    # Shutting down, starting up (CannotConnectNow), too many connections: outages.
    for error in (
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        sa_exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
    ):
        assert database_unavailable(error), error

    # The request's own: a statement timeout, a constraint, misuse of a connection.
    conn = await asyncpg.connect(stoppable_pg.url)
    try:
        cancelled = await raised(conn.execute("SET statement_timeout = 10; SELECT pg_sleep(1)"))
        unique = await raised(conn.execute("SELECT 1/0"))
    finally:
        await conn.close()
    assert isinstance(cancelled, asyncpg.QueryCanceledError)
    assert not database_unavailable(cancelled)
    assert not database_unavailable(unique)
    assert not database_unavailable(asyncpg.InterfaceError("another operation is in progress"))
    # Sockets and files that are not the database's: a full disk, another service refusing.
    assert not database_unavailable(OSError(errno.ENOSPC, "No space left on device"))
    assert not database_unavailable(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    with socket.socket() as s:
        port = s.bind(("127.0.0.1", 0)) or s.getsockname()[1]
    elsewhere = await raised(asyncio.open_connection("127.0.0.1", port))
    assert isinstance(elsewhere, ConnectionRefusedError)
    assert not database_unavailable(elsewhere)
    assert not database_unavailable(TimeoutError())


async def test_an_api_process_started_during_an_outage_waits_for_the_database(
    stoppable_pg: StoppablePostgres,
    stoppable_database_url: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # It exited at once ("Application startup failed"), and under `serve` an API process
    # that exits stops the queue worker too: a database restart while `serve` started
    # stopped the whole portal (seen in CI when the API took longer to start than the
    # worker).
    app = create_app(make_settings(stoppable_database_url, startup_database_wait_seconds=30))
    stoppable_pg.stop()
    capfd.readouterr()
    try:
        lifespan = app.router.lifespan_context(app)
        starting = asyncio.create_task(lifespan.__aenter__())
        await asyncio.sleep(1.5)
        assert not starting.done()
    finally:
        stoppable_pg.start()
    await asyncio.wait_for(starting, 30)
    try:
        transport = httpx.ASGITransport(app=app, client=(PLAYER_IP, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await lifespan.__aexit__(None, None, None)
    events = [line.get("event") for line in _lines(capfd.readouterr().err)]
    assert events.count("database_unavailable_at_start") == 1


async def test_an_api_process_gives_up_on_the_database_after_its_wait(
    stoppable_pg: StoppablePostgres, stoppable_database_url: str
) -> None:
    app = create_app(make_settings(stoppable_database_url, startup_database_wait_seconds=1))
    stoppable_pg.stop()
    try:
        started = time.monotonic()
        with pytest.raises(OSError):
            async with app.router.lifespan_context(app):
                pass
        assert time.monotonic() - started < 10
    finally:
        stoppable_pg.start()
