"""The hot paths answered without FastAPI's machinery give what the declared routes gave:
the response model's exact bytes, the same errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx
import jwt
import orjson
import pytest
from pydantic import ValidationError

from gameportal.identity.schemas import (
    RefreshRequest,
    TokenResponse,
    UserRead,
    plain_refresh_token,
    token_response_json,
    user_read_json,
)
from gameportal.identity.tokens import AccessTokens
from tests.conftest import make_settings
from tests.factories import STRONG_PASSWORD, bearer, register


def _model_bytes(user: dict[str, Any]) -> bytes:
    # What FastAPI sent for the response model: the model's JSON by alias.
    return UserRead.model_validate(user).model_dump_json(by_alias=True).encode()


def _user(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": uuid.UUID("01890000-0000-7000-8000-000000000001"),
        "email": "player@example.com",
        "name": "Player One",
        "created_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "last_login_at": None,
        "is_blocked": False,
        "country": "DE",
        "roles": ["user"],
        "preferences": {},
        "email_verified_at": None,
    }
    return {**base, **changes}


ODD_TEXT = "".join(chr(c) for c in range(0, 0x80)) + "é✓\u2028\u2029😀\ufeff"


@pytest.mark.parametrize(
    "user",
    [
        _user(),
        _user(created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),  # no microseconds
        _user(created_at=datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)),
        _user(created_at=datetime(2026, 1, 2, 3, 4, 5, 1)),  # naive: taken as UTC
        _user(created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-7)))),
        _user(last_login_at=datetime(1, 1, 1, tzinfo=UTC)),
        _user(email_verified_at=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        _user(name=ODD_TEXT, email='"quoted"\\@example.com'),
        _user(country=None, roles=["user", "admin", "editor", "marketer"], is_blocked=True),
        _user(roles=[]),
        _user(preferences={"language": "pt-BR", "theme": "dark", "other": [1, 2]}),
        _user(preferences={"theme": "system"}),
        {k: v for k, v in _user().items() if k != "email_verified_at"},
    ],
)
def test_user_json_is_the_models_bytes(user: dict[str, Any]) -> None:
    assert user_read_json(user) == _model_bytes(user)


@pytest.mark.parametrize(
    "user",
    [
        _user(preferences={"theme": "neon"}),
        _user(roles=["user", "root"]),
        _user(preferences={"language": 5}),
        _user(name=None),
        _user(created_at="yesterday"),
        _user(created_at=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))),
        {k: v for k, v in _user().items() if k != "roles"},
    ],
)
def test_user_json_refuses_what_the_model_refuses(user: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _model_bytes(user)
    with pytest.raises(ValidationError):
        user_read_json(user)


def test_user_json_fuzzed_text_matches_the_model() -> None:
    import random

    rng = random.Random(7)
    alphabet = [chr(c) for c in range(0, 0x300)] + [
        "\u2028",
        "\ud7ff",
        "\ue000",
        "😀",
        "\U0010ffff",
    ]
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        user = _user(name=text, email=text, country=text or None)
        assert user_read_json(user) == _model_bytes(user)


async def test_get_me_answers_the_users_model(client: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    data = await register(client)
    await db.execute(
        "UPDATE users SET preferences = $2, email_verified_at = now(), country = 'FR' "
        "WHERE id = $1",
        uuid.UUID(data["user"]["id"]),
        {"language": "fr", "theme": "light", "legacy": True},
    )
    response = await client.get("/api/v1/me", headers=bearer(data))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    row = await db.fetchrow(
        "SELECT id, email, name, created_at, last_login_at, is_blocked, country, roles, "
        "preferences, email_verified_at FROM users WHERE id = $1",
        uuid.UUID(data["user"]["id"]),
    )
    assert response.content == _model_bytes(dict(row))


async def test_get_me_errors_are_unchanged(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/me")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.headers["x-request-id"]
    garbage = await client.get("/api/v1/me", headers={"Authorization": "Bearer nonsense"})
    assert garbage.status_code == 401
    assert garbage.json()["detail"] == "the access token is invalid"
    basic = await client.get("/api/v1/me", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401


async def test_get_me_is_still_documented(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    me = spec["paths"]["/api/v1/me"]["get"]
    assert me["security"] == [{"AccessToken": []}]
    assert me["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UserRead"
    }
    assert "401" in me["responses"]


# --- refresh -----------------------------------------------------------------------------


def test_token_json_is_the_models_bytes() -> None:
    for access, refresh, expires in [("a.b.c", "r" * 43, 900), ('é"\\', "\u2028", 0)]:
        model = TokenResponse(access_token=access, refresh_token=refresh, expires_in=expires)
        assert token_response_json(access, refresh, expires) == (
            model.model_dump_json(by_alias=True).encode()
        )


@pytest.mark.parametrize(
    ("content_type", "body", "taken"),
    [
        ("application/json", b'{"refreshToken":"abc"}', "abc"),
        ("application/json", b' {"refreshToken" : "x\\u00e9"} ', "x\u00e9"),
        ("application/json", b'{"refreshToken":"' + b"t" * 256 + b'"}', "t" * 256),
        ("application/json", b'{"refreshToken":"' + b"t" * 257 + b'"}', None),
        ("application/json", b'{"refreshToken":""}', None),
        ("application/json", b'{"refreshToken":"a\\u0000b"}', None),
        ("application/json", b'{"refreshToken":5}', None),
        ("application/json", b'{"refresh_token":"abc"}', None),  # the model takes it: route
        ("application/json", b'{"refreshToken":"abc","extra":1}', None),
        ("application/json", b'["abc"]', None),
        ("application/json", b"{", None),
        ("application/json", b'{"refreshToken":"\\ud800"}', None),
        ("application/json", b"", None),
        ("application/json; charset=utf-8", b'{"refreshToken":"abc"}', None),
        ("text/plain", b'{"refreshToken":"abc"}', None),
        (None, b'{"refreshToken":"abc"}', None),
    ],
)
def test_plain_refresh_bodies(content_type: str | None, body: bytes, taken: str | None) -> None:
    assert plain_refresh_token(content_type, body) == taken
    if taken is not None:  # what the fast path takes, the model takes the same way
        assert RefreshRequest.model_validate_json(body).refresh_token == taken


async def test_refresh_answers_the_models_bytes(client: httpx.AsyncClient) -> None:
    data = await register(client)
    response = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    fresh = response.json()
    expected = TokenResponse(
        access_token=fresh["accessToken"],
        refresh_token=fresh["refreshToken"],
        expires_in=fresh["expiresIn"],
    )
    assert response.content == expected.model_dump_json(by_alias=True).encode()
    assert (await client.get("/api/v1/me", headers=bearer(fresh))).status_code == 200


async def test_refresh_bodies_the_fast_path_leaves_are_answered_as_declared(
    client: httpx.AsyncClient,
) -> None:
    data = await register(client)
    # Valid for the model, not for the fast path: the declared route answers, and rotates.
    by_name = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": data["refreshToken"]}
    )
    assert by_name.status_code == 200, by_name.text
    charset = await client.post(
        "/api/v1/auth/refresh",
        content=orjson.dumps({"refreshToken": by_name.json()["refreshToken"]}),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200, charset.text
    extra = await client.post("/api/v1/auth/refresh", json={"refreshToken": "abc", "other": 1})
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["field"] == "other"
    empty = await client.post("/api/v1/auth/refresh", json={"refreshToken": ""})
    assert empty.status_code == 422
    assert empty.json()["errors"][0]["field"] == "refreshToken"
    garbage = await client.post(
        "/api/v1/auth/refresh", content=b"{", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 422
    too_big = await client.post(
        "/api/v1/auth/refresh",
        content=b'{"refreshToken":"' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={"content-type": "application/json"},
    )
    assert too_big.status_code == 413


def test_issued_tokens_are_pyjwts_bytes() -> None:
    settings = make_settings("postgresql://unused@127.0.0.1:1/unused")
    tokens = AccessTokens(settings)
    now = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    token = tokens.issue(
        user_id=uuid.uuid4(), session_id=uuid.uuid4(), roles=["user", "admin"], now=now
    )
    claims = jwt.decode(
        token,
        settings.secret_key,
        algorithms=["HS256"],
        audience=settings.jwt_audience,
        options={"verify_exp": False},
    )
    assert jwt.encode(claims, settings.secret_key, algorithm="HS256") == token
    assert claims["roles"] == ["user", "admin"]
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl_seconds


def _session(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "01890000-0000-7000-8000-000000000002",
        "user_id": "01890000-0000-7000-8000-000000000001",
        "ip": "8.8.8.8",
        "country": "US",
        "user_agent": "Mozilla/5.0",
        "device_type": "DESKTOP",
        "fingerprint": None,
        "created_at": "2026-11-27T10:00:00.123456+00:00",  # as to_jsonb() writes times
        "last_used_at": "2026-11-27T12:00:00+02:00",
        "expires_at": datetime(2026, 12, 27, 10, 0, tzinfo=UTC),
        "refresh_token_hash": "never shown",
    }
    return {**base, **changes}


@pytest.mark.parametrize(
    "session",
    [
        _session(),
        _session(ip=None, country=None, user_agent=None, fingerprint="fp"),
        _session(user_agent=ODD_TEXT, device_type="MOBILE"),
        _session(created_at="2026-11-27T10:00:00", ip="2001:db8::1"),  # naive: UTC
    ],
)
def test_session_json_is_the_models_bytes(session: dict[str, Any]) -> None:
    from gameportal.identity.schemas import SessionRead, session_read_json

    model = SessionRead.model_validate(session).model_copy(update={"current": True})
    assert session_read_json(session, current=True) == model.model_dump_json(by_alias=True).encode()


def test_user_json_takes_times_as_to_jsonb_writes_them() -> None:
    user = _user(created_at="2026-11-27T10:00:00.5+01:00", last_login_at="2026-11-27T09:00:00")
    assert user_read_json(user) == _model_bytes(user)


async def test_login_answers_the_models_bytes(client: httpx.AsyncClient) -> None:
    from gameportal.identity.schemas import AuthResponse

    data = await register(client)
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": data["user"]["email"], "password": data["password"], "fingerprint": "f1"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    model = AuthResponse.model_validate(response.json())
    assert response.content == model.model_dump_json(by_alias=True).encode()
    assert model.session.current is True
    assert model.session.fingerprint == "f1"
    assert model.device_token  # for this device's next logins (test_device_tokens.py)
    assert (await client.get("/api/v1/me", headers=bearer(response.json()))).status_code == 200


async def test_login_bodies_the_fast_path_leaves_are_answered_as_declared(
    client: httpx.AsyncClient,
) -> None:
    data = await register(client)
    charset = await client.post(
        "/api/v1/auth/login",
        content=orjson.dumps({"email": data["user"]["email"], "password": data["password"]}),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200, charset.text
    bad_email = await client.post(
        "/api/v1/auth/login", json={"email": "not-an-email", "password": "whatever-1234"}
    )
    assert bad_email.status_code == 422
    assert bad_email.json()["errors"][0]["field"] == "email"
    extra = await client.post(
        "/api/v1/auth/login", json={"email": "a@example.com", "password": "x" * 8, "admin": True}
    )
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["field"] == "admin"
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": data["user"]["email"], "password": "wrong-password-1"}
    )
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"


async def test_rows_from_the_database_take_the_hand_built_path(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncpg hands ids as its own UUID subclass, which orjson refuses: the hand-built
    # answers fell back to their models on every request (a fifth of GET /me) unnoticed,
    # since the answers were the same. Here the models may not be used at all.
    from gameportal.identity.schemas import SessionRead

    data = await register(client)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model was used instead of the hand-built JSON")

    monkeypatch.setattr(UserRead, "model_validate", refuse)
    monkeypatch.setattr(SessionRead, "model_validate", refuse)
    me = await client.get("/api/v1/me", headers=bearer(data))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == data["user"]["id"]
    login = await client.post(
        "/api/v1/auth/login", json={"email": data["user"]["email"], "password": STRONG_PASSWORD}
    )
    assert login.status_code == 200, login.text
