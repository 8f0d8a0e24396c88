from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.conftest import METRICS_AUTH
from tests.factories import bearer, register, user_with_roles

URL = "/api/v1/admin/notifications"


async def test_admin_queues_inspects_cancels_and_retries(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await user_with_roles(client, db, "admin")
    player = await register(client)
    created = await client.post(
        URL,
        headers=bearer(admin),
        json={
            "type": "IN_APP",
            "recipientUserId": player["user"]["id"],
            "payload": {"subject": "Season 3", "body": "New maps."},
            "scheduledAt": "2030-01-01T00:00:00Z",
            "priority": 5,
        },
    )
    assert created.status_code == 201, created.text
    message = created.json()
    assert message["status"] == "PENDING"
    assert message["scheduledAt"] == "2030-01-01T00:00:00Z"
    assert message["payload"] == {
        "subject": "Season 3",
        "body": "New maps.",
        "category": "achievements",
    }

    got = await client.get(f"{URL}/{message['id']}", headers=bearer(admin))
    assert got.json()["id"] == message["id"]

    cancelled = await client.delete(f"{URL}/{message['id']}", headers=bearer(admin))
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "FAILED"
    assert "cancelled by administrator" in cancelled.json()["lastError"]
    again = await client.delete(f"{URL}/{message['id']}", headers=bearer(admin))
    assert again.status_code == 409

    retried = await client.post(f"{URL}/{message['id']}/retry", headers=bearer(admin))
    assert retried.status_code == 200
    assert retried.json()["status"] == "PENDING" and retried.json()["retryCount"] == 0
    assert (
        await client.post(f"{URL}/{message['id']}/retry", headers=bearer(admin))
    ).status_code == 409
    assert (await client.get(f"{URL}/{uuid.uuid4()}", headers=bearer(admin))).status_code == 404
    assert (
        await db.fetchval("SELECT count(*) FROM messages WHERE type = 'IN_APP'") == 1
    )  # nothing deleted


async def test_list_filters_and_paginates(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    admin = await user_with_roles(client, db, "admin")
    for n in range(3):
        await client.post(
            URL, headers=bearer(admin), json={"type": "IN_APP", "payload": {"subject": f"b{n}"}}
        )
    await client.post(
        URL,
        headers=bearer(admin),
        json={"type": "PUSH", "recipientUserId": admin["user"]["id"], "payload": {"title": "t"}},
    )
    page = (
        await client.get(URL, params={"type": "IN_APP", "limit": 2}, headers=bearer(admin))
    ).json()
    assert [m["payload"]["subject"] for m in page["items"]] == ["b2", "b1"]
    rest = (
        await client.get(
            URL, params={"type": "IN_APP", "cursor": page["nextCursor"]}, headers=bearer(admin)
        )
    ).json()
    assert [m["payload"]["subject"] for m in rest["items"]] == ["b0"]
    assert rest["nextCursor"] is None
    bad = await client.get(URL, params={"status": "LOST"}, headers=bearer(admin))
    assert bad.status_code == 422

    stats = (await client.get(f"{URL}/stats", headers=bearer(admin))).json()
    counts = {(c["type"], c["status"]): c["count"] for c in stats["counts"]}
    # (and the admin's own verification mail, queued at registration)
    assert counts == {("IN_APP", "PENDING"): 3, ("PUSH", "PENDING"): 1, ("EMAIL", "PENDING"): 1}
    assert stats["oldestDueSeconds"] >= 0
    assert stats["sentLastMinute"] == 0


async def test_bad_messages_are_field_errors(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    admin = await user_with_roles(client, db, "admin")
    unknown_user = await client.post(
        URL,
        headers=bearer(admin),
        json={"type": "IN_APP", "recipientUserId": str(uuid.uuid4()), "payload": {"subject": "x"}},
    )
    assert unknown_user.status_code == 422
    assert unknown_user.json()["errors"][0]["field"] == "recipientUserId"
    bad_payload = await client.post(
        URL,
        headers=bearer(admin),
        json={
            "type": "EMAIL",
            "recipientUserId": admin["user"]["id"],
            "payload": {"subject": 7, "x": 1},
        },
    )
    assert bad_payload.status_code == 422
    assert sorted(e["field"] for e in bad_payload.json()["errors"]) == [
        "payload.subject",
        "payload.x",
    ]
    bad_type = await client.post(URL, headers=bearer(admin), json={"type": "FAX", "payload": {}})
    assert bad_type.status_code == 422
    assert await db.fetchval("SELECT count(*) FROM messages WHERE NOT (payload ? 'template')") == 0


async def test_metrics_show_queue_depth(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    admin = await user_with_roles(client, db, "admin")
    for _ in range(2):
        await client.post(
            URL,
            headers=bearer(admin),
            json={
                "type": "PUSH",
                "recipientUserId": admin["user"]["id"],
                "payload": {"title": "t"},
            },
        )
    text = (await client.get("/metrics", headers=METRICS_AUTH)).text
    assert 'gameportal_queue_depth{status="PENDING",type="PUSH"} 2.0' in text
    assert 'gameportal_queue_depth{status="PROCESSING",type="EMAIL"} 0.0' in text


async def test_numbers_are_not_booleans(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    # The schema says integer: `"priority": false` is a client's bug, not priority 0 (it was
    # taken as 0; the conformance run found it once the document had an example body).
    admin = await user_with_roles(client, db, "admin")
    for field, value in [("priority", False), ("priority", True), ("maxAttempts", True)]:
        response = await client.post(
            URL,
            headers=bearer(admin),
            json={"type": "IN_APP", "payload": {"subject": "x"}, field: value},
        )
        assert response.status_code == 422, (field, value, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field]
