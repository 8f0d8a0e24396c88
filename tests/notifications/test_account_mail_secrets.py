"""One-time links (password reset, address verification) are readable by their recipient
only: never through an admin route, never in the messages table, before or after the
mail goes out; and the link mailed, first try or retry, works."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.notifications.sealed import ERASED, FIELD, REDACTED
from tests.factories import bearer, register, user_with_roles
from tests.net import free_port
from tests.notifications.smtp_server import Script, scripted_smtp
from tests.notifications.support import queued_link, running_workers, wait_for

SMTP_PORT = free_port()
NEW_PASSWORD = "amber-falcon-orchard-51"
MESSAGES = "/api/v1/admin/notifications"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": SMTP_PORT,
        "public_base_url": "https://play.example.com",
        "smtp_retry_first_seconds": 0.05,
        "smtp_retry_max_seconds": 0.2,
    }


async def _reset_requested(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, player: dict[str, Any]
) -> tuple[uuid.UUID, str]:
    """The reset mail's id and the token its link carries."""
    asked = await client.post(
        "/api/v1/auth/password-reset/request", json={"email": player["user"]["email"]}
    )
    assert asked.status_code == 202
    query = "SELECT id FROM messages WHERE payload->>'template' = 'password_reset'"

    async def queued() -> bool:  # queued once the answer is out (the same for any address)
        return await db.fetchval(query) is not None

    await wait_for(queued, within=10)
    message_id = await db.fetchval(query)
    link = await queued_link(db, app.state.settings.secret_key, "password_reset")
    return message_id, link.split("token=")[1]


async def _row_text(db: asyncpg.Pool, message_id: uuid.UUID) -> str:
    """The whole row as PostgreSQL holds it."""
    text: str = await db.fetchval("SELECT m::text FROM messages m WHERE id = $1", message_id)
    return text


async def _status(db: asyncpg.Pool, message_id: uuid.UUID, *wanted: str) -> None:
    async def reached() -> bool:
        return await db.fetchval("SELECT status FROM messages WHERE id = $1", message_id) in wanted

    await wait_for(reached, within=10)


async def test_admins_never_see_the_token_and_the_row_forgets_it_once_sent(
    app: FastAPI, database_url: str, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await user_with_roles(client, db, "admin")
    player = await register(client)
    message_id, token = await _reset_requested(app, client, db, player)

    # Queued: the row holds the link sealed, and no admin route shows it.
    assert token not in await _row_text(db, message_id)
    listed = await client.get(MESSAGES, headers=bearer(admin))
    one = await client.get(f"{MESSAGES}/{message_id}", headers=bearer(admin))
    assert listed.status_code == one.status_code == 200
    for answer in (listed, one):
        assert token not in answer.text
    assert one.json()["payload"][FIELD] == REDACTED
    assert "link" not in one.json()["payload"]["variables"]

    # Greylisted once, then delivered: the retry mails the very link that was sealed.
    greylisted = Script({"RCPT": "451 4.7.1 Greylisted, please try again later"})
    async with (
        scripted_smtp(greylisted, port=SMTP_PORT) as smtp,
        running_workers(app, database_url, builtins=True, types=["EMAIL"]),
    ):
        await _status(db, message_id, "SENT")
    [mail] = [m for m in smtp.delivered if m["Subject"] == "Reset your password"]
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert re.findall(r"reset-password\?token=([\w-]+)", text) == [token]

    # Sent: the row keeps no token, sealed or not.
    row = await _row_text(db, message_id)
    assert token not in row
    payload = await db.fetchval("SELECT payload FROM messages WHERE id = $1", message_id)
    assert payload[FIELD] == ERASED
    after = await client.get(f"{MESSAGES}/{message_id}", headers=bearer(admin))
    assert token not in after.text and after.json()["payload"][FIELD] == ERASED

    reset = await client.post(
        "/api/v1/auth/password-reset", json={"token": token, "newPassword": NEW_PASSWORD}
    )
    assert reset.status_code == 200, reset.text


async def test_a_failed_mail_forgets_its_token_and_cannot_be_resent(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    admin = await user_with_roles(client, db, "admin")
    player = await register(client)
    # The token is read while the mail is still queued, before a worker runs: a worker
    # already running may fail and erase it first (seen in CI).
    failed_id, failed_token = await _reset_requested(app, client, db, player)
    async with (
        scripted_smtp(then=Script({"RCPT": "550 5.1.1 No such user"}), port=SMTP_PORT),
        running_workers(app, database_url, builtins=True, types=["EMAIL"]),
    ):
        await _status(db, failed_id, "FAILED")
        assert failed_token not in await _row_text(db, failed_id)
        assert (await db.fetchval("SELECT payload FROM messages WHERE id = $1", failed_id))[
            FIELD
        ] == ERASED

        # Given another round, it fails again and says why, rather than mail a broken link.
        retried = await client.post(f"{MESSAGES}/{failed_id}/retry", headers=bearer(admin))
        assert retried.status_code == 200, retried.text
        await _status(db, failed_id, "FAILED")
        error = await db.fetchval("SELECT last_error FROM messages WHERE id = $1", failed_id)
        assert "one-time link was erased" in error


async def test_a_cancelled_mail_forgets_its_token(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await user_with_roles(client, db, "admin")
    player = await register(client)
    message_id, token = await _reset_requested(app, client, db, player)  # no worker: PENDING
    cancelled = await client.delete(f"{MESSAGES}/{message_id}", headers=bearer(admin))
    assert cancelled.status_code == 200, cancelled.text
    assert token not in cancelled.text
    assert cancelled.json()["payload"][FIELD] == ERASED
    assert token not in await _row_text(db, message_id)


async def test_admins_cannot_queue_sealed_variables(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await user_with_roles(client, db, "admin")
    created = await client.post(
        MESSAGES,
        headers=bearer(admin),
        json={
            "type": "EMAIL",
            "recipientUserId": admin["user"]["id"],
            "payload": {"template": "password_reset", FIELD: "AAAA"},
        },
    )
    assert created.status_code == 422, created.text
    assert created.json()["errors"][0]["field"] == f"payload.{FIELD}"
