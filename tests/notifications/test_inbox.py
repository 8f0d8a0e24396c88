"""The in-app inbox, end to end: an operator queues, the built-in IN_APP handler delivers
through a real worker, the player reads through the API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.db import plain_url
from gameportal.notifications.channels.in_app import INBOX_CHANNEL
from gameportal.notifications.worker import Worker
from tests.factories import bearer, register, user_with_roles
from tests.notifications.support import running_workers, settled

ADMIN_URL = "/api/v1/admin/notifications"
INBOX = "/api/v1/me/notifications"


@pytest.fixture
async def in_app_worker(app: FastAPI, database_url: str) -> AsyncIterator[Worker]:
    async with running_workers(app, database_url, builtins=True) as [worker]:
        yield worker


async def test_inbox_shows_own_messages_and_broadcasts_with_read_state(
    client: httpx.AsyncClient, db: asyncpg.Pool, database_url: str, in_app_worker: Worker
) -> None:
    admin = await user_with_roles(client, db, "admin")
    alice = await register(client)
    bob = await register(client)
    heard: list[str] = []
    listener = await asyncpg.connect(plain_url(database_url))
    await listener.add_listener(INBOX_CHANNEL, lambda *a: heard.append(a[-1]))
    try:
        for body in (
            {
                "type": "IN_APP",
                "recipientUserId": alice["user"]["id"],
                "payload": {"subject": "for alice"},
            },
            {
                "type": "IN_APP",
                "recipientUserId": bob["user"]["id"],
                "payload": {"subject": "for bob"},
            },
            {"type": "IN_APP", "payload": {"subject": "for everyone", "body": "Season 3"}},
        ):
            created = await client.post(ADMIN_URL, json=body, headers=bearer(admin))
            assert created.status_code == 201, created.text
        await settled(db, "SENT", 3)
        await asyncio.sleep(0.1)
    finally:
        await listener.close()
    assert len(heard) == 3  # each delivery announced for live streams

    inbox = (await client.get(INBOX, headers=bearer(alice))).json()
    assert [(n["subject"], n["broadcast"]) for n in inbox["items"]] == [
        ("for everyone", True),
        ("for alice", False),
    ]
    assert all(n["readAt"] is None for n in inbox["items"])
    assert (await client.get(f"{INBOX}/unread-count", headers=bearer(alice))).json() == {
        "unread": 2
    }

    first = inbox["items"][1]["id"]
    assert (await client.post(f"{INBOX}/{first}/read", headers=bearer(alice))).status_code == 204
    assert (await client.post(f"{INBOX}/{first}/read", headers=bearer(alice))).status_code == 204
    unread = (await client.get(INBOX, params={"unread": "true"}, headers=bearer(alice))).json()
    assert [n["subject"] for n in unread["items"]] == ["for everyone"]

    # Bob cannot read, or mark, Alice's message.
    assert (await client.post(f"{INBOX}/{first}/read", headers=bearer(bob))).status_code == 404
    assert (
        await client.post(f"{INBOX}/{uuid.uuid4()}/read", headers=bearer(bob))
    ).status_code == 404
    assert [
        n["subject"] for n in (await client.get(INBOX, headers=bearer(bob))).json()["items"]
    ] == ["for everyone", "for bob"]

    # A broadcast's read state is per user.
    marked = await client.post(f"{INBOX}/read-all", headers=bearer(alice))
    assert marked.json() == {"marked": 1}
    assert (await client.get(f"{INBOX}/unread-count", headers=bearer(alice))).json() == {
        "unread": 0
    }
    assert (await client.get(f"{INBOX}/unread-count", headers=bearer(bob))).json() == {"unread": 2}


async def test_undelivered_and_other_types_stay_out_of_the_inbox(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await user_with_roles(client, db, "admin")
    alice = await register(client)
    for body in (
        {"type": "IN_APP", "recipientUserId": alice["user"]["id"], "payload": {"subject": "q"}},
        {"type": "PUSH", "recipientUserId": alice["user"]["id"], "payload": {"title": "t"}},
    ):
        await client.post(ADMIN_URL, json=body, headers=bearer(admin))
    # No worker ran: nothing is delivered, so nothing shows.
    inbox = (await client.get(INBOX, headers=bearer(alice))).json()
    assert inbox == {"items": [], "nextCursor": None}
