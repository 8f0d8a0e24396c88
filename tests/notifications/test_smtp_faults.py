"""SMTP servers that misbehave, as the worker meets them: temporary replies (4xx, 421,
dropped connections, a relay that is down) are retried on the SMTP schedule, permanent
ones (5xx) fail at once with the reply, and the SMTP timeout bounds the whole
conversation."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.config import Settings
from gameportal.notifications.backoff import Schedule
from gameportal.notifications.channels.email import EmailChannel, TemporarySmtpFailure
from tests.factories import bearer, user_with_roles
from tests.net import free_port
from tests.notifications.smtp_server import DROP, Script, scripted_smtp
from tests.notifications.support import running_workers, wait_for

SMTP_PORT = free_port()
# The SMTP schedule compressed: 50 ms doubling up to 200 ms, for 30 s (by default: a
# minute doubling up to half an hour, for 72 hours).
COMPRESSED = {
    "smtp_retry_first_seconds": 0.05,
    "smtp_retry_max_seconds": 0.2,
    "smtp_retry_hours": 30 / 3600,
}


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"smtp_host": "127.0.0.1", "smtp_port": SMTP_PORT, **COMPRESSED}


@pytest.fixture
async def admin(client: httpx.AsyncClient, db: asyncpg.Pool) -> dict[str, Any]:
    found = await user_with_roles(client, db, "admin")
    await db.execute("DELETE FROM messages")  # its verification mail: not part of the test
    return found


@pytest.fixture
async def mail_worker(app: FastAPI, database_url: str) -> AsyncIterator[None]:
    async with running_workers(app, database_url, builtins=True, types=["EMAIL"]):
        yield


async def _mail(client: httpx.AsyncClient, admin: dict[str, Any], **fields: object) -> uuid.UUID:
    created = await client.post(
        "/api/v1/admin/notifications",
        headers=bearer(admin),
        json={
            "type": "EMAIL",
            "recipientUserId": admin["user"]["id"],
            "payload": {"subject": "Season 3", "body": "New maps."},
            **fields,
        },
    )
    assert created.status_code == 201, created.text
    return uuid.UUID(created.json()["id"])


async def _finished(db: asyncpg.Pool, message_id: uuid.UUID, within: float = 10) -> asyncpg.Record:
    async def done() -> bool:
        status = await db.fetchval("SELECT status FROM messages WHERE id = $1", message_id)
        return status in ("SENT", "FAILED")

    await wait_for(done, within=within)
    row: asyncpg.Record = await db.fetchrow(
        "SELECT status, retry_count, last_error FROM messages WHERE id = $1", message_id
    )
    return row


async def test_greylisting_at_rcpt_is_retried_and_delivered(
    client: httpx.AsyncClient, db: asyncpg.Pool, admin: dict[str, Any], mail_worker: None
) -> None:
    greylisted = Script({"RCPT": "451 4.7.1 Greylisted, please try again later"})
    async with scripted_smtp(greylisted, port=SMTP_PORT) as smtp:
        message_id = await _mail(client, admin)
        row = await _finished(db, message_id)
    assert (row["status"], row["retry_count"]) == ("SENT", 1), row
    assert "RCPT 451" in smtp.transcripts[0]
    assert [m["Subject"] for m in smtp.delivered] == ["Season 3"]


@pytest.mark.parametrize(
    "replies",
    [
        {"RCPT": "452 4.2.2 Mailbox full"},
        {"CONNECT": "421 4.3.2 Service not available, closing channel"},
        {"MAIL": "421 4.7.0 Too many connections, closing channel"},
        {"MAIL": "451 4.3.0 Local error in processing"},
        {"END": "451 4.3.0 Queue file write error"},
        {"RCPT": DROP},  # the connection is reset mid-conversation
    ],
    ids=["452-rcpt", "421-connect", "421-mail", "451-mail", "451-data", "reset"],
)
async def test_temporary_replies_anywhere_are_retried(
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    admin: dict[str, Any],
    mail_worker: None,
    replies: dict[str, str],
) -> None:
    # maxAttempts 1: the SMTP schedule, not the attempts, decides on temporary failures.
    async with scripted_smtp(Script(replies), Script(replies), port=SMTP_PORT) as smtp:
        message_id = await _mail(client, admin, maxAttempts=1)
        row = await _finished(db, message_id)
    assert (row["status"], row["retry_count"]) == ("SENT", 2), (row, smtp.transcripts)
    assert len(smtp.delivered) == 1


@pytest.mark.parametrize(
    ("replies", "expected"),
    [
        ({"RCPT": "550 5.1.1 No such user here"}, "550 5.1.1 No such user here"),
        ({"MAIL": "553 5.1.8 Sender address rejected"}, "553 5.1.8 Sender address rejected"),
        ({"END": "554 5.7.1 Message rejected as spam"}, "554 5.7.1 Message rejected as spam"),
        ({"CONNECT": "554 5.7.1 No SMTP service for you"}, "554 5.7.1 No SMTP service"),
    ],
    ids=["550-rcpt", "553-mail", "554-data", "554-connect"],
)
async def test_permanent_replies_fail_at_once_with_the_reply(
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    admin: dict[str, Any],
    mail_worker: None,
    replies: dict[str, str],
    expected: str,
) -> None:
    async with scripted_smtp(then=Script(replies), port=SMTP_PORT) as smtp:
        message_id = await _mail(client, admin)
        row = await _finished(db, message_id)
    assert (row["status"], row["retry_count"]) == ("FAILED", 1), row
    assert expected in row["last_error"]
    assert smtp.connections == 1 and not smtp.delivered


async def test_a_relay_outage_longer_than_the_old_budget_is_ridden_out(
    client: httpx.AsyncClient, db: asyncpg.Pool, admin: dict[str, Any], mail_worker: None
) -> None:
    # Nothing listens for 2 s (connection refused): longer than the old budget here
    # (maxAttempts tries with the worker's 50 ms test backoff, under 0.8 s even for the
    # default 5; about a minute in production), after which it was FAILED.
    message_id = await _mail(client, admin, maxAttempts=2)
    await asyncio.sleep(2)
    row = await db.fetchrow("SELECT status, retry_count FROM messages WHERE id = $1", message_id)
    # Still being retried: waiting for its next try, or in one right now (PROCESSING is
    # what a read in the middle of an attempt sees), with the old budget used up.
    assert row["status"] in ("PENDING", "PROCESSING"), row
    assert row["retry_count"] > 2, row
    async with scripted_smtp(port=SMTP_PORT) as smtp:
        row = await _finished(db, message_id)
    assert row["status"] == "SENT", row
    assert row["retry_count"] > 2  # more attempts than the message's maxAttempts
    assert len(smtp.delivered) == 1


async def test_temporary_failures_end_failed_when_the_schedule_is_over(
    app: FastAPI,
    database_url: str,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    admin: dict[str, Any],
) -> None:
    settings = app.state.settings
    app.state.settings = settings.model_copy(update={"smtp_retry_hours": 0.5 / 3600})
    try:  # half a second of retries, and no server listening
        async with running_workers(app, database_url, builtins=True, types=["EMAIL"]):
            message_id = await _mail(client, admin)
            row = await _finished(db, message_id)
    finally:
        app.state.settings = settings
    assert row["status"] == "FAILED"
    assert row["last_error"].startswith("PermanentError: gave up after"), row
    assert "Connect" in row["last_error"], row


def test_the_default_schedule_outlasts_relay_outages() -> None:
    schedule = Schedule.of(Settings())
    waits = [schedule.nominal(n) for n in range(200)]
    assert waits[0] == 60 and max(waits) == 30 * 60  # a minute at first, then half-hourly
    hours = schedule.elapsed(schedule.attempts - 1) / 3600
    assert 71 <= hours <= 72, hours  # the three days a mail is retried for
    assert schedule.next_delay(schedule.attempts - 2) is not None
    assert schedule.next_delay(schedule.attempts - 1) is None


async def test_the_smtp_timeout_bounds_the_whole_conversation() -> None:
    # Every reply takes 0.7 s, sent a byte at a time: each reply alone is within the
    # 1 s timeout, the conversation (greeting, EHLO, MAIL, RCPT, DATA, end, QUIT) is not.
    settings = Settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout_seconds=1)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "a@example.com", "b@example.com", "slow"
    mail.set_content("hello")
    async with scripted_smtp(then=Script(pause=0.7), port=settings.smtp_port) as smtp:
        started = time.monotonic()
        with pytest.raises(TemporarySmtpFailure, match="timed out"):
            await asyncio.wait_for(EmailChannel(settings).send(mail), timeout=10)
        took = time.monotonic() - started
    assert took < 1.5, took  # 5.1 s before: 1 s per reply, not per conversation
    assert not smtp.delivered
