"""Email through a real SMTP server on loopback (aiosmtpd), and the password reset built
on it."""

from __future__ import annotations

import email
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import Message

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI

from tests.factories import STRONG_PASSWORD, bearer, login, register, user_with_roles
from tests.net import free_port
from tests.notifications.support import queued_link, running_workers, settled, wait_for

NEW_PASSWORD = "amber-falcon-orchard-51"


class Inbox:
    def __init__(self) -> None:
        self.mails: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content  # type: ignore[attr-defined]
        self.mails.append(email.message_from_bytes(content, policy=email.policy.default))
        return "250 OK"


SMTP_PORT = free_port()


@pytest.fixture
def smtp() -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=SMTP_PORT)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": SMTP_PORT,
        "public_base_url": "https://play.example.com",
        "smtp_retry_first_seconds": 0.02,
        "smtp_retry_max_seconds": 0.05,
        "smtp_retry_hours": 0.3 / 3600,
    }


@pytest.fixture
async def mail_worker(app: FastAPI, database_url: str) -> AsyncIterator[None]:
    async with running_workers(app, database_url, builtins=True, types=["EMAIL"]):
        yield


def _parts(mail: Message) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_content()  # type: ignore[attr-defined]
        for part in mail.walk()
        if not part.is_multipart()
    }


async def test_password_reset_end_to_end_in_the_users_language(
    client: httpx.AsyncClient, db: asyncpg.Pool, smtp: Inbox, mail_worker: None
) -> None:
    user = await register(client, name="Jö <b>", preferences={"language": "de"})
    other_session = await login(client, user["user"]["email"])
    asked = await client.post(
        "/api/v1/auth/password-reset/request", json={"email": user["user"]["email"].upper()}
    )
    assert asked.status_code == 202
    await settled(db, "SENT", count=2)  # the verification mail, then the reset
    [mail] = [m for m in smtp.mails if m["Subject"] == "Passwort zurücksetzen"]
    assert mail["To"].addresses[0].addr_spec == user["user"]["email"]
    assert mail["To"].addresses[0].display_name == "Jö <b>"
    parts = _parts(mail)
    assert "Jö <b>" in parts["text/plain"]
    assert "Jö &lt;b&gt;" in parts["text/html"]  # variables are escaped in HTML
    token = re.search(r"reset-password\?token=([\w-]+)", parts["text/plain"]).group(1)  # type: ignore[union-attr]
    assert parts["text/plain"].count("https://play.example.com/reset-password?token=") == 1

    reset = await client.post(
        "/api/v1/auth/password-reset", json={"token": token, "newPassword": NEW_PASSWORD}
    )
    assert reset.status_code == 200, reset.text
    assert reset.json() == {"ended": 2}
    for session in (user, other_session):
        assert (await client.get("/api/v1/me", headers=bearer(session))).status_code == 401
    await login(client, user["user"]["email"], NEW_PASSWORD)
    again = await client.post(
        "/api/v1/auth/password-reset",
        json={"token": token, "newPassword": "another-brave-lantern-7"},
    )
    assert again.status_code == 400  # single use
    assert again.json()["type"].endswith("invalid-reset-token")


