"""The OpenAPI document is fit to generate clients from, for every route, present and future.

Each rule below walks every operation of the app, so a route added later that breaks one
fails here with its method and path named. The rules (gameportal/kit/openapi.py says why):

- an explicit, short, unique operationId following the naming rule, and released ids never
  change (tests/openapi_operation_ids.txt lists them: add a line for a new route);
- a documented success answer with its schema (or no body: 202, 204, 304, redirects) and
  every error documented as `application/problem+json` with the Problem model;
- `format: date-time` on every timestamp;
- an example on every request body and every success answer with a body, each valid
  against its own schema;
- an enum on path parameters with a fixed set of values, a constraint on every other;
- the live stream documented as `text/event-stream`;
- `ETag` documented where a route answers conditional requests.

Then the document is handed to the generators front-end and Python developers use:
openapi-typescript (with openapi-fetch, type-checked by tsc) and openapi-python-client,
which must both finish without a warning; the Python client then talks to the real app.
Node.js and npm are required (.ci/run installs them): without them these tests fail.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from gameportal.app import create_app
from gameportal.kit.openapi import (
    OPERATION_ID_PATTERN,
    PROBLEM_CONTENT_TYPE,
    operation_area,
    suggested_operation_id,
)
from gameportal.notifications.vapid import generate_keys
from tests.conftest import PLAYER_IP, make_settings
from tests.factories import STRONG_PASSWORD, unique_email

# Built without a database: nothing connects before the app starts.
APP = create_app(
    make_settings(
        "postgresql://unused@127.0.0.1:1/unused", vapid_private_key=generate_keys().private_key
    )
)
SPEC: dict[str, Any] = APP.openapi()
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]
OPERATION_IDS_FILE = Path(__file__).parent / "openapi_operation_ids.txt"

# The generators, pinned: a new release is a deliberate change here.
OPENAPI_TYPESCRIPT = "openapi-typescript@7.13.0"
OPENAPI_FETCH = "openapi-fetch@0.17.0"
TYPESCRIPT = "typescript@5.9.3"

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
BODILESS_SUCCESS = {"202", "204", "205", "301", "302", "303", "304", "307", "308"}
PROBLEM_REF = "#/components/schemas/Problem"
BINARY = ("*/*", "application/octet-stream", "image/", "video/", "audio/")


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def _routes() -> Iterator[APIRoute]:
    for route in APP.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield route


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _fail(rule: str, offenders: list[str]) -> None:
    assert not offenders, f"{rule}:\n  " + "\n  ".join(offenders)


# --- operation ids -------------------------------------------------------------------------


def test_every_route_names_its_operation_by_the_rule() -> None:
    offenders = []
    seen: dict[str, str] = {}
    for route in _routes():
        for method in sorted(route.methods or ()):
            where = f"{method} {route.path} ({route.endpoint.__module__}.{route.name})"
            hint = suggested_operation_id(method, route.path)
            if not route.operation_id:
                offenders.append(f'{where}: no operation_id; e.g. operation_id="{hint}"')
                continue
            oid = route.operation_id
            area = operation_area(route.path)
            if not OPERATION_ID_PATTERN.fullmatch(oid):
                offenders.append(f"{where}: {oid!r} is not lowercase snake_case")
            elif oid != area and not oid.startswith(area + "_"):
                offenders.append(f"{where}: {oid!r} must start with its area {area!r}_")
            if oid in seen:
                offenders.append(f"{where}: {oid!r} is also the id of {seen[oid]}")
            seen[oid] = f"{method} {route.path}"
    _fail(
        "operationIds: <area>_<resource…>_<verb>, explicit on each route "
        "(gameportal/kit/openapi.py)",
        offenders,
    )


def _released_ids() -> dict[str, str]:
    released = {}
    for line in OPERATION_IDS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            oid, method, path = line.split()
            released[oid] = f"{method} {path}"
    return released


def test_released_operation_ids_never_change() -> None:
    current = {op["operationId"]: f"{method} {path}" for method, path, op in _operations()}
    released = _released_ids()
    changed = [
        f"{oid} ({where}) is gone or renamed: clients call it; keep it"
        for oid, where in released.items()
        if current.get(oid) != where
    ]
    _fail("released operationIds", changed)
    new = [
        f"{oid} {where}"
        for oid, where in sorted(current.items(), key=lambda kv: kv[1])
        if oid not in released
    ]
    _fail(f"new operations: add these lines to {OPERATION_IDS_FILE.name}", new)


# --- answers -------------------------------------------------------------------------------


def test_every_operation_documents_its_answer_and_its_errors() -> None:
    offenders = []
    for method, path, operation in _operations():
        where = f"{method} {path} ({operation['operationId']})"
        responses = operation["responses"]
        successes = [s for s in responses if s.startswith(("2", "3"))]
        # A redirect is the whole success of some operations (a link opened in a browser).
        if not successes:
            offenders.append(f"{where}: no success answer documented")
        for status in successes:
            content = responses[status].get("content")
            if status in BODILESS_SUCCESS:
                if content and status in {"204", "304"}:
                    offenders.append(f"{where}: {status} documents a body it never has")
                continue
            if not content:
                offenders.append(f"{where}: {status} has no response model")
            for media_type, entry in (content or {}).items():
                if not entry.get("schema"):
                    offenders.append(f"{where}: {status} {media_type} has no schema")
        errors = [s for s in responses if s[:1] in {"4", "5"}]
        if "500" not in errors:
            offenders.append(f"{where}: its errors, 500 included, must be documented")
        for status in errors:
            content = responses[status].get("content", {})
            problem = content.get(PROBLEM_CONTENT_TYPE, {}).get("schema")
            if list(content) != [PROBLEM_CONTENT_TYPE] or problem != {"$ref": PROBLEM_REF}:
                offenders.append(
                    f"{where}: {status} must be documented as {PROBLEM_CONTENT_TYPE} with the "
                    f"Problem model (problem_responses()), not {sorted(content)}"
                )
    _fail("answers (response_model=, problem_responses())", offenders)


def _walk(node: Any, where: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, property name, property schema) for every property anywhere in `node`."""
    if isinstance(node, dict):
        for name, schema in (node.get("properties") or {}).items():
            yield where, name, schema
            yield from _walk(schema, f"{where}.{name}")
        for key, value in node.items():
            if key != "properties":
                yield from _walk(value, where)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, where)


