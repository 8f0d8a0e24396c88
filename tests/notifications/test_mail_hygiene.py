"""What every mail carries, checked on the message a real SMTP server on loopback (aiosmtpd)
received: Date, a Message-ID on the portal's domain, the Content-Language of the text it
holds, and, on mail a player may opt out of, an unsubscribe link they can see."""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI

from tests.factories import bearer, register, user_with_roles
from tests.net import free_port
from tests.notifications.support import running_workers, wait_for

SMTP_PORT = free_port()
SITE = "https://play.example.com"


class Inbox:
    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content  # type: ignore[attr-defined]
        mail = email.message_from_bytes(content, policy=email.policy.default)
        self.mails.append(mail)  # type: ignore[arg-type]
        return "250 OK"

    def one(self, subject: str) -> EmailMessage:
        [mail] = [m for m in self.mails if m["Subject"] == subject]
        return mail


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
        "public_base_url": SITE,
        "mail_from": "Portal <no-reply@Mail.Portal.test>",
    }


@pytest.fixture
async def mail_worker(app: FastAPI, database_url: str) -> AsyncIterator[None]:
    async with running_workers(app, database_url, builtins=True, types=["EMAIL"]):
        yield


def _parts(mail: EmailMessage) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_content()
        for part in mail.walk()
        if not part.is_multipart()
    }


async def _all_sent(db: asyncpg.Pool, count: int) -> None:
    async def sent() -> bool:
        done = await db.fetchval("SELECT count(*) FROM messages WHERE status = 'SENT'")
        return bool(done == count)

    await wait_for(sent, within=15)


async def _mail(
    client: httpx.AsyncClient, admin: dict[str, Any], to: dict[str, Any], **payload: Any
) -> str:
    response = await client.post(
        "/api/v1/admin/notifications",
        headers=bearer(admin),
        json={"type": "EMAIL", "recipientUserId": to["user"]["id"], "payload": payload},
    )
    assert response.status_code == 201, response.text
    message_id: str = response.json()["id"]
    return message_id


async def test_every_mail_has_a_date_a_message_id_and_its_language(
    client: httpx.AsyncClient, db: asyncpg.Pool, smtp: Inbox, mail_worker: None
) -> None:
    admin = await user_with_roles(client, db, "admin")
    german = await register(client, preferences={"language": "de-AT"})
    brazilian = await register(client, preferences={"language": "pt-BR"})  # no template
    ready = await _mail(client, admin, german, subject="Bonjour", body="x", language="fr")
    plain = await _mail(client, admin, german, subject="Hello", body="x")
    await _all_sent(db, 5)  # three verification mails, and the two above

    verify = await db.fetchval(
        "SELECT id FROM messages WHERE payload->>'template' = 'verify_email' "
        "AND recipient_user_id = $1",
        uuid.UUID(german["user"]["id"]),
    )
    expected = {
        "Bestätige deine E-Mail-Adresse": (str(verify), "de"),
        "Bonjour": (ready, "fr"),
        "Hello": (plain, "en"),  # a ready mail says nothing: English, as templates fall back
    }
    now = datetime.now(UTC)
    for subject, (message_id, language) in expected.items():
        mail = smtp.one(subject)
        assert mail["Message-ID"] == f"<{message_id}@mail.portal.test>"
        assert mail["Content-Language"] == language, subject
        sent_at = parsedate_to_datetime(str(mail["Date"]))
        assert abs(sent_at - now) < timedelta(minutes=2)
    # A language no template has: the English version, said to be English.
    brazilian_mail = next(
        m for m in smtp.mails if m["To"].addresses[0].addr_spec == brazilian["user"]["email"]
    )
    assert brazilian_mail["Subject"] == "Confirm your email address"
    assert brazilian_mail["Content-Language"] == "en"
    assert all(m["Date"] and m["Message-ID"] and m["Content-Language"] for m in smtp.mails)
    assert len({m["Message-ID"] for m in smtp.mails}) == len(smtp.mails)


async def test_mail_a_player_may_opt_out_of_shows_an_unsubscribe_link(
    client: httpx.AsyncClient, db: asyncpg.Pool, smtp: Inbox, mail_worker: None
) -> None:
    admin = await user_with_roles(client, db, "admin")
    player = await register(client)
    await _mail(client, admin, player, subject="Promo", body="50% off", category="marketing")
    await _mail(
        client, admin, player, subject="Angebot", body="50%", category="marketing", language="de"
    )
    await _mail(client, admin, player, subject="Receipt", body="Thanks", category="transactional")
    await _all_sent(db, 5)

    promo = smtp.one("Promo")
    parts = _parts(promo)
    header_token = promo["List-Unsubscribe"].strip("<>").split("token=")[1]
    page = f"{SITE}/unsubscribe?token={header_token}"
    # In the text a person reads, after the message, with the same signed token.
    text = parts["text/plain"]
    assert text.startswith("50% off") and "unsubscribe here:" in text
    assert text.rstrip().endswith(page)
    assert f'<a href="{page}">Unsubscribe</a>' in parts["text/html"]
    assert "news and offers" in text  # what it unsubscribes from

    german = _parts(smtp.one("Angebot"))
    assert (
        "Abbestellen" in german["text/html"] and "Neuigkeiten und Angebote" in german["text/plain"]
    )
    assert smtp.one("Angebot")["Content-Language"] == "de"

    # Transactional and account mail have nothing to opt out of.
    for subject in ("Receipt", "Confirm your email address"):
        mail = next(m for m in smtp.mails if m["Subject"] == subject)
        assert mail["List-Unsubscribe"] is None
        assert "unsubscribe" not in _parts(mail)["text/plain"].lower()

    # The body's link unsubscribes (the page's button posts the same token).
    token = re.search(r"unsubscribe\?token=([\w.-]+)", text).group(1)  # type: ignore[union-attr]
    done = await client.post("/api/v1/unsubscribe", params={"token": token})
    assert done.status_code == 204
    prefs = (await client.get("/api/v1/me/notification-preferences", headers=bearer(player))).json()
    assert prefs["email"]["marketing"] is False
