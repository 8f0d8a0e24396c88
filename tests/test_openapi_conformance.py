"""The whole OpenAPI document, checked against the running API by schemathesis.

Every operation is called as each kind of caller (anonymous, player, editor, admin) with
examples generated from the schema: valid ones, boundary values and schema-violating ones.
Every check runs (no server errors, documented status codes, content types, headers and
response bodies, schema-valid requests accepted, schema-violating ones refused, `Allow` on
405s, auth not ignored). The API runs on a real uvicorn on loopback, as in production; each
(operation, caller) pair is its own test, so xdist spreads them.

To reproduce a failure by hand, run the same over a served portal:
`st run http://127.0.0.1:8000/openapi.json --checks all -H 'Authorization: Bearer …'`.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gameportal.app import create_app
from gameportal.notifications.vapid import generate_keys
from tests.conftest import make_settings, with_database
from tests.factories import STRONG_PASSWORD, bearer, unique_email, user_with_roles
from tests.net import free_port
from tests.s3_server import S3Server, running_s3_server

MAX_EXAMPLES = 10  # per operation and caller, for the fuzzing phase
ROLES = ("anonymous", "user", "editor", "admin")
VAPID = generate_keys()


def _settings(database_url: str, s3: S3Server | None = None) -> Any:
    storage: dict[str, object] = {}
    if s3 is not None:
        storage = {
            "media_storage": "s3",
            "s3_bucket": s3.bucket,
            "s3_endpoint_url": s3.endpoint_url,
            "s3_region": s3.region,
            "s3_access_key_id": s3.access_key,
            "s3_secret_access_key": s3.secret_key,
        }
    return make_settings(
        database_url,
        # Every feature on, as in production: without a VAPID key the push routes, and
        # without S3 the direct-upload routes, answer a (documented) 503.
        vapid_private_key=VAPID.private_key,
        **storage,
        # The test registers its callers through the API, each from its own address (a
        # registration throttle counts per address); the loopback peer is the proxy.
        trusted_proxies=["127.0.0.1/32"],
        access_token_ttl_seconds=3600,
    )


# The document the app serves, built without a database (nothing connects before start).
SPEC = create_app(_settings("postgresql://unused@127.0.0.1:1/unused")).openapi()

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20260101,
        "checks": {"enabled": True},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "database": "none",
            # No NUL in generated text: the API refuses it in every string, as the
            # document's description says (JSON Schema has no keyword for "every string");
            # tests/test_hostile_input.py sends it to every route instead.
            "allow-x00": False,
        },
    }
)
schema = schemathesis.openapi.from_dict(SPEC, config=CONFIG).exclude(
    # The live stream never ends: a call waits for events forever. It has its own tests
    # over a real server (tests/notifications/test_live.py).
    path="/api/v1/me/notifications/stream"
)

# Operations whose success ends the caller's session or account: they get a caller of
# their own for each test, so no other test loses its token.
_SPENDS_CALLER = {
    ("POST", "/api/v1/auth/logout"),
    ("DELETE", "/api/v1/me"),
    ("DELETE", "/api/v1/me/sessions"),
    ("POST", "/api/v1/me/password"),
}


@dataclass
class Portal:
    url: str
    database_url: str
    # role, or (role, method, path) for an operation that spends its caller -> token
    tokens: dict[object, str] = field(default_factory=dict)
    _addresses: Iterator[int] = field(default_factory=lambda: iter(range(1, 255)))

    def caller(self, role: str) -> str:
        """A new account holding `role`, logged in: its access token."""
        address = f"203.0.113.{next(self._addresses)}"
        response = httpx.post(
            f"{self.url}/api/v1/auth/register",
            json={"email": unique_email(role), "password": STRONG_PASSWORD, "name": role},
            headers={"X-Forwarded-For": address},
        )
        assert response.status_code == 201, response.text
        data = response.json()
        if role != "user":

            async def grant() -> None:
                conn = await asyncpg.connect(self.database_url)
                try:
                    await conn.execute(
                        "UPDATE users SET roles = $2 WHERE id = $1::uuid",
                        data["user"]["id"],
                        ["user", role],
                    )
                finally:
                    await conn.close()

            asyncio.run(grant())
        token: str = data["accessToken"]
        return token

    def headers(self, role: str, method: str, path: str) -> dict[str, str]:
        if role == "anonymous":
            return {}
        # Once per test, not per example: after the first success the rest see a spent
        # token (401, also a documented answer).
        key = (role, method, path) if (method, path) in _SPENDS_CALLER else role
        if key not in self.tokens:
            self.tokens[key] = self.caller(role)
        return {"Authorization": f"Bearer {self.tokens[key]}"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="module")
def portal(server_url: str, template_db: str, s3: S3Server) -> Iterator[Portal]:
    name = f"gp_oas_{time.monotonic_ns()}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    database_url = with_database(server_url, name)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(_settings(database_url, s3)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Portal(url=f"http://127.0.0.1:{port}", database_url=database_url)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# Rules that a schema-valid request may still break and that JSON Schema has no words for
# (each is stated in the schema's descriptions): a registered language, a strong password,
# an existing referenced id, a token or link the server issued, the current version for
# If-Match, a real P-256 key. A valid example refused for one of these, and only these,
# is not a "schema-valid request rejected"; every other check still applies to it.
# operation -> (status, field regex for a 422's errors, or problem type for other statuses)
_LANGUAGE = r"(preferences\.language|locale)"
BEYOND_THE_SCHEMA: dict[tuple[str, str], list[tuple[int, str]]] = {
    ("POST", "/api/v1/auth/register"): [(422, r"password|" + _LANGUAGE), (422, "email")],
    ("POST", "/api/v1/auth/login"): [(422, "email")],
    ("POST", "/api/v1/auth/password-reset/request"): [(422, "email")],
    ("POST", "/api/v1/auth/password-reset"): [(400, "invalid-reset-token"), (422, "newPassword")],
    ("POST", "/api/v1/auth/verify-email"): [(400, "invalid-verification-token")],
    ("POST", "/api/v1/me/password"): [(422, "newPassword")],
    ("PATCH", "/api/v1/me"): [(422, _LANGUAGE)],
    ("POST", "/api/v1/unsubscribe"): [(400, "invalid-unsubscribe-link")],
    ("GET", "/api/v1/content"): [(422, _LANGUAGE)],
    ("GET", "/api/v1/tags"): [(422, _LANGUAGE)],
    ("GET", "/api/v1/content/{content_type}/{slug}"): [(422, _LANGUAGE)],
    # Content in format JSON must parse as JSON; attributes must be plain JSON (no integer
    # past 64 bits, at most 6 levels, 16 KiB), which a schema for any JSON cannot bound.
    ("POST", "/api/v1/content"): [(422, _LANGUAGE + r"|media\.\d+|content|attributes")],
    ("PATCH", "/api/v1/content/{content_id}"): [
        (422, _LANGUAGE + r"|media\.\d+|content|attributes"),
        (412, "precondition-failed"),
    ],
    ("DELETE", "/api/v1/content/{content_id}"): [(412, "precondition-failed")],
    # The payload's shape for its type (described on `payload`); keys may be empty.
    ("POST", "/api/v1/admin/notifications"): [(422, r"recipientUserId|payload(\..*)?")],
    # An expirationTime in the future (the schema only bounds it).
    ("POST", "/api/v1/me/push-subscriptions"): [(422, r"endpoint|keys\..+|expirationTime")],
    # The file's bytes must be of an accepted type (judged by its content).
    ("POST", "/api/v1/media"): [(422, r"file|relatedContentId")],
    ("POST", "/api/v1/media/uploads"): [(422, r"mimeType|sizeBytes|relatedContentId")],
    # `at` goes only with period=week or month: parameters that depend on each other.
    ("GET", "/api/v1/games/{game_id}/leaderboard"): [(422, "at")],
    # An existing game and media; level thresholds strictly increasing.
    ("POST", "/api/v1/admin/achievements"): [(422, r"gameId|media\.\d+")],
    ("PUT", "/api/v1/admin/games/{game_id}/levels"): [(422, "thresholds")],
    # Live operations: ids that exist, a window that is not empty, payload bounds (size,
    # depth), canonical CIDRs, registered languages, a segment's game and achievement.
    ("POST", "/api/v1/admin/ab-rules"): [(422, r"endAt|rule\.contentIds\.\d+|rule\.payload")],
    ("POST", "/api/v1/admin/campaigns"): [
        (
            422,
            r"endAt|abVariants(\.\d+)?|contentIds\.\d+|targetingRules\.(ipRanges|languages)"
            r"\.\d+|targetingRules\.segment\.(gameId|maxLevel|hasAchievement)",
        )
    ],
    # Checked as the body is read, before the lookup that would answer 404.
    ("PATCH", "/api/v1/admin/ab-rules/{rule_id}"): [(422, r"rule\.payload")],
    ("PATCH", "/api/v1/admin/campaigns/{campaign_id}"): [
        (422, r"targetingRules\.(ipRanges|languages)\.\d+")
    ],
}
_PROBLEM_TYPE = "urn:gameportal:problem:"


def _beyond_the_schema(case: schemathesis.Case, response: Any) -> bool:
    rules = BEYOND_THE_SCHEMA.get((case.method.upper(), case.path), [])
    if not rules or not response.headers.get("content-type", [""])[0].startswith(
        "application/problem+json"
    ):
        return False
    problem = response.json()
    for status, what in rules:
        if response.status_code != status:
            continue
        if status != 422:
            if problem.get("type") == _PROBLEM_TYPE + what:
                return True
            continue
        fields = [error["field"] for error in problem.get("errors", [])]
        if fields and all(re.fullmatch(what, field) for field in fields):
            return True
    return False


def _authenticated(case: schemathesis.Case) -> bool:
    """Whether the example means to carry valid credentials: schemathesis also sends
    missing or malformed `Authorization` headers on purpose, and expects them refused."""
    components = case.meta.components if case.meta else {}
    header = components.get(ParameterLocation.HEADER)
    return header is None or header.mode is GenerationMode.POSITIVE


# The headers a client acts on: an answer that carries one must say so in the document
# (gameportal.kit.openapi.HEADERS), or a generated client never learns of it.
CLIENT_HEADERS = ("etag", "location", "retry-after", "www-authenticate")


def documented_headers(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    # Methods the path does not take (sent to check the 405) have nothing documented.
    operation = SPEC["paths"][case.path].get(case.method.lower(), {"responses": {}})
    documented = operation["responses"].get(str(response.status_code))
    if documented is None:
        return None  # an undocumented status is the status check's finding
    names = {name.lower() for name in documented.get("headers", {})}
    sent = {name.lower() for name in response.headers}
    missing = sorted(name for name in CLIENT_HEADERS if name in sent and name not in names)
    if missing:
        raise AssertionError(
            f"{response.status_code} carries {missing}, which the document does not mention "
            f'for that status: responses={{{response.status_code}: {{"headers": headers(...)}}}}'
        )
    return None


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
@settings(suppress_health_check=list(HealthCheck), deadline=None)
def test_operation_conforms(case: schemathesis.Case, role: str, portal: Portal) -> None:
    method = case.method.upper()
    headers = portal.headers(role, method, case.path) if _authenticated(case) else None
    response = case.call(base_url=portal.url, headers=headers)
    excluded = [positive_data_acceptance] if _beyond_the_schema(case, response) else []
    case.validate_response(
        response, excluded_checks=excluded, additional_checks=[documented_headers]
    )


# --- What the document says, checked directly (each was wrong before) ---------------------


def _operation(method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = SPEC["paths"][path][method.lower()]
    return operation


async def test_a_literal_segment_is_not_read_as_an_id(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # "uploads" and "stats" are resources of their own, not malformed ids: 405, with the
    # methods those paths take.
    admin = bearer(await user_with_roles(client, db, "admin"))
    for method, path, allow in [
        ("GET", "/api/v1/media/uploads", "POST"),
        ("DELETE", "/api/v1/media/uploads", "POST"),
        ("DELETE", "/api/v1/admin/notifications/stats", "GET, HEAD"),
        ("POST", "/api/v1/admin/notifications/stats", "GET, HEAD"),
    ]:
        response = await client.request(method, path, headers=admin)
        assert response.status_code == 405, (method, path, response.text)
        assert response.headers["allow"] == allow
        assert response.headers["content-type"] == "application/problem+json"


async def test_bodiless_202s_are_documented_without_content(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/api/v1/auth/verify-email/request", "/api/v1/auth/password-reset/request"):
        assert "content" not in _operation("POST", path)["responses"]["202"], path
    response = await client.post(
        "/api/v1/auth/password-reset/request", json={"email": "nobody@example.com"}
    )
    assert response.status_code == 202
    assert response.content == b""


async def test_malformed_multipart_is_the_documented_422(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    assert "422" in _operation("POST", "/api/v1/media")["responses"]
    editor = bearer(await user_with_roles(client, db, "editor"))
    for content_type, body in [
        ("multipart/form-data", b"--x\r\n"),  # no boundary
        ("multipart/form-data; boundary=x", b"--x\r\n[]--x--\r\n"),  # a part without headers
    ]:
        response = await client.post(
            "/api/v1/media", content=body, headers={**editor, "Content-Type": content_type}
        )
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["errors"][0]["field"] == "body"


def test_every_body_documents_its_413() -> None:
    missing = [
        (method.upper(), path)
        for path, operations in SPEC["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation and "413" not in operation["responses"]
    ]
    assert not missing


def test_the_document_states_the_rules_it_can() -> None:
    components = SPEC["components"]["schemas"]
    cursor = next(
        p for p in _operation("GET", "/api/v1/me/sessions")["parameters"] if p["name"] == "cursor"
    )
    assert cursor["schema"]["anyOf"][0]["pattern"] == r"^[A-Za-z0-9_-]{22}$"
    language = components["Preferences"]["properties"]["language"]["anyOf"][0]
    assert language["pattern"].startswith("^[A-Za-z]{2,3}")
    assert components["ContentCreate"]["properties"]["locale"]["pattern"] == language["pattern"]
    for model, name in [
        ("RegisterRequest", "password"),
        ("PasswordChange", "newPassword"),
        ("PasswordReset", "newPassword"),
    ]:
        password = components[model]["properties"][name]
        assert password["minLength"] == 8
        assert "password_too_weak" in password["description"]
    assert "pattern" in components["RegisterRequest"]["properties"]["name"]