def _is_date_time(schema: dict[str, Any]) -> bool:
    branches = [_resolve(s) for s in schema.get("anyOf", [schema])]
    strings = [b for b in branches if b.get("type") == "string"]
    return bool(strings) and all(b.get("format") == "date-time" for b in strings)


TIMESTAMP_NAME = re.compile(r"(At|_at)$")


def test_every_timestamp_is_a_date_time() -> None:
    offenders = [
        f"{where}.{name}"
        for where, name, schema in _walk(SCHEMAS, "components")
        if TIMESTAMP_NAME.search(name) and not _is_date_time(schema)
    ]
    for method, path, operation in _operations():
        offenders += [
            f"{method} {path} parameter {parameter['name']}"
            for parameter in operation.get("parameters", [])
            if TIMESTAMP_NAME.search(parameter["name"]) and not _is_date_time(parameter["schema"])
        ]
    _fail("timestamps need `format: date-time` (kit.schemas.UtcDatetime)", offenders)


# --- examples ------------------------------------------------------------------------------


def _examples(entry: dict[str, Any]) -> list[Any]:
    """The examples a media type entry gives: its own, or its schema's (any branch)."""
    if "example" in entry:
        return [entry["example"]]
    if "examples" in entry:
        return [e["value"] for e in entry["examples"].values() if "value" in e]
    schema = _resolve(entry.get("schema", {}))
    for candidate in [schema, *[_resolve(s) for s in schema.get("anyOf", [])]]:
        if "examples" in candidate:
            return list(candidate["examples"])
        if "example" in candidate:
            return [candidate["example"]]
    return []


