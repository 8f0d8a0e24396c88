"""Mail with no SMTP server set: written to the outbox folder, marked SENT with a note,
never retried against a mail server that is not there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.notifications import outbox
from tests.factories import register
from tests.notifications.support import running_workers, settled


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, object]:
    return {"smtp_host": None, "data_dir": tmp_path / "var"}


@pytest.fixture
async def mail_worker(app: FastAPI, database_url: str) -> AsyncIterator[None]:
    async with running_workers(app, database_url, builtins=True, types=["EMAIL"]):
        yield


async def test_registration_mail_lands_in_the_outbox_with_its_link(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, mail_worker: None
) -> None:
    player = await register(client, email="outbox@example.com", name="Out Box")
    await settled(db, "SENT")
    folder: Path = app.state.settings.outbox_dir
    assert folder == app.state.settings.data_dir / "outbox"

    [mail] = outbox.list_mails(folder)
    assert mail.to == "Out Box <outbox@example.com>"
    assert mail.subject == "Confirm your email address"
    assert mail.date is not None
    [link] = [u for u in mail.links if "/verify-email?token=" in u]

    row = await db.fetchrow(
        "SELECT id, status, retry_count, last_error, note FROM messages WHERE type = 'EMAIL'"
    )
    assert row["status"] == "SENT"
    assert row["retry_count"] == 0
    assert row["last_error"] is None
    written = folder / f"{row['id']}.eml"
    assert row["note"] == f"no SMTP server is set: written to {written}"
    assert mail.id == str(row["id"])

    # The link works: it is how a developer verifies an account without a mail server.
    token = link.split("token=", 1)[1]
    verified = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert verified.status_code in (200, 204), verified.text
    me = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {player['accessToken']}"}
    )
    assert me.json()["emailVerifiedAt"] is not None


async def test_the_admin_api_shows_the_note(
    client: httpx.AsyncClient, db: asyncpg.Pool, mail_worker: None
) -> None:
    from tests.factories import bearer, user_with_roles

    admin = await user_with_roles(client, db, "admin")
    await settled(db, "SENT")
    listed = await client.get("/api/v1/admin/notifications?type=EMAIL", headers=bearer(admin))
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["status"] == "SENT"
    assert item["note"].startswith("no SMTP server is set: written to ")


def test_listing_filters_finds_by_prefix_and_ignores_other_files(tmp_path: Path) -> None:
    import uuid
    from email.message import EmailMessage

    ids = [uuid.UUID(f"01a2{i:04x}-0000-7000-8000-000000000000") for i in range(3)]
    for i, message_id in enumerate(ids):
        mail = EmailMessage()
        mail["To"] = f"p{i}@example.com"
        mail["Subject"] = f"mail {i}"
        mail.set_content(f"open https://play.example.com/reset?token=t{i} now")
        outbox.write(tmp_path, message_id, mail)
    (tmp_path / "notes.txt").write_text("not a mail")
    (tmp_path / f".{ids[0]}.partial").write_text("half written")

    assert [m.subject for m in outbox.list_mails(tmp_path)] == ["mail 2", "mail 1", "mail 0"]
    assert [m.subject for m in outbox.list_mails(tmp_path, to="P1@")] == ["mail 1"]
    assert [m.subject for m in outbox.list_mails(tmp_path, limit=1)] == ["mail 2"]
    latest = outbox.find(tmp_path, "latest")
    assert latest is not None and latest.links == ["https://play.example.com/reset?token=t2"]
    assert outbox.find(tmp_path, "01a2") is None  # ambiguous
    found = outbox.find(tmp_path, str(ids[1])[:8])
    assert found is not None and found.subject == "mail 1"
    assert outbox.find(tmp_path, "*") is None
    assert outbox.list_mails(tmp_path / "missing") == []
