"""Bad input and hostile clients: each gets a clear problem+json answer, never a 500, never
a partial write."""

from __future__ import annotations

import re

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from gameportal.app import create_app
from gameportal.db import DbSession
from gameportal.notifications.vapid import generate_keys
from tests.conftest import make_settings
from tests.factories import STRONG_PASSWORD, bearer, register, unique_email
from tests.progress.support import new_game

PROBLEM = "application/problem+json"
VAPID = generate_keys()


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


# --- Every route, every field: input that cannot be stored is a 422 naming it --------------

_HOSTILE = {
    "lone surrogate": b'"\\ud800"',
    "NUL in text": b'"a\\u0000b"',
    "NUL in free-form JSON": b'{"k": ["a\\u0000"]}',
    "NUL in a key": b'{"a\\u0000": 1}',
    "surrogate in free-form JSON": b'{"k": "\\udfff"}',
    # Deeper than the JSON encoders accept (orjson: 254) and shallower than the decoder's
    # recursion limit, which already answered 422.
    "nesting past the encoder": b'{"k": ' + b"[" * 300 + b"]" * 300 + b"}",
    "integer past 64 bits": b'{"k": 123456789012345678901234567890}',
    "NaN": b'{"k": NaN}',
}


def _json_body_operations(app: FastAPI) -> list[tuple[str, str, list[str], bool]]:
    """(method, path, top-level fields, called by game servers) of every JSON body route."""
    app.openapi_schema = None
    spec = app.openapi()
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            by_game = any("GameApiKey" in s for s in operation.get("security", []))
            schema = content["application/json"]["schema"]
            for option in schema.get("anyOf", [schema]):
                if "$ref" in option:
                    name = option["$ref"].rsplit("/", 1)[1]
                    fields = list(spec["components"]["schemas"][name]["properties"])
                    found.append((method.upper(), path, fields, by_game))
    return found


def _concrete(path: str, game_id: str) -> str:
    # Any other id: the body is validated before the route looks anything up.
    path = path.replace("{game_id}", game_id)
    return re.sub(r"\{[^}]+\}", "01890000-0000-7000-8000-000000000000", path)


async def test_every_json_body_route_is_covered(app: FastAPI) -> None:
    # The sweep below walks the document; make sure it finds what it should.
    covered = {(method, path) for method, path, _, _ in _json_body_operations(app)}
    assert {
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("PATCH", "/api/v1/me"),
        ("POST", "/api/v1/content"),
        ("POST", "/api/v1/admin/notifications"),
        ("PUT", "/api/v1/me/notification-preferences"),
    } <= covered
    assert len(covered) >= 20


# Web Push configured, so the push routes validate their bodies instead of answering 503.
@pytest.mark.parametrize("settings_overrides", [{"vapid_private_key": VAPID.private_key}])
async def test_unstorable_input_in_any_field_of_any_route_is_422(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    """Every field of every route that takes JSON, as an admin (who may call them all),
    with each kind of input PostgreSQL or the JSON encoder cannot take: never a 500,
    always a 422 that names the field."""
    admin = await register(client)
    await db.execute(
        "UPDATE users SET roles = ARRAY['user','admin','editor'] WHERE email = $1",
        admin["user"]["email"],
    )
    as_admin = {**bearer(admin), "Content-Type": "application/json"}
    game = await new_game(client, bearer(admin))
    as_game = {**game.server, "Content-Type": "application/json"}
    failures = []
    for method, path, fields, by_game in _json_body_operations(app):
        url, headers = _concrete(path, game.id), as_game if by_game else as_admin
        for field in fields:
            for label, value in _HOSTILE.items():
                body = b'{"' + field.encode() + b'": ' + value + b"}"
                response = await client.request(method, url, content=body, headers=headers)
                named = []
                if response.headers.get("content-type") == PROBLEM:
                    named = [e["field"] for e in response.json().get("errors") or []]
                ok = response.status_code == 422 and any(
                    name == field or name.startswith((field + ".", field + "[")) for name in named
                )
                if not ok:
                    failures.append((method, path, field, label, response.status_code, named))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.parametrize(
    ("url", "field", "location"),
    [
        ("/api/v1/content?q=%00", "q", "query"),
        ("/api/v1/content?q=%ED%A0%80", "q", "query"),  # a surrogate, as CESU-8 bytes
        ("/api/v1/content?q=%FF", "q", "query"),
        ("/api/v1/content?tag=ok&tag=%00", "tag", "query"),
        ("/api/v1/content?unknown=%00", "unknown", "query"),
        ("/api/v1/tags?locale=%00", "locale", "query"),
        ("/api/v1/content/news/a%00b", "slug", "path"),
        ("/api/v1/content/news/%ED%A0%80", "slug", "path"),
        ("/api/v1/media/01890000-0000-7000-8000-000000000000/renditions/%00", "name", "path"),
        ("/api/v1/me?x=%00", "x", "query"),  # a route answered without FastAPI's machinery
    ],
)
async def test_unreadable_parameters_are_422_naming_them(
    client: httpx.AsyncClient, url: str, field: str, location: str
) -> None:
    body = _is_problem(await client.get(url), 422)
    assert [(e["field"], e["location"]) for e in body["errors"]] == [(field, location)]  # type: ignore[attr-defined]


async def test_unreadable_parameters_on_the_hot_paths(client: httpx.AsyncClient) -> None:
    data = await register(client)
    for url in ("/api/v1/auth/login?x=%00", "/api/v1/auth/refresh?x=%ED%A0%80"):
        response = await client.post(url, json={"refreshToken": "x", "email": "a@b.co"})
        problem = _is_problem(response, 422)
        assert problem["errors"][0]["field"] == "x"  # type: ignore[index]
    me = await client.get("/api/v1/me", headers=bearer(data))
    assert me.status_code == 200  # the check costs nothing to a plain request


@pytest.mark.parametrize("label", list(_HOSTILE))
async def test_unstorable_values_where_they_gave_500(
    client: httpx.AsyncClient, db: asyncpg.Pool, label: str
) -> None:
    """Whole, otherwise valid bodies with the value where the service would store it
    (free-form template variables, a content's tags): each of these answered 500."""
    admin = await register(client)
    await db.execute(
        "UPDATE users SET roles = ARRAY['user','admin','editor'] WHERE email = $1",
        admin["user"]["email"],
    )
    headers = {**bearer(admin), "Content-Type": "application/json"}
    value = _HOSTILE[label]
    queued = await db.fetchval("SELECT count(*) FROM messages")  # the verification mail
    mail = (
        b'{"type": "EMAIL", "payload": {"subject": "s", "body": "b", "variables": {"v": '
        + value
        + b"}}}"
    )
    response = await client.post("/api/v1/admin/notifications", content=mail, headers=headers)
    problem = _is_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == ["payload"]  # type: ignore[attr-defined]
    assert "variables.v" in problem["errors"][0]["message"]  # type: ignore[index]
    assert await db.fetchval("SELECT count(*) FROM messages") == queued
    if value.startswith(b'"'):  # a string: as a tag
        item = b'{"type": "NEWS", "title": "t", "content": "x", "tags": [' + value + b"]}"
        response = await client.post("/api/v1/content", content=item, headers=headers)
        problem = _is_problem(response, 422)
        assert [e["field"] for e in problem["errors"]] == ["tags"]  # type: ignore[attr-defined]
