"""POST /auth/password-reset/request must not tell, by its timing, whether an address has
an account: the answer goes out before the address is looked up, the same for every
address, and the work (a lookup, and for an account a token and a queued mail) follows.

Checked deterministically: the database statements run before the answer's last byte is
sent are recorded for an address with an account and one without, and must be the same
(none). Timing itself is measured outside the suite (it would flake on a shared machine)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from tests.conftest import PLAYER_IP
from tests.factories import register


class Recorder:
    """Every statement the app sends to the database, through the ORM or the asyncpg pool."""

    def __init__(self, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[str] = []
        db = app.state.db
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._orm)
        self._engine = db.engine.sync_engine
        pool_class = type(db.pool)  # asyncpg's pool has slots: patched on its class
        for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval", "acquire"):
            monkeypatch.setattr(pool_class, name, self._wrap(name, getattr(pool_class, name)))

    def _orm(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        self.statements.append(statement)

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(pool: object, *args: Any, **kwargs: Any) -> Any:
            self.statements.append(f"pool.{name}: {args[0] if args else ''}")
            return method(pool, *args, **kwargs)

        return recorded

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._orm)


async def _ask(app: FastAPI, recorder: Recorder, email: str) -> tuple[list[str], bytes, int]:
    """Statements run by the time the answer's last byte is sent, the answer's bytes (head
    and body, less the request id), and its status."""
    body = orjson.dumps({"email": email})
    sent: list[bytes] = []
    at_answer: list[str] | None = None
    status = 0
    received = False
    before = len(recorder.statements)

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal at_answer, status
        if message["type"] == "http.response.start":
            status = message["status"]
            sent.extend(b"%s: %s" % h for h in message["headers"] if h[0] != b"x-request-id")
        elif message["type"] == "http.response.body":
            sent.append(message.get("body", b""))
            if not message.get("more_body") and at_answer is None:
                at_answer = recorder.statements[before:]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/password-reset/request",
        "raw_path": b"/api/v1/auth/password-reset/request",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": (PLAYER_IP, 40000),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    assert at_answer is not None
    return at_answer, b"\n".join(sent), status


async def test_the_answer_is_sent_before_the_address_is_looked_up(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await register(client)
    queued = "SELECT count(*) FROM messages WHERE payload->>'template' = 'password_reset'"
    recorder = Recorder(app, monkeypatch)
    try:
        known = await _ask(app, recorder, user["user"]["email"])
        unknown = await _ask(app, recorder, "nobody@example.com")
    finally:
        recorder.close()

    assert known[2] == unknown[2] == 202
    assert known[0] == unknown[0] == []  # no statement before the answer, either way
    assert known[1] == unknown[1]  # byte for byte the same answer
    # The work was done after the answer: a mail for the account, nothing for the other.
    assert await db.fetchval(queued) == 1
    statements = recorder.statements
    assert any("account_tokens" in s for s in statements)


async def test_a_failure_after_the_answer_is_logged_without_the_address(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, capfd: pytest.CaptureFixture[str]
) -> None:
    user = await register(client)
    await db.execute("ALTER TABLE account_tokens RENAME TO account_tokens_away")
    try:
        answer = await client.post(
            "/api/v1/auth/password-reset/request", json={"email": user["user"]["email"]}
        )
    finally:
        await db.execute("ALTER TABLE account_tokens_away RENAME TO account_tokens")
    assert answer.status_code == 202
    logged = capfd.readouterr()
    assert "password_reset_request_failed" in logged.out + logged.err
    assert user["user"]["email"] not in logged.out + logged.err
