"""What the OpenAPI document promises the clients generated from it.

Operation ids
-------------
Every route names its operation (`operation_id=` on the route decorator), so the method
names of a generated client survive a renamed Python function or a moved router. The rule,
which tests/test_openapi_clients.py checks on every route of the app:

    <area>_<resource…>_<verb>, lowercase snake_case, unique

- area: the first path segment after `/api/v1` (`auth`, `me`, `admin`, `content`,
  `media`, `games`…; `healthz` for `/healthz`), a `-` written `_`;
- resource: the literal segments after it, path parameters left out, singular or plural
  as in the path (`me_sessions`, `admin_users_security_events`); omitted for the area
  itself (`me_get`) and for an action on it (`auth_login`);
- verb: `list` (a page of a collection), `get` (one thing), `create` (POST adding to a
  collection), `update` (PATCH), `replace` (PUT), `delete` (DELETE), or the action the
  route performs, in the domain's words (`auth_login`, `content_publish`,
  `me_sessions_end`, `admin_notifications_retry`).

Released ids never change (a client's code calls them): the test keeps the list of them
(tests/openapi_operation_ids.txt) and fails when one disappears or changes.

Response headers
----------------
A route that sends one of `HEADERS` documents it on the status that carries it
(`responses={200: {"headers": headers("ETag")}}`); those every route may send (`Retry-After`
on 429 and 503, `WWW-Authenticate` on 401) are added to the document here. The conformance
run (tests/test_openapi_conformance.py) fails on an answer carrying an undocumented one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from gameportal.kit.schemas import NULL_IN_EXAMPLE

OPERATION_ID_PATTERN = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")

PROBLEM_CONTENT_TYPE = "application/problem+json"
_PROBLEM_REF = "#/components/schemas/Problem"

# The headers a client acts on, as each is documented wherever an answer carries it.
HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": "The version of what was answered: send it back as `If-None-Match` "
        "(a 304 if unchanged) or, to change it, as `If-Match` (a 412 if someone changed it "
        "meanwhile)",
        "schema": {"type": "string", "examples": ['"3"']},
    },
    "Cache-Control": {
        "description": "How long a shared or private cache may keep the answer",
        "schema": {"type": "string", "examples": ["public, max-age=60, must-revalidate"]},
    },
    "Location": {
        "description": "Where the created or redirected-to resource is",
        "schema": {"type": "string", "format": "uri-reference"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 0, "examples": [30]},
    },
    "WWW-Authenticate": {
        "description": "`Bearer`: send an access token from login, register or refresh",
        "schema": {"type": "string", "examples": ["Bearer"]},
    },
    "Content-Disposition": {
        "description": "`inline` for images, `attachment` otherwise, with the file's name",
        "schema": {"type": "string"},
    },
}

# Which of HEADERS every answer of a status may carry, whatever the route.
_EVERY_ROUTE = {"401": ("WWW-Authenticate",), "429": ("Retry-After",), "503": ("Retry-After",)}


def headers(*names: str) -> dict[str, dict[str, Any]]:
    """The `headers` of a documented response: `responses={201: {"headers":
    headers("Location")}}`."""
    return {name: HEADERS[name] for name in names}


def operation_area(path: str) -> str:
    """The first segment of the rule above: `/api/v1/me/sessions` -> `me`."""
    rest = path.removeprefix("/api/v1/").lstrip("/")
    return rest.split("/", 1)[0].replace("-", "_")


def suggested_operation_id(method: str, path: str) -> str:
    """What the rule gives for a route, as a hint in the test's message (the author picks
    the verb for an action)."""
    segments = path.removeprefix("/api/v1/").strip("/").split("/")
    literal = [s.replace("-", "_") for s in segments if not s.startswith("{")]
    ends_in_id = segments[-1].startswith("{")
    verb = {
        "GET": "get" if ends_in_id or len(literal) == 1 else "list",
        "POST": "create",
        "PUT": "replace",
        "PATCH": "update",
        "DELETE": "delete",
    }.get(method.upper(), method.lower())
    return "_".join([*literal, verb])


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` return the document with what FastAPI leaves out: errors
    documented as `application/problem+json` only (the type they are sent with; FastAPI
    adds `application/json` for every `model=`), and the headers any route may send."""
    build: Callable[[], dict[str, Any]] = app.openapi
    finished: list[dict[str, Any]] = []  # the document finished last

    def openapi() -> dict[str, Any]:
        document = build()  # FastAPI builds it once and keeps it in app.openapi_schema
        if not finished or finished[0] is not document:
            _finish(document)
            finished[:] = [document]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _finish(document: dict[str, Any]) -> None:
    _restore_nulls(document)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if status[:1] in {"4", "5"}:
                    _problem_only(response)
                for name in _EVERY_ROUTE.get(status, ()):
                    response.setdefault("headers", {}).setdefault(name, HEADERS[name])


def _restore_nulls(node: Any) -> None:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        if value == NULL_IN_EXAMPLE:
            node[key] = None
        elif isinstance(value, dict | list):
            _restore_nulls(value)


def _problem_only(response: dict[str, Any]) -> None:
    content = response.get("content")
    if not content:
        return
    problem = {"schema": {"$ref": _PROBLEM_REF}}
    for media_type in ("application/json", PROBLEM_CONTENT_TYPE):
        entry = content.get(media_type)
        if entry is not None and entry.get("schema") == {"$ref": _PROBLEM_REF}:
            problem = content.pop(media_type)
    if problem["schema"] == {"$ref": _PROBLEM_REF}:
        content[PROBLEM_CONTENT_TYPE] = problem