def _documented_bodies() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, media type, entry) of every request body and every success answer with a
    body (files excepted: their bytes have no example)."""
    for method, path, operation in _operations():
        where = f"{method} {path} ({operation['operationId']})"
        for media_type, entry in operation.get("requestBody", {}).get("content", {}).items():
            yield f"{where} request body", media_type, entry
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                for media_type, entry in response.get("content", {}).items():
                    if not media_type.startswith(BINARY):
                        yield f"{where} {status} answer", media_type, entry


def test_every_request_body_and_success_answer_has_an_example() -> None:
    offenders = [
        f"{where} ({media_type})"
        for where, media_type, entry in _documented_bodies()
        if not _examples(entry)
    ]
    _fail(
        'examples: model_config = ConfigDict(json_schema_extra={"examples": [...]}) on the '
        "model, or one on the route's response",
        offenders,
    )


def _validator(schema: dict[str, Any]) -> Any:
    # The schema inside the whole document, so that its $refs resolve.
    root = {**schema, "components": SPEC["components"]}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True)


def test_every_example_is_valid_for_its_schema() -> None:
    offenders = []
    for where, media_type, entry in _documented_bodies():
        if "schema" not in entry or not media_type.endswith("json"):
            continue
        validator = _validator(entry["schema"])
        for example in _examples(entry):
            errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(example)]
            if errors:
                offenders.append(f"{where}: {errors[:3]}")
    for name, schema in SCHEMAS.items():
        validator = _validator({"$ref": f"#/components/schemas/{name}"})
        for example in schema.get("examples", []):
            errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(example)]
            if errors:
                offenders.append(f"components.schemas.{name}: {errors[:3]}")
    _fail("examples that their own schema refuses", offenders)


# --- parameters, headers, the stream --------------------------------------------------------


# Path parameters that are free text on purpose: a slug that cannot exist is a 404, like
# any slug that does not (tests/content/test_content.py).
FREE_TEXT_PATH_PARAMETERS = {("/api/v1/content/{content_type}/{slug}", "slug")}


def test_path_parameters_are_enumerated_or_constrained() -> None:
    offenders = []
    for method, path, operation in _operations():
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            if (
                parameter["in"] == "path"
                and (path, parameter["name"]) not in FREE_TEXT_PATH_PARAMETERS
                and not (
                    {"enum", "pattern", "format", "const"} & schema.keys()
                    or schema.get("type") == "integer"
                )
            ):
                offenders.append(f"{method} {path}: {parameter['name']}")
    _fail(
        "path parameters need an enum (a fixed set of values), a pattern or a format; "
        "or, free text on purpose, a line in FREE_TEXT_PATH_PARAMETERS",
        offenders,
    )
    content_type = next(
        p
        for p in SPEC["paths"]["/api/v1/content/{content_type}/{slug}"]["get"]["parameters"]
        if p["name"] == "content_type"
    )
    assert content_type["schema"]["enum"] == ["game", "news", "announcement", "faq"]


def test_conditional_answers_document_their_etag() -> None:
    offenders = []
    for method, path, operation in _operations():
        parameters = {p["name"].lower() for p in operation.get("parameters", [])}
        responses = operation["responses"]
        if "304" in responses or "if-match" in parameters or "if-none-match" in parameters:
            for status in ("200", "304"):
                if status in responses and "ETag" not in responses[status].get("headers", {}):
                    offenders.append(f"{method} {path} ({operation['operationId']}) {status}")
    _fail('ETag: responses={200: {"headers": headers("ETag")}}', offenders)


def test_the_live_stream_is_documented_as_server_sent_events() -> None:
    operation = SPEC["paths"]["/api/v1/me/notifications/stream"]["get"]
    content = operation["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]
    stream = content["text/event-stream"]
    assert stream["schema"]["type"] == "string"
    (example,) = _examples(stream)
    assert "event: notification\n" in example and example.endswith("\n\n")


# --- the generators ------------------------------------------------------------------------


def _npm_tools() -> Path:
    """The pinned generators, installed once into a cache folder shared by runs."""
    npm = shutil.which("npm")
    assert npm, "npm is required (Node.js 20+; `apt-get install -y nodejs npm`, as .ci/run does)"
    packages = [OPENAPI_TYPESCRIPT, OPENAPI_FETCH, TYPESCRIPT]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = cache / "gameportal-tests" / re.sub(r"[^a-z0-9.]+", "-", "-".join(packages))
    if not (folder / "node_modules" / ".bin" / "tsc").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", *packages],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return folder


# What a front-end developer writes against the generated types: it must type-check.
TYPESCRIPT_USE = """
import createClient from "openapi-fetch";
import type { components, operations, paths } from "./gameportal";

type Login = operations["auth_login"]["requestBody"]["content"]["application/json"];
type Session = components["schemas"]["SessionRead"];

export async function signIn(email: string, password: string): Promise<Session[]> {
  const api = createClient<paths>({ baseUrl: "https://portal.example.com" });
  const login: Login = { email, password };
  const { data, error } = await api.POST("/api/v1/auth/login", { body: login });
  if (error) throw new Error(`${error.status} ${error.title}`);
  const headers = { Authorization: `Bearer ${data.accessToken}` };
  const query = { limit: 10 };
  const sessions = await api.GET("/api/v1/me/sessions", { headers, params: { query } });
  const expires: string = data.session.expiresAt;
  console.log(expires);
  return sessions.data?.items ?? [];
}