async def test_reset_request_never_tells_whether_an_account_exists(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    unknown = await client.post(
        "/api/v1/auth/password-reset/request", json={"email": "nobody@example.com"}
    )
    user = await register(client)
    known = await client.post(
        "/api/v1/auth/password-reset/request", json={"email": user["user"]["email"]}
    )
    assert unknown.status_code == known.status_code == 202
    assert unknown.content == known.content == b""
    # Asking again at once does not send a second mail.
    await client.post("/api/v1/auth/password-reset/request", json={"email": user["user"]["email"]})
    resets = "SELECT count(*) FROM messages WHERE payload->>'template' = 'password_reset'"
    assert await db.fetchval(resets) == 1


async def test_expired_or_unknown_reset_tokens_are_refused(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    user = await register(client)
    await client.post("/api/v1/auth/password-reset/request", json={"email": user["user"]["email"]})
    link = await queued_link(db, app.state.settings.secret_key, "password_reset")
    token = link.split("token=")[1]
    await db.execute("UPDATE account_tokens SET expires_at = now() - interval '1 second'")
    expired = await client.post(
        "/api/v1/auth/password-reset", json={"token": token, "newPassword": NEW_PASSWORD}
    )
    assert expired.status_code == 400
    unknown = await client.post(
        "/api/v1/auth/password-reset", json={"token": "made-up", "newPassword": NEW_PASSWORD}
    )
    assert unknown.status_code == 400
    await login(client, user["user"]["email"], STRONG_PASSWORD)  # nothing changed


async def test_smtp_down_retries_then_fails_with_the_error(
    client: httpx.AsyncClient, db: asyncpg.Pool, mail_worker: None
) -> None:
    # No SMTP server on the port: connection refused, retried on the SMTP schedule (here
    # compressed to a third of a second), then FAILED.
    admin = await user_with_roles(client, db, "admin")
    created = await client.post(
        "/api/v1/admin/notifications",
        headers=bearer(admin),
        json={
            "type": "EMAIL",
            "recipientUserId": admin["user"]["id"],
            "maxAttempts": 3,
            "payload": {"subject": "hi", "body": "there"},
        },
    )
    assert created.status_code == 201
    message_id = uuid.UUID(created.json()["id"])

    async def failed() -> bool:
        status = await db.fetchval("SELECT status FROM messages WHERE id = $1", message_id)
        return bool(status == "FAILED")

    await wait_for(failed, within=10)
    # Only this message: the admin's own verification mail is failing alongside it.
    row = await db.fetchrow(
        "SELECT retry_count, last_error FROM messages WHERE id = $1", message_id
    )
    assert row["retry_count"] > 3  # the schedule's attempts, not maxAttempts
    assert row["last_error"].startswith("PermanentError: gave up after")
    assert "Connect call failed" in row["last_error"]


async def test_an_email_broadcast_reaches_each_player_once_as_they_prefer(
    client: httpx.AsyncClient, db: asyncpg.Pool, smtp: Inbox, mail_worker: None
) -> None:
    admin = await user_with_roles(client, db, "admin")
    players = [await register(client) for _ in range(4)]
    blocked, opted_out = players[0], players[1]
    await db.execute(
        "UPDATE users SET is_blocked = true WHERE id = $1", uuid.UUID(blocked["user"]["id"])
    )
    prefs = await client.put(
        "/api/v1/me/notification-preferences",
        headers=bearer(opted_out),
        json={"email": {"marketing": False}},
    )
    assert prefs.status_code == 200
    created = await client.post(
        "/api/v1/admin/notifications",
        headers=bearer(admin),
        json={
            "type": "EMAIL",
            "payload": {"subject": "Season 3", "body": "New maps.", "category": "marketing"},
        },
    )
    assert created.status_code == 201, created.text
    expected = {admin["user"]["email"], *(p["user"]["email"] for p in players[2:])}

    async def all_sent() -> bool:
        left = await db.fetchval("SELECT count(*) FROM messages WHERE status <> 'SENT'")
        return bool(left == 0)

    await wait_for(all_sent, within=10)
    got = [m["To"].addresses[0].addr_spec for m in smtp.mails if m["Subject"] == "Season 3"]
    assert sorted(got) == sorted(expected)
    copies = await db.fetch(
        "SELECT priority, dedupe_key FROM messages WHERE recipient_user_id IS NOT NULL "
        "AND payload->>'subject' = 'Season 3'"
    )
    assert {c["priority"] for c in copies} == {-1}  # behind mail queued directly
    assert all(c["dedupe_key"].startswith(f"broadcast:{created.json()['id']}:") for c in copies)


async def test_registration_mails_a_verification_link_that_verifies(
    client: httpx.AsyncClient, db: asyncpg.Pool, smtp: Inbox, mail_worker: None
) -> None:
    user = await register(client)
    assert user["user"]["emailVerifiedAt"] is None
    await settled(db, "SENT")
    [mail] = smtp.mails
    assert mail["Subject"] == "Confirm your email address"
    token = re.search(r"verify-email\?token=([\w-]+)", _parts(mail)["text/plain"]).group(1)  # type: ignore[union-attr]
    verified = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["emailVerifiedAt"] is not None
    me = (await client.get("/api/v1/me", headers=bearer(user))).json()
    assert me["emailVerifiedAt"] is not None
    reused = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert reused.status_code == 400
    # Verified: asking again sends nothing.
    again = await client.post("/api/v1/auth/verify-email/request", headers=bearer(user))
    assert again.status_code == 202
    assert await db.fetchval("SELECT count(*) FROM messages") == 1


async def test_preferences_opt_out_of_marketing_but_never_of_account_mail(
    client: httpx.AsyncClient, db: asyncpg.Pool, smtp: Inbox, mail_worker: None
) -> None:
    admin = await user_with_roles(client, db, "admin")
    player = await register(client)
    url = "/api/v1/me/notification-preferences"
    defaults = (await client.get(url, headers=bearer(player))).json()
    assert defaults["email"] == {"achievements": True, "marketing": True}
    put = await client.put(
        url,
        headers=bearer(player),
        json={"email": {"marketing": False}, "inApp": {"achievements": False}},
    )
    assert put.status_code == 200, put.text
    assert put.json()["email"] == {"achievements": True, "marketing": False}
    assert (await client.get(url, headers=bearer(player))).json() == put.json()
    bad = await client.put(url, headers=bearer(player), json={"email": {"transactional": False}})
    assert bad.status_code == 422  # transactional mail cannot be turned off

    for category in ("marketing", "transactional"):
        await client.post(
            "/api/v1/admin/notifications",
            headers=bearer(admin),
            json={
                "type": "EMAIL",
                "recipientUserId": player["user"]["id"],
                "payload": {"subject": category, "body": "b", "category": category},
            },
        )
    await settled(db, "SENT", count=4)  # two verification mails, then the two above
    subjects = sorted(m["Subject"] for m in smtp.mails)
    assert "marketing" not in subjects and "transactional" in subjects


async def test_marketing_mail_carries_a_one_click_unsubscribe_link_that_works(
    client: httpx.AsyncClient, db: asyncpg.Pool, smtp: Inbox, mail_worker: None
) -> None:
    admin = await user_with_roles(client, db, "admin")
    player = await register(client)
    await client.post(
        "/api/v1/admin/notifications",
        headers=bearer(admin),
        json={
            "type": "EMAIL",
            "recipientUserId": player["user"]["id"],
            "payload": {"subject": "Spring promo", "body": "b", "category": "marketing"},
        },
    )
    await settled(db, "SENT", count=3)
    [promo] = [m for m in smtp.mails if m["Subject"] == "Spring promo"]
    account = [m for m in smtp.mails if m["Subject"] == "Confirm your email address"]
    assert account and all(m["List-Unsubscribe"] is None for m in account)  # never for account
    assert promo["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = promo["List-Unsubscribe"].strip("<>")
    assert link.startswith("https://play.example.com/api/v1/unsubscribe?token=")
    token = link.split("token=")[1]

    tampered = await client.post("/api/v1/unsubscribe", params={"token": token[:-2] + "xx"})
    assert tampered.status_code == 400
    done = await client.post("/api/v1/unsubscribe", params={"token": token})  # no login
    assert done.status_code == 204
    assert (await client.post("/api/v1/unsubscribe", params={"token": token})).status_code == 204
    prefs = (await client.get("/api/v1/me/notification-preferences", headers=bearer(player))).json()
    assert prefs["email"] == {"achievements": True, "marketing": False}
