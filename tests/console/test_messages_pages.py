"""The messages pages: compose (in-app, email, push; one player or everyone; now or at a
time) with its preview per language, the queue with its filters, retry and cancel, and
the queue's figures with their per-minute chart."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from fastapi import FastAPI

from tests.console.conftest import ConsoleClients
from tests.console.support import csrf_of, post_form, signed_in, text_of
from tests.factories import bearer, register, unique_email
from tests.notifications.support import running_workers, settled
from tests.web.html import assert_no_inline_code, parse

ADMIN_API = "/api/v1/admin/notifications"


def in_app_broadcast(**fields: str) -> dict[str, str]:
    return {
        "type": "IN_APP",
        "audience": "all",
        "in_app_subject": "Season 3 is live",
        "in_app_body": "New maps.\r\nNew rewards.",  # as browsers send a textarea
        "in_app_category": "marketing",
        "when": "now",
        "priority": "0",
        **fields,
    }


async def queued(db: asyncpg.Pool) -> int:
    """Messages queued besides the address confirmations registering queues."""
    found: int = await db.fetchval(
        "SELECT count(*) FROM messages WHERE payload->>'template' IS DISTINCT FROM 'verify_email'"
    )
    return found


def field_error(response: httpx.Response, name: str) -> str:
    """The error shown beside field `name`, which points at it (aria-describedby)."""
    page = parse(response)
    found = page.find("p", id=f"f-{name}-error")
    assert found, f"no error beside {name}"
    control = [e for e in page.elements if e.attrs.get("id") == f"f-{name}"]
    assert control and f"f-{name}-error" in control[0].attrs.get("aria-describedby", "")
    return " ".join(found[0].text.split())


async def test_pages_are_for_admins_only(
    browsers: ConsoleClients, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin, editor, marketer, anonymous = browsers(), browsers(), browsers(), browsers()
    await signed_in(admin, client, db, "admin")
    await signed_in(editor, client, db, "editor")
    await signed_in(marketer, client, db, "marketer")
    for path in (
        "/console/messages",
        "/console/messages/new",
        "/console/messages/stats",
        "/console/messages/stats/per-minute",
    ):
        assert (await admin.get(path)).status_code == 200, path
        assert (await editor.get(path)).status_code == 403, path
        assert (await marketer.get(path)).status_code == 403, path
        refused = await anonymous.get(path)
        assert refused.status_code == 303 and refused.headers["location"].startswith(
            "/console/login"
        )
    # The sidebar shows Messages to admins only.
    assert "/console/messages" in [
        a.attrs.get("href") for a in parse(await admin.get("/console")).find("a")
    ]
    assert "/console/messages" not in [
        a.attrs.get("href") for a in parse(await editor.get("/console")).find("a")
    ]
    # A POST by a marketer is refused before anything is queued.
    refused = await post_form(marketer, "/console/messages", in_app_broadcast())
    assert refused.status_code == 403
    assert await db.fetchval("SELECT count(*) FROM messages WHERE type = 'IN_APP'") == 0


async def test_an_admin_broadcasts_an_in_app_message_and_a_player_reads_it(
    app: FastAPI,
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    database_url: str,
) -> None:
    await signed_in(browser, client, db, "admin")
    player = await register(client)
    compose = await browser.get("/console/messages/new")
    assert compose.status_code == 200
    assert_no_inline_code(compose)
    page = parse(compose)
    for name in ("in_app_subject", "in_app_body", "recipient", "scheduled_at", "email_subject"):
        assert page.one("label", for_=f"f-{name}")

    sent = await post_form(browser, "/console/messages", in_app_broadcast(), token=csrf_of(compose))
    assert sent.status_code == 303, sent.text
    row = await db.fetchrow("SELECT * FROM messages WHERE type = 'IN_APP'")
    assert row["recipient_user_id"] is None and row["status"] == "PENDING"
    assert row["payload"] == {
        "subject": "Season 3 is live",
        "body": "New maps.\nNew rewards.",
        "category": "marketing",
    }
    assert sent.headers["location"] == f"/console/messages/{row['id']}"
    detail = await browser.get(sent.headers["location"])
    assert "In-app message to every player queued to go now." in text_of(detail)
    assert "Season 3 is live" in text_of(detail) and "Everyone" in text_of(detail)

    async with running_workers(app, database_url, builtins=True):
        await settled(db, "SENT", 1)
    inbox = (await client.get("/api/v1/me/notifications", headers=bearer(player))).json()
    assert [(n["subject"], n["broadcast"]) for n in inbox["items"]] == [("Season 3 is live", True)]
    listed = await browser.get("/console/messages?status=SENT")
    assert "Season 3 is live" in text_of(listed)


async def test_an_email_to_one_player_at_a_time_with_its_preview(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "admin")
    player = await register(client, email=unique_email("mia"))
    form = {
        "type": "EMAIL",
        "audience": "one",
        "recipient": player["user"]["email"].upper(),
        "email_mode": "text",
        "email_subject": "Your season pass",
        "email_body": "It is ready.\nHave fun!",
        "email_language": "en",
        "email_category": "marketing",
        "when": "later",
        "scheduled_at": "2031-05-04T09:30",
        "priority": "3",
    }
    # As the admin types, htmx asks for the preview panel alone: the mail as composed.
    token = csrf_of(await browser.get("/console/messages/new"))
    panel = await browser.post(
        "/console/messages/preview",
        data={**form, "csrf_token": token},
        headers={"Origin": "https://testserver", "HX-Request": "true"},
    )
    assert panel.status_code == 200
    assert "<html" not in panel.text
    text = " ".join(panel.text.split())
    assert "Your season pass" in text and "Content-Language" in text
    assert "Unsubscribe" in panel.text or "unsubscribe" in panel.text  # marketing mail
    assert "this player&#39;s version" in panel.text or "this player's version" in panel.text

    sent = await post_form(browser, "/console/messages", form, token=token)
    assert sent.status_code == 303, sent.text
    row = await db.fetchrow("SELECT * FROM messages WHERE payload->>'subject' = 'Your season pass'")
    assert row["recipient_user_id"] == uuid.UUID(player["user"]["id"])
    assert row["scheduled_at"] == datetime(2031, 5, 4, 9, 30, tzinfo=UTC)
    assert row["priority"] == 3
    assert row["payload"]["language"] == "en"
    shown = text_of(await browser.get(sent.headers["location"]))
    assert "Email message to the player queued for 2031-05-04 09:30 UTC." in shown


async def test_a_template_is_previewed_in_each_of_its_languages(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "admin")
    player = await register(client)
    await db.execute(
        'UPDATE users SET preferences = preferences || \'{"language": "de-AT"}\' WHERE id = $1',
        uuid.UUID(player["user"]["id"]),
    )
    form = {
        "type": "EMAIL",
        "audience": "one",
        "recipient": player["user"]["id"],
        "email_mode": "template",
        "email_template": "verify_email",
        "email_variables": '{"hours": 48, "link": "https://example.com/v"}',
        "email_category": "account",
        "when": "now",
        "priority": "0",
    }
    # Without scripts, the Preview button shows the whole compose page with the preview.
    page = await post_form(browser, "/console/messages/preview", form)
    assert page.status_code == 200
    previews = [
        d for d in parse(page).find("details") if "mail-preview" in d.attrs.get("class", "")
    ]
    assert len(previews) == 2
    shown = text_of(page)
    assert "Confirm your email address" in shown
    assert "Bestätige deine E-Mail-Adresse" in shown and "innerhalb von 48 Stunden" in shown
    german = next(d for d in previews if "German" in d.text)
    assert "this player's version" in " ".join(german.text.split())
    # The form keeps what was typed.
    assert parse(page).one("option", value="verify_email").attrs.get("selected") is not None


async def test_refusals_are_shown_beside_their_fields(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "admin")
    refused = await post_form(
        browser,
        "/console/messages",
        in_app_broadcast(
            in_app_subject="",
            audience="one",
            recipient=unique_email("nobody"),
            when="later",
            scheduled_at="soon",
            priority="1000",
        ),
    )
    assert refused.status_code == 422
    assert field_error(refused, "recipient") == "No account has this email address or id."
    assert "date and time" in field_error(refused, "scheduled_at")
    assert "100" in field_error(refused, "priority")
    summary = parse(refused).one("div", role="alert")
    assert "things need fixing" in summary.text
    # What was typed stays.
    assert parse(refused).one("input", id="f-scheduled_at").attrs["value"] == "soon"
    assert await queued(db) == 0

    # The payload's own rules are the service's: a subject is required for in-app.
    player = await register(client)
    missing = await post_form(
        browser,
        "/console/messages",
        in_app_broadcast(in_app_subject="", audience="one", recipient=player["user"]["email"]),
    )
    assert missing.status_code == 422
    assert "required" in field_error(missing, "in_app_subject").lower()
    bad_json = await post_form(
        browser,
        "/console/messages",
        {
            "type": "EMAIL",
            "audience": "all",
            "email_mode": "template",
            "email_template": "verify_email",
            "email_variables": "[1, 2]",
            "when": "now",
        },
    )
    assert field_error(bad_json, "email_variables").startswith("Must be a JSON object")
    push = await post_form(
        browser,
        "/console/messages",
        {"type": "PUSH", "audience": "all", "push_title": "x" * 301, "when": "now"},
    )
    assert push.status_code == 422
    assert "300" in field_error(push, "push_title")
    assert await queued(db) == 0


async def test_the_queue_filters_by_status_type_and_recipient(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await signed_in(browser, client, db, "admin")
    ada = await register(client, email=unique_email("ada+queue"))
    bob = await register(client)
    for body in (
        {"type": "IN_APP", "recipientUserId": ada["user"]["id"], "payload": {"subject": "to ada"}},
        {"type": "PUSH", "recipientUserId": bob["user"]["id"], "payload": {"title": "to bob"}},
        {"type": "EMAIL", "payload": {"subject": "news for all", "body": "b"}},
    ):
        made = await client.post(ADMIN_API, json=body, headers=bearer(admin))
        assert made.status_code == 201, made.text
    await db.execute(
        "UPDATE messages SET status = 'FAILED', last_error = 'smtp said no' "
        "WHERE payload->>'subject' = 'news for all'"
    )

    everything = text_of(await browser.get("/console/messages"))
    assert all(s in everything for s in ("to ada", "to bob", "news for all", "smtp said no"))
    failed = text_of(await browser.get("/console/messages?status=FAILED&type=EMAIL"))
    assert "news for all" in failed and "to ada" not in failed
    by_type = text_of(await browser.get("/console/messages?type=PUSH"))
    assert "to bob" in by_type and "to ada" not in by_type
    mine = await browser.get("/console/messages", params={"recipient": ada["user"]["email"]})
    assert "to ada" in text_of(mine) and "to bob" not in text_of(mine)
    # The recipient link keeps a `+` in the address (the query is encoded).
    hrefs = [a.attrs.get("href", "") for a in parse(mine).find("a")]
    assert any("recipient=ada%2Bqueue" in h for h in hrefs)
    unknown = text_of(await browser.get("/console/messages?recipient=nobody@example.com"))
    assert "No account has the email address or id" in unknown
    page = parse(await browser.get("/console/messages?status=FAILED"))
    assert page.one("option", value="FAILED").attrs.get("selected") is not None
    for name in ("status", "type", "recipient"):
        assert page.one("label", for_=name)


async def test_retry_a_failed_message_and_cancel_a_waiting_one(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await signed_in(browser, client, db, "admin")
    made = await client.post(
        ADMIN_API,
        json={
            "type": "IN_APP",
            "payload": {"subject": "later"},
            "scheduledAt": "2031-01-01T00:00:00Z",
        },
        headers=bearer(admin),
    )
    message_id = made.json()["id"]
    detail = await browser.get(f"/console/messages/{message_id}")
    assert "Cancel" in [b.text.strip() for b in parse(detail).find("button")]

    cancelled = await post_form(
        browser,
        f"/console/messages/{message_id}/cancel",
        {"next": "/console/messages?status=PENDING"},
    )
    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == "/console/messages?status=PENDING"
    row = await db.fetchrow(
        "SELECT status, last_error FROM messages WHERE id = $1", uuid.UUID(message_id)
    )
    assert row["status"] == "FAILED" and "cancelled by administrator" in row["last_error"]
    assert "Cancelled: the message will not be sent" in text_of(
        await browser.get(cancelled.headers["location"])
    )

    again = await post_form(browser, f"/console/messages/{message_id}/cancel")
    assert again.status_code == 303
    assert "Only a waiting message can be cancelled" in text_of(
        await browser.get(again.headers["location"])
    )

    retried = await post_form(browser, f"/console/messages/{message_id}/retry")
    assert retried.headers["location"] == f"/console/messages/{message_id}"
    assert (
        await db.fetchval("SELECT status FROM messages WHERE id = $1", uuid.UUID(message_id))
        == "PENDING"
    )
    assert "Retrying" in text_of(await browser.get(retried.headers["location"]))
    twice = await post_form(browser, f"/console/messages/{message_id}/retry")
    assert "Only a failed message can be retried" in text_of(
        await browser.get(twice.headers["location"])
    )
    # Somewhere else than the console is not a place to go back to.
    elsewhere = await post_form(
        browser, f"/console/messages/{message_id}/cancel", {"next": "https://evil.example/"}
    )
    assert elsewhere.headers["location"] == "/console"
    missing = await post_form(browser, f"/console/messages/{uuid.uuid4()}/retry")
    assert missing.status_code == 404


async def test_figures_and_the_per_minute_chart(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await signed_in(browser, client, db, "admin")
    for n in range(5):
        made = await client.post(
            ADMIN_API,
            json={"type": "IN_APP", "payload": {"subject": f"m{n}"}},
            headers=bearer(admin),
        )
        assert made.status_code == 201
    now = datetime.now(UTC)
    ids = [
        r["id"] for r in await db.fetch("SELECT id FROM messages WHERE type = 'IN_APP' ORDER BY id")
    ]
    # Two sent this minute, one sent five minutes ago, one failed three minutes ago, one waits.
    await db.execute(
        "UPDATE messages SET status = 'SENT', sent_at = $2 WHERE id = ANY($1)", ids[:2], now
    )
    await db.execute(
        "UPDATE messages SET status = 'SENT', sent_at = $2 WHERE id = $1",
        ids[2],
        now - timedelta(minutes=5),
    )
    await db.execute(
        "UPDATE messages SET status = 'FAILED', updated_at = $2 WHERE id = $1",
        ids[3],
        now - timedelta(minutes=3),
    )

    data = (await browser.get("/console/messages/stats/per-minute")).json()
    assert len(data["x"]) == 60 and data["x"] == sorted(data["x"])
    assert data["x"][-1] - data["x"][0] == 59 * 60
    processed, failed = (s["values"] for s in data["series"])
    assert [s["label"] for s in data["series"]] == ["Processed", "Failed"]
    assert processed[-1] == 2 and processed[-6] == 1 and processed[-4] == 1
    assert failed[-4] == 1 and sum(failed) == 1 and sum(processed) == 4

    page = await browser.get("/console/messages/stats")
    assert page.status_code == 200
    assert_no_inline_code(page)
    chart = next(e for e in parse(page).elements if "data-chart" in e.attrs)
    assert json.loads(chart.attrs["data-chart"]) == data
    assert chart.attrs["role"] == "img" and chart.attrs["aria-label"]
    scripts = [s.attrs["src"] for s in parse(page).find("script")]
    assert any("vendor/uplot/uPlot.iife.min.js" in s for s in scripts)
    shown = text_of(page)
    assert "Sent in the last minute 2" in shown
    hrefs = [a.attrs.get("href") for a in parse(page).find("a")]
    assert "/console/messages?status=FAILED&type=IN_APP" in hrefs
