"""Bad input and hostile clients: each gets a clear problem+json answer, never a 500, never
a partial write."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from gameportal.app import create_app
from gameportal.db import DbSession
from tests.conftest import make_settings
from tests.factories import STRONG_PASSWORD, bearer, register, unique_email

PROBLEM = "application/problem+json"


def _is_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert str(body["type"]).startswith("urn:gameportal:problem:")
    assert body["title"]
    return body


async def test_malformed_json(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        content=b'{"email": "a@example.com", "password": ',
        headers={"Content-Type": "application/json"},
    )
    body = _is_problem(response, 422)
    assert body["errors"][0]["field"] == "body"  # type: ignore[index]
    assert "malformed JSON at character" in body["errors"][0]["message"]  # type: ignore[index]
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_wrong_types_name_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"email": 42, "password": ["x"], "name": {"a": 1}}
    )
    body = _is_problem(response, 422)
    fields = {e["field"] for e in body["errors"]}  # type: ignore[attr-defined]
    assert fields == {"email", "password", "name"}


async def test_unknown_fields_are_refused(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "email": unique_email(),
            "password": STRONG_PASSWORD,
            "name": "X",
            "roles": ["admin"],
        },
    )
    body = _is_problem(response, 422)
    assert body["errors"] == [  # the classic privilege-escalation field is named, not ignored
        {
            "field": "roles",
            "location": "body",
            "message": "Extra inputs are not permitted",
            "code": "extra_forbidden",
        }
    ]
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_overlong_strings_and_invalid_email(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "not-an-email", "password": STRONG_PASSWORD, "name": "n" * 101},
    )
    body = _is_problem(response, 422)
    codes = {e["field"]: e["code"] for e in body["errors"]}  # type: ignore[attr-defined]
    assert codes == {"email": "value_error", "name": "string_too_long"}
    huge_token = await client.post("/api/v1/auth/refresh", json={"refreshToken": "x" * 5000})
    _is_problem(huge_token, 422)


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    blob = "a" * (1024 * 1024 + 10)
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": unique_email(), "password": STRONG_PASSWORD, "name": blob},
    )
    _is_problem(response, 413)


async def test_oversized_chunked_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 100_000

    response = await client.post(
        "/api/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
    )
    _is_problem(response, 413)


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    _is_problem(await client.get("/api/v1/nothing-here"), 404)
    body = _is_problem(await client.get("/api/v1/auth/login"), 405)
    assert "GET" in str(body["detail"])


async def test_missing_or_wrong_auth_is_401(client: httpx.AsyncClient) -> None:
    _is_problem(await client.get("/api/v1/me"), 401)
    _is_problem(await client.get("/api/v1/me", headers={"Authorization": "Basic abc"}), 401)


async def test_unhandled_error_is_500_without_internals(
    database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    app = _app_with_failing_routes(database_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.get("/boom", headers={"X-Request-ID": "trace-me-1"})
            sql = await c.get("/boom-sql", headers={"X-Request-ID": "trace-me-2"})
    for failed in (response, sql):
        body = _is_problem(failed, 500)
        assert "Traceback" not in failed.text and "secret-internal-detail" not in failed.text
        assert body["detail"]
    # The answer and the log line carry the same request id, so a report can be traced.
    assert response.headers["x-request-id"] == "trace-me-1"
    logs = capfd.readouterr().err
    lines = [line for line in logs.splitlines() if "unhandled_error" in line]
    assert any('"request_id":"trace-me-1"' in line for line in lines), logs
    assert any('"request_id":"trace-me-2"' in line for line in lines), logs
    # A failing statement's bound values (here standing in for a password hash) stay out.
    assert "argon2-hash-stand-in" not in logs


def _app_with_failing_routes(database_url: str) -> FastAPI:
    app = create_app(make_settings(database_url))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret-internal-detail")

    @app.get("/boom-sql")
    async def boom_sql(session: DbSession) -> None:
        await session.execute(
            text("SELECT 1 / 0 WHERE :h IS NOT NULL"), {"h": "argon2-hash-stand-in"}
        )

    return app


async def test_spoofed_forwarded_for_from_untrusted_peer_is_ignored(
    client: httpx.AsyncClient,
) -> None:
    data = await register(client, headers={"X-Forwarded-For": "1.1.1.1"})
    assert data["session"]["ip"] == "8.8.8.8"  # the real peer, not the claim
    assert data["user"]["country"] == "US"


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": ["8.8.8.0/24"]}])
async def test_forwarded_for_from_trusted_proxy_is_honoured(client: httpx.AsyncClient) -> None:
    # The right-most untrusted hop is the client; what it claims further left is ignored.
    data = await register(client, headers={"X-Forwarded-For": "9.9.9.9, 81.2.69.160"})
    assert data["session"]["ip"] == "81.2.69.160"
    assert data["session"]["country"] == "GB"


async def test_other_users_ids_are_404_not_403(client: httpx.AsyncClient) -> None:
    alice = await register(client)
    bob = await register(client)
    response = await client.delete(
        f"/api/v1/me/sessions/{alice['session']['id']}", headers=bearer(bob)
    )
    _is_problem(response, 404)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "a\u0000b"),
        ("fingerprint", "fp\u0000"),
        ("name", "evil\u202egnp.exe"),  # right-to-left override
        ("name", "zero\u200bwidth"),
        ("name", "bell\u0007"),
    ],
)
async def test_nul_and_invisible_characters_are_field_errors(
    client: httpx.AsyncClient, db: asyncpg.Pool, field: str, value: str
) -> None:
    body = {"email": unique_email(), "password": STRONG_PASSWORD, "name": "Fine", field: value}
    response = await client.post("/api/v1/auth/register", json=body)
    problem = _is_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == [field]  # type: ignore[attr-defined]
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_nul_in_every_text_input_is_422(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    data = await register(client)
    login = await client.post(
        "/api/v1/auth/login",
        json={
            "email": data["user"]["email"],
            "password": STRONG_PASSWORD,
            "fingerprint": "a\u0000",
        },
    )
    _is_problem(login, 422)
    patch = await client.patch("/api/v1/me", json={"name": "x\u0000"}, headers=bearer(data))
    _is_problem(patch, 422)
    await db.execute(
        "UPDATE users SET roles = ARRAY['user','admin'] WHERE email = $1", data["user"]["email"]
    )
    search = await client.get(
        "/api/v1/admin/users", params={"emailPrefix": "a\u0000"}, headers=bearer(data)
    )
    _is_problem(search, 422)


async def test_blocking_needs_a_real_boolean(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    admin = await register(client)
    await db.execute(
        "UPDATE users SET roles = ARRAY['user','admin'] WHERE email = $1", admin["user"]["email"]
    )
    player = await register(client)
    for value in ("yes", 1, "true"):
        response = await client.patch(
            f"/api/v1/admin/users/{player['user']['id']}",
            json={"isBlocked": value},
            headers=bearer(admin),
        )
        _is_problem(response, 422)
    assert await db.fetchval("SELECT count(*) FROM users WHERE is_blocked") == 0


@pytest.mark.parametrize(
    "raw",
    [
        b'{"email": "a@example.com", "password": "\xff\xfe", "name": "x"}',  # not UTF-8
        b"[" * 5000 + b"]" * 5000,  # nesting past the recursion limit
        b'{"email": ' + b"9" * 5000 + b"}",  # an integer past Python's digit limit
    ],
)
async def test_undecodable_bodies_are_422_like_malformed_json(
    client: httpx.AsyncClient, raw: bytes
) -> None:
    response = await client.post(
        "/api/v1/auth/register", content=raw, headers={"Content-Type": "application/json"}
    )
    body = _is_problem(response, 422)
    assert body["errors"][0]["field"] == "body"  # type: ignore[index]
    assert body["errors"][0]["code"] == "json_invalid"  # type: ignore[index]
