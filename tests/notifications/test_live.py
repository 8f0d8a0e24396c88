"""Live notifications over Server-Sent Events, through a real uvicorn on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from gameportal.notifications import live
from tests.factories import bearer, register, user_with_roles
from tests.net import free_port
from tests.notifications.sse import open_stream
from tests.notifications.support import running_workers, wait_for


@pytest.fixture
async def served(app: FastAPI, database_url: str) -> AsyncIterator[str]:
    """The app on a real loopback port (streams need a real server), plus an IN_APP worker."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with running_workers(app, database_url, builtins=True):
            for _ in range(250):  # bounded: 5 s
                if server.started:
                    break
                await asyncio.sleep(0.02)
            assert server.started
            assert await app.state.inbox_hub.wait_connected(within=5)
            yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def _next_event(lines: AsyncIterator[str], within: float = 3.0) -> dict[str, str]:
    event: dict[str, str] = {}

    async def read() -> dict[str, str]:
        async for line in lines:
            if not line:
                if "data" in event:
                    return event
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            event[key] = value
        raise AssertionError("stream ended")

    return await asyncio.wait_for(read(), within)


async def test_a_delivered_message_reaches_the_stream_within_a_second(
    served: str, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await user_with_roles(client, db, "admin")
    alice = await register(client)
    async with httpx.AsyncClient(base_url=served, timeout=10) as http:
        async with http.stream(
            "GET", "/api/v1/me/notifications/stream", headers=bearer(alice)
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            started = asyncio.get_running_loop().time()
            await client.post(
                "/api/v1/admin/notifications",
                headers=bearer(admin),
                json={
                    "type": "IN_APP",
                    "recipientUserId": alice["user"]["id"],
                    "payload": {"subject": "live!"},
                },
            )
            event = await _next_event(lines, within=3)
            assert asyncio.get_running_loop().time() - started < 1.5
            assert event["event"] == "notification"
            first = json.loads(event["data"])
            assert first["subject"] == "live!" and event["id"] == first["id"]

        # Disconnected: two more arrive (one a broadcast); resuming replays both, in order.
        for subject in ("missed 1", "missed 2"):
            body = {"type": "IN_APP", "payload": {"subject": subject}}
            if subject == "missed 1":
                body["recipientUserId"] = alice["user"]["id"]
            await client.post("/api/v1/admin/notifications", headers=bearer(admin), json=body)
        for _ in range(100):
            if await db.fetchval("SELECT count(*) FROM messages WHERE status='SENT'") == 3:
                break
            await asyncio.sleep(0.05)
        async with http.stream(
            "GET",
            "/api/v1/me/notifications/stream",
            headers={**bearer(alice), "Last-Event-ID": first["id"]},
        ) as stream:
            lines = stream.aiter_lines()
            replayed = [json.loads((await _next_event(lines))["data"])["subject"] for _ in range(2)]
            assert replayed == ["missed 1", "missed 2"]


async def test_streams_need_a_live_session_and_a_sane_last_event_id(
    served: str, client: httpx.AsyncClient
) -> None:
    alice = await register(client)
    async with httpx.AsyncClient(base_url=served, timeout=10) as http:
        anonymous = await http.get("/api/v1/me/notifications/stream")
        assert anonymous.status_code == 401
        bad = await http.get(
            "/api/v1/me/notifications/stream",
            headers={**bearer(alice), "Last-Event-ID": "not-an-id"},
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "Last-Event-ID"


async def _queue(
    client: httpx.AsyncClient,
    admin: dict[str, Any],
    to: dict[str, Any],
    subject: str,
    *,
    in_seconds: float = 0,
) -> str:
    """An IN_APP message for `to` (scheduled `in_seconds` from now); its id."""
    body: dict[str, Any] = {
        "type": "IN_APP",
        "recipientUserId": to["user"]["id"],
        "payload": {"subject": subject},
    }
    if in_seconds:
        due = datetime.now(UTC) + timedelta(seconds=in_seconds)
        body["scheduledAt"] = due.isoformat().replace("+00:00", "Z")
    response = await client.post("/api/v1/admin/notifications", headers=bearer(admin), json=body)
    assert response.status_code == 201, response.text
    message_id: str = response.json()["id"]
    return message_id


async def _sent(db: asyncpg.Pool, *ids: str) -> None:
    async def all_sent() -> bool:
        n: int = await db.fetchval(
            "SELECT count(*) FROM messages WHERE id = ANY($1::uuid[]) AND status = 'SENT'",
            list(ids),
        )
        return n == len(ids)

    await wait_for(all_sent, within=10)


async def _resume(
    served: str,
    client: httpx.AsyncClient,
    admin: dict[str, Any],
    player: dict[str, Any],
    last_event_id: str,
) -> tuple[list[str], str]:
    """What a stream resumed after `last_event_id` sends: its replay, then one message
    queued once the replay is over (a marker: nothing of the replay comes after it);
    and that message's id."""
    async with (
        httpx.AsyncClient(base_url=served, timeout=10) as http,
        open_stream(http, {**bearer(player), "Last-Event-ID": last_event_id}) as resumed,
    ):
        await asyncio.sleep(0.3)  # the replay is sent by now
        marker = await _queue(client, admin, player, "marker")
        await resumed.wait(lambda s: marker in s.ids)
    return resumed.ids, marker


async def test_resuming_after_an_event_replays_a_scheduled_message_delivered_after_it(
    served: str, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # The scheduled one is made first and delivered last: in order of creation it comes
    # before the event the client resumes after, in order of delivery after it.
    admin = await user_with_roles(client, db, "admin")
    alice = await register(client)
    scheduled = await _queue(client, admin, alice, "scheduled", in_seconds=1)
    seen = await _queue(client, admin, alice, "now")
    await _sent(db, seen, scheduled)
    ids, marker = await _resume(served, client, admin, alice, seen)
    assert ids == [scheduled, marker]


async def test_resuming_after_a_late_delivered_event_does_not_resend_earlier_deliveries(
    served: str, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await user_with_roles(client, db, "admin")
    alice = await register(client)
    scheduled = await _queue(client, admin, alice, "scheduled", in_seconds=1)
    earlier = await _queue(client, admin, alice, "earlier")
    await _sent(db, earlier, scheduled)
    # Delivered a minute before the scheduled one, beyond the replay's margin.
    await db.execute(
        "UPDATE messages SET sent_at = sent_at - interval '1 minute' WHERE id = $1", earlier
    )
    ids, marker = await _resume(served, client, admin, alice, scheduled)
    assert ids == [marker]


async def test_resuming_after_a_message_recorded_late_replays_what_came_after_it(
    served: str, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # A worker that delivers during a database outage records it when the database is
    # back: the message the client names may be recorded after one it never saw.
    admin = await user_with_roles(client, db, "admin")
    alice = await register(client)
    seen = await _queue(client, admin, alice, "seen")
    await _sent(db, seen)
    missed = await _queue(client, admin, alice, "missed")
    await _sent(db, missed)
    await db.execute(
        "UPDATE messages SET sent_at = sent_at + interval '1 minute' WHERE id = $1", seen
    )
    ids, marker = await _resume(served, client, admin, alice, seen)
    assert ids == [missed, marker]


async def test_an_open_stream_catching_up_gets_a_message_made_before_it_opened(
    served: str,
    app: FastAPI,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stream that may have missed announcements (LISTEN was down) replays from the
    # table: a message made before the stream opened but delivered since is among them.
    admin = await user_with_roles(client, db, "admin")
    alice = await register(client)
    scheduled = await _queue(client, admin, alice, "scheduled", in_seconds=1)
    async with (
        httpx.AsyncClient(base_url=served, timeout=10) as http,
        open_stream(http, bearer(alice)) as stream,
    ):
        with monkeypatch.context() as deaf:
            deaf.setattr(live.Subscription, "announce", lambda self, message_id: None)
            await _sent(db, scheduled)
            await asyncio.sleep(0.3)  # its announcement, unheard, has come by now
            assert stream.ids == []
            app.state.inbox_hub._listening(True)  # LISTEN is back: every stream catches up
            await stream.wait(lambda s: len(s.ids) >= 1)  # from the table, not announced
        later = await _queue(client, admin, alice, "later")
        await stream.wait(lambda s: later in s.ids)
    assert stream.ids == [scheduled, later]


async def test_a_database_error_that_is_no_outage_ends_the_stream_and_is_logged(
    served: str,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # A client told "database" comes back and meets the same fault: unlike an outage,
    # which logs itself once, this must show in the log with its traceback.
    admin = await user_with_roles(client, db, "admin")
    alice = await register(client)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise asyncpg.exceptions.UndefinedColumnError('column "nope" does not exist')

    monkeypatch.setattr(live.service, "stream_items", broken)
    monkeypatch.setattr(live, "_failures", live._Failures())
    async with httpx.AsyncClient(base_url=served, timeout=10) as http:
        # The client comes back, and fails again: that is not logged a second time.
        for attempt in range(3):
            async with open_stream(http, bearer(alice)) as stream:
                await _queue(client, admin, alice, f"hello {attempt}")
                await stream.wait_ended()
            assert stream.clean and stream.ids == [] and stream.retries[-1] >= 2000
    failed = [line for line in capfd.readouterr().err.splitlines() if "inbox_stream_failed" in line]
    assert len(failed) == 1, failed
    assert "UndefinedColumnError" in failed[0] and alice["user"]["id"] in failed[0]
    assert '"level":"error"' in failed[0].replace(" ", "")
