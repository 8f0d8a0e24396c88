"""Live notification streams through database outages, shutdowns and ended sessions:
real uvicorn servers on loopback, a PostgreSQL the tests stop and start, and a real
`gameportal serve` process for SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.app import create_app
from gameportal.notifications import live
from tests.conftest import PLAYER_IP, make_settings
from tests.factories import STRONG_PASSWORD, bearer, login, register, user_with_roles
from tests.faults import StoppablePostgres
from tests.net import free_port
from tests.notifications.sse import STREAM, SseStream, open_stream, served
from tests.notifications.support import running_workers, wait_for


@asynccontextmanager
async def _portal(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, str]]:
    """An app on `database_url` with its lifespan, an in-process client for setting up,
    and the same app on a loopback port for streams."""
    app = create_app(make_settings(database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(PLAYER_IP, 40000))
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
            served(app) as base,
        ):
            assert await app.state.inbox_hub.wait_connected(within=5)
            yield app, client, base


async def _notify(
    client: httpx.AsyncClient,
    admin: dict[str, Any],
    to: dict[str, Any],
    subject: str,
    scheduled_at: datetime | None = None,
) -> str:
    """Queue an IN_APP message for `to`; its id. Just after the database comes back, the
    app's pooled connections may still be the dead ones (answered 5xx, nothing written):
    try again, as a client would."""
    body: dict[str, Any] = {
        "type": "IN_APP",
        "recipientUserId": to["user"]["id"],
        "payload": {"subject": subject},
    }
    if scheduled_at is not None:
        body["scheduledAt"] = scheduled_at.isoformat().replace("+00:00", "Z")
    for _ in range(100):
        response = await client.post(
            "/api/v1/admin/notifications", headers=bearer(admin), json=body
        )
        if response.status_code == 201:
            message_id: str = response.json()["id"]
            return message_id
        assert response.status_code >= 500, response.text
        await asyncio.sleep(0.05)
    raise AssertionError("the admin API did not recover")


async def _wait_listening(app: FastAPI, connected: bool, within: float = 10) -> None:
    async def reached() -> bool:
        return bool(app.state.inbox_hub.listener.connected is connected)

    await wait_for(reached, within=within)


async def test_messages_around_an_outage_reach_open_and_resuming_streams_once(
    stoppable_pg: StoppablePostgres, stoppable_database_url: str
) -> None:
    async with _portal(stoppable_database_url) as (app, client, base):
        pool: asyncpg.Pool = app.state.db.pool
        admin = await user_with_roles(client, pool, "admin")
        alice = await register(client)
        async with (
            httpx.AsyncClient(base_url=base, timeout=10) as http,
            open_stream(http, bearer(alice)) as across,  # stays open through the outage
        ):
            async with running_workers(app, stoppable_database_url, builtins=True):
                first = await _notify(client, admin, alice, "before")
                await across.wait(lambda s: len(s.ids) == 1)
                # Due while the database is away: delivered once it is back.
                due = datetime.now(UTC) + timedelta(seconds=0.5)
                expected = [await _notify(client, admin, alice, f"due {i}", due) for i in range(3)]
            # The worker's own outage handling is not what this test is about: it stops
            # before the outage and a new one starts after.

            stoppable_pg.stop()
            try:
                await _wait_listening(app, connected=False)
                await asyncio.sleep(1.5)  # an outage, not a blip: LISTEN retries meanwhile
                during = await http.get(STREAM, headers={**bearer(alice), "Last-Event-ID": first})
                ready_during = await http.get("/readyz")
            finally:
                stoppable_pg.start()

            # Right after the restart, before LISTEN is necessarily back.
            expected += [await _notify(client, admin, alice, f"after {i}") for i in range(3)]
            ready_seen_while_deaf = False
            async with running_workers(app, stoppable_database_url, builtins=True):
                while not app.state.inbox_hub.listener.connected:
                    if (await http.get("/readyz")).status_code == 200:
                        ready_seen_while_deaf = True
                    await asyncio.sleep(0.02)
                expected += [await _notify(client, admin, alice, f"later {i}") for i in range(3)]

                async def delivered() -> bool:
                    n: int = await pool.fetchval(
                        "SELECT count(*) FROM messages WHERE status = 'SENT'"
                    )
                    return n == 10

                await wait_for(delivered, within=15)
                with_gap_closed = asyncio.get_running_loop().time() + 3
                while asyncio.get_running_loop().time() < with_gap_closed:
                    if len(across.ids) >= 10 or across.ended.is_set():
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)  # anything sent twice would be here by now
                async with open_stream(http, {**bearer(alice), "Last-Event-ID": first}) as resumed:
                    await resumed.wait(lambda s: len(s.ids) >= 9)
                    await asyncio.sleep(0.3)
                    across_still_open = not across.ended.is_set()
                delivery_order = [
                    str(r["id"])
                    for r in await pool.fetch(
                        "SELECT id FROM messages WHERE id = ANY($1::uuid[]) ORDER BY sent_at, id",
                        expected,
                    )
                ]

    lost = [i for i in expected if i not in across.ids]
    assert not lost, f"the open stream lost {len(lost)} of {len(expected)}: {across.subjects}"
    assert len(across.ids) == len(set(across.ids)), f"sent twice: {across.subjects}"
    assert sorted(across.ids) == sorted([first, *expected])
    assert across_still_open
    assert resumed.ids == delivery_order  # in order of delivery, each once
    assert sorted(delivery_order) == sorted(expected)
    assert during.status_code == 503, during.text
    assert during.headers["content-type"] == "application/problem+json"
    assert int(during.headers["retry-after"]) >= 1
    assert ready_during.status_code == 503
    assert not ready_seen_while_deaf, "/readyz was green while LISTEN was down"


async def test_a_stream_that_loses_the_database_ends_cleanly_with_a_retry_hint(
    stoppable_pg: StoppablePostgres,
    stoppable_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "HEARTBEAT_SECONDS", 0.3)
    async with _portal(stoppable_database_url) as (_app, client, base):
        alice = await register(client)
        async with (
            httpx.AsyncClient(base_url=base, timeout=10) as http,
            open_stream(http, bearer(alice)) as stream,
        ):
            await stream.wait(lambda s: len(s.retries) == 1)  # the greeting's retry: 3000
            stoppable_pg.kill()  # as a crash
            try:
                took = await stream.wait_ended(within=5)
            finally:
                stoppable_pg.start()
    assert stream.clean, stream.error
    assert len(stream.retries) == 2 and stream.retries[-1] >= 1000
    assert took < 2


# --- sessions that end end their streams ----------------------------------------------------


async def test_ending_a_session_ends_its_streams_within_a_second_in_every_process(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    """Logout through one API process ends the stream another process serves."""
    other = create_app(make_settings(database_url))
    admin = await user_with_roles(client, db, "admin")
    alice = await register(client)
    phone = await login(client, alice["user"]["email"])
    async with (
        other.router.lifespan_context(other),
        served(app) as here,
        served(other) as there,
        running_workers(app, database_url, builtins=True),
    ):
        assert await other.state.inbox_hub.wait_connected(within=5)
        async with (
            httpx.AsyncClient(base_url=here, timeout=10) as http_here,
            httpx.AsyncClient(base_url=there, timeout=10) as http_there,
            open_stream(http_there, bearer(alice)) as ended,
            open_stream(http_here, bearer(phone)) as kept,
        ):
            await _notify(client, admin, alice, "before")
            await ended.wait(lambda s: len(s.ids) == 1)
            await kept.wait(lambda s: len(s.ids) == 1)

            response = await client.post("/api/v1/auth/logout", headers=bearer(alice))
            assert response.status_code == 204
            # Messages keep coming: a stream of an ended session must not carry them.
            await _notify(client, admin, alice, "after")
            took = await ended.wait_ended(within=1.0)
            await kept.wait(lambda s: len(s.ids) == 2)
            kept_open = not kept.ended.is_set()
    assert ended.clean and took < 1.0
    assert ended.subjects == ["before"]
    assert kept_open


async def _end_by_logout(c: httpx.AsyncClient, me: dict[str, Any], **_: Any) -> None:
    assert (await c.post("/api/v1/auth/logout", headers=bearer(me))).status_code == 204


async def _end_by_revoking_it(
    c: httpx.AsyncClient, me: dict[str, Any], other: dict[str, Any], **_: Any
) -> None:
    session_id = me["session"]["id"]
    response = await c.delete(f"/api/v1/me/sessions/{session_id}", headers=bearer(other))
    assert response.status_code == 204


async def _end_by_revoking_all_others(
    c: httpx.AsyncClient, other: dict[str, Any], **_: Any
) -> None:
    response = await c.delete("/api/v1/me/sessions", headers=bearer(other))
    assert response.status_code == 200 and response.json()["ended"] >= 1


async def _end_by_password_change(c: httpx.AsyncClient, other: dict[str, Any], **_: Any) -> None:
    response = await c.post(
        "/api/v1/me/password",
        headers=bearer(other),
        json={"currentPassword": STRONG_PASSWORD, "newPassword": "amber-lantern-orchard-71"},
    )
    assert response.status_code == 200, response.text


async def _end_by_blocking(
    c: httpx.AsyncClient, me: dict[str, Any], admin: dict[str, Any], **_: Any
) -> None:
    response = await c.patch(
        f"/api/v1/admin/users/{me['user']['id']}", headers=bearer(admin), json={"isBlocked": True}
    )
    assert response.status_code == 200, response.text


async def _end_by_admin_revoking_all(
    c: httpx.AsyncClient, me: dict[str, Any], admin: dict[str, Any], **_: Any
) -> None:
    response = await c.delete(
        f"/api/v1/admin/users/{me['user']['id']}/sessions", headers=bearer(admin)
    )
    assert response.status_code == 200, response.text


async def _end_by_erasure(c: httpx.AsyncClient, me: dict[str, Any], **_: Any) -> None:
    # The sessions are deleted with the account, not revoked: announced all the same.
    response = await c.request(
        "DELETE", "/api/v1/me", headers=bearer(me), json={"password": STRONG_PASSWORD}
    )
    assert response.status_code == 204, response.text


@pytest.mark.parametrize(
    "end",
    [
        _end_by_logout,
        _end_by_revoking_it,
        _end_by_revoking_all_others,
        _end_by_password_change,
        _end_by_blocking,
        _end_by_admin_revoking_all,
        _end_by_erasure,
    ],
)
async def test_every_way_a_session_ends_ends_its_stream_within_a_second(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, end: Any
) -> None:
    admin = await user_with_roles(client, db, "admin")
    me = await register(client)
    other = await login(client, me["user"]["email"])  # the same player on another device
    async with (
        served(app) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
        open_stream(http, bearer(me)) as stream,
    ):
        await stream.wait(lambda s: len(s.retries) == 1)
        await end(client, me=me, other=other, admin=admin)
        took = await stream.wait_ended(within=1.0)
    assert stream.clean and took < 1.0
    assert stream.ids == []


# --- shutdown ---------------------------------------------------------------------------------


def _serve_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEPORTAL_")}
    env.update(
        GAMEPORTAL_DATABASE_URL=database_url,
        GAMEPORTAL_DATA_DIR=os.path.join(os.environ["TMPDIR"], f"serve-{free_port()}"),
        GAMEPORTAL_LOG_LEVEL="WARNING",
    )
    return env


async def test_sigterm_with_open_streams_closes_them_and_exits_at_once(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "gameportal.cli", "serve", "--port", str(port), "--no-worker"],
            env=_serve_env(database_url),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=out,
        )
    try:
        # A long read timeout: streams must end because the server ends them.
        async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=60)) as http:
            deadline = time.monotonic() + 60
            while True:
                assert proc.returncode is None, log.read_text()
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "serve did not become ready"
                await asyncio.sleep(0.1)
            player = await register(http)
            async with (
                open_stream(http, bearer(player)) as s1,
                open_stream(http, bearer(player)) as s2,
                open_stream(http, bearer(player)) as s3,
            ):
                streams: list[SseStream] = [s1, s2, s3]
                for stream in streams:
                    await stream.wait(lambda s: len(s.retries) == 1)
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                rc = await asyncio.wait_for(proc.wait(), 15)
                exited = time.monotonic() - started
                for stream in streams:
                    await stream.wait_ended(within=2)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert rc == 0, log.read_text()
    assert exited < 5, f"took {exited:.1f} s to exit"
    for stream in streams:
        assert stream.clean, stream.error
        assert len(stream.retries) == 2  # the greeting's, and the hint to go elsewhere
    assert "Traceback" not in log.read_text()