export async function news(): Promise<string[]> {
  const api = createClient<paths>({ baseUrl: "https://portal.example.com" });
  const { data } = await api.GET("/api/v1/content/{content_type}/{slug}", {
    params: { path: { content_type: "news", slug: "season-3" } },
  });
  return data ? [data.title] : [];
}
"""


def test_the_document_generates_a_typescript_client(tmp_path: Path) -> None:
    tools = _npm_tools() / "node_modules"
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(SPEC))
    out = tmp_path / "gameportal.d.ts"
    generated = subprocess.run(
        [
            str(tools / ".bin" / "openapi-typescript"),
            str(spec),
            # A field with a default may be left out of a request (v7 would require it).
            "--default-non-nullable=false",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = generated.stdout + generated.stderr
    assert generated.returncode == 0, said
    assert not re.search(r"warn|⚠|error", said, re.IGNORECASE), said
    assert 'post: operations["auth_login"];' in out.read_text()
    (tmp_path / "use.ts").write_text(TYPESCRIPT_USE)
    (tmp_path / "node_modules").symlink_to(tools)
    checked = subprocess.run(
        [
            str(tools / ".bin" / "tsc"),
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            "--lib",
            "es2022,dom",
            str(tmp_path / "use.ts"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture(scope="module")
def python_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("python-client")
    spec = folder / "openapi.json"
    spec.write_text(json.dumps(SPEC))
    generator = Path(sys.executable).with_name("openapi-python-client")
    generated = subprocess.run(
        [str(generator), "generate", "--path", str(spec), "--output-path", str(folder / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
        # Its post-generation hooks run ruff, from this virtualenv.
        env={**os.environ, "PATH": f"{generator.parent}{os.pathsep}{os.environ['PATH']}"},
    )
    said = generated.stdout + generated.stderr
    assert generated.returncode == 0, said
    assert not re.search(r"warning|error", said, re.IGNORECASE), said
    sys.path.insert(0, str(folder / "out"))
    try:
        yield importlib.import_module("gameportal_client")
    finally:
        sys.path.remove(str(folder / "out"))
        for name in [m for m in sys.modules if m.split(".")[0] == "gameportal_client"]:
            del sys.modules[name]


def test_the_document_generates_a_python_client_without_warnings(python_client: Any) -> None:
    # Every operation is a module named by its operationId.
    api = Path(python_client.__file__).parent / "api"
    modules = {p.stem for p in api.rglob("*.py") if p.stem != "__init__"}
    expected = {op["operationId"] for _, _, op in _operations()}
    assert expected <= modules, sorted(expected - modules)


async def test_the_generated_python_client_talks_to_the_portal(
    python_client: Any, app: FastAPI
) -> None:
    client_module = importlib.import_module("gameportal_client")
    register = importlib.import_module("gameportal_client.api.auth.auth_register")
    me_get = importlib.import_module("gameportal_client.api.me.me_get")
    sessions = importlib.import_module("gameportal_client.api.me.me_sessions_list")
    models = importlib.import_module("gameportal_client.models")

    transport = httpx.ASGITransport(app=app, client=(PLAYER_IP, 40000))
    anonymous = client_module.Client(
        base_url="http://testserver", httpx_args={"transport": transport}
    )
    email = unique_email("client")
    created = await register.asyncio_detailed(
        client=anonymous,
        body=models.RegisterRequest(email=email, password=STRONG_PASSWORD, name="Ada"),
    )
    assert created.status_code == 201, created.content
    auth = created.parsed
    assert auth.user.email == email
    assert auth.session.expires_at.tzinfo is not None  # parsed as a date-time

    player = client_module.AuthenticatedClient(
        base_url="http://testserver", token=auth.access_token, httpx_args={"transport": transport}
    )
    me = await me_get.asyncio(client=player)
    assert me.id == auth.user.id
    page = await sessions.asyncio(client=player, limit=10)
    assert [s.id for s in page.items] == [auth.session.id]
    assert page.items[0].current is True

    refused = await me_get.asyncio_detailed(client=anonymous)
    assert refused.status_code == 401
    assert refused.parsed.type_ == "urn:gameportal:problem:unauthorized"  # `type` is a builtin
