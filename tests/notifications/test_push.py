"""Web Push end to end: subscriptions through the API, a worker pushing to a push service
on loopback that checks the VAPID signature and decrypts what it receives."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.config import Settings
from gameportal.errors import InvalidField
from gameportal.notifications.push import check_endpoint
from gameportal.notifications.vapid import VapidKeyError, VapidSigner, generate_keys
from tests.conftest import METRICS_AUTH
from tests.factories import bearer, login, register, user_with_roles
from tests.notifications.push_service import PushService, running_push_service
from tests.notifications.support import running_workers, settled

SUBSCRIPTIONS = "/api/v1/me/push-subscriptions"
VAPID = generate_keys()


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {
        "vapid_private_key": VAPID.private_key,
        "vapid_subject": "mailto:ops@example.com",
        "push_allow_http": True,
        "push_endpoint_hosts": ["127.0.0.1"],
    }


@pytest.fixture
def push_service() -> Iterator[PushService]:
    with running_push_service() as service:
        yield service


async def _subscribe(
    client: httpx.AsyncClient, auth: dict[str, Any], subscription: dict[str, Any]
) -> httpx.Response:
    return await client.post(SUBSCRIPTIONS, json=subscription, headers=bearer(auth))


async def _push(
    client: httpx.AsyncClient, admin: dict[str, Any], user_id: str, **payload: object
) -> str:
    response = await client.post(
        "/api/v1/admin/notifications",
        headers=bearer(admin),
        json={
            "type": "PUSH",
            "recipientUserId": user_id,
            "payload": {"title": "Level up!", **payload},
            "maxAttempts": 3,
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _deliver(
    app: FastAPI, database_url: str, db: asyncpg.Pool, status: str, count: int = 1
) -> None:
    """Run a PUSH worker until `count` messages are in `status`."""
    async with running_workers(app, database_url, builtins=True, types=["PUSH"]):
        await settled(db, status, count)


async def test_a_push_reaches_every_live_device_encrypted_and_signed(
    app: FastAPI,
    database_url: str,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    push_service: PushService,
) -> None:
    admin = await user_with_roles(client, db, "admin")
    phone = await register(client)
    laptop = await login(client, phone["user"]["email"])
    ended = await login(client, phone["user"]["email"])
    for auth, name in ((phone, "phone"), (laptop, "laptop"), (ended, "ended")):
        assert (await _subscribe(client, auth, push_service.browser(name)[1])).status_code == 201
    await client.post("/api/v1/auth/logout", headers=bearer(ended))

    message_id = await _push(client, admin, phone["user"]["id"], body="You reached level 10.")
    await _deliver(app, database_url, db, "SENT")

    assert push_service.errors == []
    assert sorted(r.path for r in push_service.received) == ["/push/laptop", "/push/phone"]
    public_key = (await client.get("/api/v1/push/vapid-public-key")).json()["publicKey"]
    for received in push_service.received:
        assert received.payload == {
            "id": message_id,
            "title": "Level up!",
            "body": "You reached level 10.",
            "category": "achievements",
        }
        assert received.claims["aud"] == push_service.base_url
        assert received.claims["sub"] == "mailto:ops@example.com"
        assert received.claims["k"] == public_key
        assert received.headers["urgency"] == "normal"
        assert received.headers["topic"] == uuid.UUID(message_id).hex
    listed = (await client.get(SUBSCRIPTIONS, headers=bearer(phone))).json()["items"]
    assert {item["lastSuccessAt"] is not None for item in listed} == {True}
    metrics = (await client.get("/metrics", headers=METRICS_AUTH)).text
    for series in ("end_to_end_seconds", "latency_seconds"):
        assert f'gameportal_queue_{series}_count{{type="PUSH"}}' in metrics


async def test_gone_devices_are_removed_and_only_the_failed_one_is_retried(
    app: FastAPI,
    database_url: str,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    push_service: PushService,
) -> None:
    admin = await user_with_roles(client, db, "admin")
    user = await register(client)
    devices = {"steady": user}
    devices["gone"] = await login(client, user["user"]["email"])
    devices["flaky"] = await login(client, user["user"]["email"])
    for name, auth in devices.items():
        assert (await _subscribe(client, auth, push_service.browser(name)[1])).status_code == 201
    push_service.script = {"gone": [410], "flaky": [503]}

    await _push(client, admin, user["user"]["id"])
    await _deliver(app, database_url, db, "SENT")

    assert push_service.errors == []
    paths = sorted(r.path for r in push_service.received)
    # The steady device got it once, not again on the retry the flaky one needed.
    assert paths == ["/push/flaky", "/push/flaky", "/push/gone", "/push/steady"]
    message = await db.fetchrow("SELECT retry_count, last_error FROM messages WHERE type = 'PUSH'")
    assert message["retry_count"] == 1
    assert message["last_error"] is None  # cleared once it went through
    endpoints = await db.fetch("SELECT endpoint FROM push_subscriptions")
    assert push_service.endpoint("gone") not in {r["endpoint"] for r in endpoints}
    assert len(endpoints) == 2


async def test_a_push_every_device_refuses_fails_with_the_reason(
    app: FastAPI,
    database_url: str,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    push_service: PushService,
) -> None:
    admin = await user_with_roles(client, db, "admin")
    user = await register(client)
    await _subscribe(client, user, push_service.browser("mismatched")[1])
    push_service.script = {"mismatched": [403]}  # subscribed with another server's key
    await _push(client, admin, user["user"]["id"])
    await _deliver(app, database_url, db, "FAILED")
    message = await db.fetchrow("SELECT retry_count, last_error FROM messages WHERE type = 'PUSH'")
    assert message["retry_count"] == 1  # one attempt of three: retrying cannot help
    assert len(push_service.received) == 1
    assert "HTTP 403" in message["last_error"]
    assert await db.fetchval("SELECT count(*) FROM push_subscriptions") == 1


async def test_an_opted_out_category_is_not_pushed(
    app: FastAPI,
    database_url: str,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    push_service: PushService,
) -> None:
    admin = await user_with_roles(client, db, "admin")
    user = await register(client)
    await _subscribe(client, user, push_service.browser("phone")[1])
    prefs = await client.put(
        "/api/v1/me/notification-preferences",
        headers=bearer(user),
        json={"push": {"marketing": False}},
    )
    assert prefs.status_code == 200, prefs.text
    await _push(client, admin, user["user"]["id"], category="marketing")
    await _push(client, admin, user["user"]["id"], category="transactional")
    await _deliver(app, database_url, db, "SENT", count=2)
    assert [r.payload["category"] for r in push_service.received] == ["transactional"]
    assert push_service.received[0].headers["urgency"] == "high"


async def test_a_push_broadcast_goes_only_to_players_with_a_device(
    app: FastAPI,
    database_url: str,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    push_service: PushService,
) -> None:
    admin = await user_with_roles(client, db, "admin")
    with_devices = [await register(client) for _ in range(2)]
    await register(client)  # no device: no copy at all
    for n, player in enumerate(with_devices):
        await _subscribe(client, player, push_service.browser(f"p{n}")[1])
    created = await client.post(
        "/api/v1/admin/notifications",
        headers=bearer(admin),
        json={"type": "PUSH", "payload": {"title": "Double XP weekend", "category": "marketing"}},
    )
    assert created.status_code == 201, created.text
    await _deliver(app, database_url, db, "SENT", count=3)  # the broadcast and its two copies
    assert sorted(r.path for r in push_service.received) == ["/push/p0", "/push/p1"]
    assert {r.payload["title"] for r in push_service.received} == {"Double XP weekend"}


async def test_subscriptions_belong_to_one_device_session_each(
    client: httpx.AsyncClient, push_service: PushService
) -> None:
    user = await register(client)
    tablet = await login(client, user["user"]["email"])
    _, first = push_service.browser("first")
    _, second = push_service.browser("second")

    created = await _subscribe(client, user, first)
    assert created.status_code == 201, created.text
    assert created.json()["current"] is True
    replaced = await _subscribe(client, user, second)  # the browser changed its endpoint
    assert replaced.status_code == 200
    assert replaced.json()["id"] == created.json()["id"]
    assert replaced.json()["endpoint"] == second["endpoint"]

    # The same browser profile, now logged in as the tablet session: the endpoint moves.
    moved = await _subscribe(client, tablet, second)
    assert moved.status_code == 201
    listed = await client.get(SUBSCRIPTIONS, headers=bearer(user))
    [only] = listed.json()["items"]
    assert only["sessionId"] == moved.json()["sessionId"] != created.json()["sessionId"]
    assert only["current"] is False

    stranger = await register(client)
    gone = await client.delete(f"{SUBSCRIPTIONS}/{only['id']}", headers=bearer(stranger))
    assert gone.status_code == 404
    assert (
        await client.delete(f"{SUBSCRIPTIONS}/{only['id']}", headers=bearer(tablet))
    ).status_code == 204
    assert (await client.get(SUBSCRIPTIONS, headers=bearer(user))).json()["items"] == []
    assert (await client.get(SUBSCRIPTIONS)).status_code == 401


async def test_an_endpoint_moves_to_another_account_only_with_its_keys(
    client: httpx.AsyncClient, db: asyncpg.Pool, push_service: PushService
) -> None:
    owner, attacker = await register(client), await register(client)
    _, subscription = push_service.browser("shared")
    created = await _subscribe(client, owner, subscription)
    assert created.status_code == 201, created.text
    before = await db.fetchrow("SELECT * FROM push_subscriptions")

    _, other_keys = push_service.browser("attackers-own")
    hijack = await _subscribe(client, attacker, {**subscription, "keys": other_keys["keys"]})
    assert hijack.status_code == 409, hijack.text
    assert hijack.headers["content-type"] == "application/problem+json"
    assert hijack.json()["type"].endswith("push-endpoint-taken")
    after = await db.fetchrow("SELECT * FROM push_subscriptions")
    assert dict(after) == dict(before)  # the owner's subscription, untouched
    listed = await client.get(SUBSCRIPTIONS, headers=bearer(owner))
    assert [s["id"] for s in listed.json()["items"]] == [created.json()["id"]]

    # The same browser (same keys), now logged in to the other account: it moves.
    moved = await _subscribe(client, attacker, subscription)
    assert moved.status_code == 201, moved.text
    assert (await client.get(SUBSCRIPTIONS, headers=bearer(owner))).json()["items"] == []
    rows = await db.fetch("SELECT user_id FROM push_subscriptions")
    assert [str(r["user_id"]) for r in rows] == [attacker["user"]["id"]]


async def test_bad_subscriptions_are_refused_naming_the_field(
    client: httpx.AsyncClient, push_service: PushService
) -> None:
    user = await register(client)
    _, good = push_service.browser("phone")
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "keys": {**good["keys"], "p256dh": "A" * 87}}, "keys.p256dh"),
        ({**good, "keys": {**good["keys"], "auth": "short-but-16-chars"}}, "keys.auth"),
        ({**good, "endpoint": "http://10.0.0.7/push/x"}, "endpoint"),
        ({**good, "endpoint": "file:///etc/passwd"}, "endpoint"),
        ({**good, "expirationTime": 1000}, "expirationTime"),
        ({**good, "expirationTime": 10**20}, "expirationTime"),  # past year 9999
        ({**good, "endpoint": good["endpoint"] + "\t"}, "endpoint"),  # urlsplit hides it
        ({**good, "extra": 1}, "extra"),
    ]
    for body, field in cases:
        response = await _subscribe(client, user, body)
        assert response.status_code == 422, (field, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in response.json()["errors"]], response.text


@pytest.mark.parametrize("settings_overrides", [{}])
async def test_without_a_vapid_key_push_routes_say_so(client: httpx.AsyncClient) -> None:
    user = await register(client)
    body = {
        "endpoint": "https://fcm.googleapis.com/fcm/send/x",
        "keys": {"p256dh": "x", "auth": "y"},
    }
    for response in (
        await client.get("/api/v1/push/vapid-public-key"),
        await client.post(SUBSCRIPTIONS, json=body, headers=bearer(user)),
    ):
        assert response.status_code == 503
        assert "VAPID" in response.json()["detail"]


def test_endpoints_must_be_on_a_known_push_service_over_https() -> None:
    settings = Settings()
    check_endpoint(settings, "https://fcm.googleapis.com/fcm/send/abc")
    check_endpoint(settings, "https://updates.push.services.mozilla.com/wpush/v2/abc")
    for bad in (
        "http://fcm.googleapis.com/fcm/send/abc",
        "https://fcm.googleapis.com.evil.example/x",
        "https://evilfcm.googleapis.com.example/x",
        "https://user:pw@fcm.googleapis.com/x",
        "https://127.0.0.1/x",
        "https://fcm.googleapis.com:99999/x",
        "not a url",
    ):
        with pytest.raises(InvalidField):
            check_endpoint(settings, bad)


def test_vapid_tokens_are_reused_per_push_service_and_renewed_before_expiry() -> None:
    signer = VapidSigner(VAPID.private_key, "mailto:ops@example.com")
    now = time.time()
    first = signer.authorization("https://fcm.googleapis.com/fcm/send/a", now)
    assert signer.authorization("https://fcm.googleapis.com/fcm/send/b", now + 60) == first
    assert signer.authorization("https://push.apple.com/x", now) != first
    assert signer.authorization("https://fcm.googleapis.com/x", now + 11.5 * 3600) != first
    with pytest.raises(VapidKeyError):
        VapidSigner("not-a-key", "mailto:ops@example.com")
    with pytest.raises(VapidKeyError):
        VapidSigner(VAPID.private_key, "ops@example.com")


def test_vapid_keys_command_prints_a_usable_pair() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gameportal.cli", "vapid-keys"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    private = out.split("GAMEPORTAL_VAPID_PRIVATE_KEY=")[1].split()[0]
    public = out.rsplit(" ", 1)[1].strip()
    assert VapidSigner(private, "mailto:ops@example.com").public_key == public


async def test_subscriptions_of_ended_sessions_go_when_sessions_are_pruned(
    client: httpx.AsyncClient, db: asyncpg.Pool, push_service: PushService
) -> None:
    user = await register(client)
    await _subscribe(client, user, push_service.browser("phone")[1])
    await client.post("/api/v1/auth/logout", headers=bearer(user))
    await db.execute("DELETE FROM sessions")  # what `gameportal prune` does after retention
    assert await db.fetchval("SELECT count(*) FROM push_subscriptions") == 0
