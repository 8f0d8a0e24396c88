"""One error base rendered as RFC 9457 problem+json, and the handlers that render it all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.routing import BaseRoute

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:gameportal:problem:"

log = structlog.get_logger(__name__)


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the field at fault, e.g. `preferences.theme`")
    location: str = Field(description="body, query, path, header or cookie")
    message: str
    code: str = Field(description="Machine-readable reason, e.g. `missing`, `string_too_long`")


_VALIDATION_EXAMPLE: dict[str, Any] = {
    "type": "urn:gameportal:problem:validation-error",
    "title": "Request validation failed",
    "status": 422,
    "detail": "1 field is invalid",
    "errors": [
        {
            "field": "email",
            "location": "body",
            "message": "value is not a valid email address",
            "code": "value_error",
        }
    ],
}


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(json_schema_extra={"example": _VALIDATION_EXAMPLE})

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldProblem] | None = None


class PortalError(Exception):
    """Base of every domain error. Subclasses set a status, a stable slug and a title."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[FieldProblem] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = dict(headers or {})
        self.errors = list(errors) if errors else None


class NotFound(PortalError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(PortalError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class Unauthorized(PortalError):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(PortalError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class PayloadTooLarge(PortalError):
    status = 413
    slug = "payload-too-large"
    title = "Request body too large"


class Unavailable(PortalError):
    status = 503
    slug = "unavailable"
    title = "Not available on this server"


class InvalidField(PortalError):
    """A field that parses but breaks a rule only the service can check (e.g. a weak
    password). Rendered like a validation error so clients handle both alike."""

    status = 422
    slug = "validation-error"
    title = "Request validation failed"

    def __init__(
        self, field: str, message: str, code: str = "invalid", *, location: str = "body"
    ) -> None:
        super().__init__(
            message,
            errors=[FieldProblem(field=field, location=location, message=message, code=code)],
        )

    @classmethod
    def many(cls, problems: Sequence[FieldProblem]) -> InvalidField:
        error = cls.__new__(cls)
        PortalError.__init__(error, problems[0].message, errors=problems)
        return error


# The most field problems one answer lists.
MAX_LISTED_PROBLEMS = 100


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    errors: Sequence[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    listed = list(errors) if errors else None
    if listed is not None and len(listed) > MAX_LISTED_PROBLEMS:
        # Ten thousand bad CIDRs made a 2.1 MB answer: the client learns what is wrong
        # from the first ones (fixing those, it is told of the next).
        listed = listed[:MAX_LISTED_PROBLEMS]
        detail = f"{detail or title}; the first {MAX_LISTED_PROBLEMS} are listed"
    body = Problem(
        type=PROBLEM_TYPE_PREFIX + slug,
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        errors=listed,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers) if headers else None,
    )


_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("too-many-requests", "Too many requests"),
}


def _field_problems(exc: RequestValidationError) -> list[FieldProblem]:
    problems = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        location = loc[0] if loc else "body"
        path = loc[1:] if loc and loc[0] in {"body", "query", "path", "header", "cookie"} else loc
        code = str(err.get("type", "invalid"))
        message = str(err.get("msg", "invalid value"))
        if code == "json_invalid":
            # FastAPI puts the character offset where a field name would go.
            where = f" at character {path[0]}" if path else ""
            reason = err.get("ctx", {}).get("error", "cannot parse")
            message = f"malformed JSON{where}: {reason}"
            path = []
        problems.append(
            FieldProblem(
                field=".".join(path) if path else location,
                location=location,
                message=message,
                code=code,
            )
        )
    return problems


async def _portal_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PortalError)
    return problem_response(
        exc.status,
        exc.slug,
        exc.title,
        exc.detail,
        errors=exc.errors,
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = _field_problems(exc)
    noun = "field is" if len(problems) == 1 else "fields are"
    return problem_response(
        422,
        "validation-error",
        "Request validation failed",
        f"{len(problems)} {noun} invalid",
        errors=problems,
    )


# FastAPI's answer when the body cannot even be decoded (bad UTF-8, nesting past the
# recursion limit, an integer with thousands of digits): the same class of error as
# malformed JSON, so it gets the same 422 shape.
_UNPARSABLE_BODY = "There was an error parsing the body"


def _unparsable_body(message: str, code: str) -> JSONResponse:
    return problem_response(
        422,
        "validation-error",
        "Request validation failed",
        "the body cannot be parsed",
        errors=[FieldProblem(field="body", location="body", message=message, code=code)],
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__context__, MultiPartException):
        # Starlette's 400 for a form it cannot parse (no boundary, a part without a name,
        # a truncated body): malformed like bad JSON, so the same documented 422.
        return _unparsable_body(f"not valid form data: {exc.detail}", "form_invalid")
    if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
        if request.headers.get("content-type", "").lower().startswith("multipart/"):
            return _unparsable_body("not valid multipart form data", "form_invalid")
        return _unparsable_body(
            "not valid JSON: invalid UTF-8, nesting too deep or a number too long",
            "json_invalid",
        )
    slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route matches {request.method} {request.url.path}"
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem_response(exc.status_code, slug, title, detail, headers=exc.headers)


def internal_error_response(headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A 500 that says nothing of the internals; the details go to the log only."""
    return problem_response(
        500,
        "internal-error",
        "Internal server error",
        "the server could not complete the request; it has been logged with its request id",
        headers=headers,
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # Reached only for errors outside the request middleware, which handles the rest.
    log.exception("unhandled_error", path=request.url.path, method=request.method)
    return internal_error_response()


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PortalError, _portal_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)


BODY_TOO_LARGE = (
    "Request body too large: a JSON body may be up to `GAMEPORTAL_MAX_JSON_BODY_BYTES` "
    "(1 MiB by default), a media upload up to `GAMEPORTAL_MEDIA_MAX_BYTES`"
)


def document_body_limits(routes: Sequence[BaseRoute]) -> None:
    """Every route that takes a body documents the 413 the request middleware answers for
    one over the limit (it applies to them all, before any route runs)."""
    for route in routes:
        if isinstance(route, APIRoute) and route.body_field is not None:
            route.responses.setdefault(
                413,
                {"model": Problem, "description": BODY_TOO_LARGE, "content": problem_content(413)},
            )


# An example answer per status (slug, title, detail, as the service sends them), so that
# each documented error shows its own: the Problem schema's example is the 422 one, which
# the docs would otherwise show under every status.
_EXAMPLES: dict[int, tuple[str, str, str]] = {
    400: ("bad-request", "Bad request", "the request cannot be carried out as sent"),
    401: (
        "unauthorized",
        "Authentication required",
        "send an access token as `Authorization: Bearer <token>`",
    ),
    403: ("forbidden", "Forbidden", "this needs the `admin` role"),
    404: ("not-found", "Not found", "no such item"),
    405: ("method-not-allowed", "Method not allowed", "DELETE is not allowed on /api/v1/me/x"),
    409: ("conflict", "Conflict", "the slug is already taken"),
    412: (
        "precondition-failed",
        "Someone else changed this first",
        'If-Match was "3", the current version is "4"',
    ),
    413: ("payload-too-large", "Request body too large", "the body is over 1048576 bytes"),
    428: (
        "precondition-required",
        "Send If-Match with the ETag you last read",
        "If-Match is missing",
    ),
    429: ("too-many-requests", "Too many requests", "try again in 30 seconds"),
    500: (
        "internal-error",
        "Internal server error",
        "the server could not complete the request; it has been logged with its request id",
    ),
    503: (
        "database-unavailable",
        "Service temporarily unavailable",
        "the database cannot be reached; try again in 5 seconds",
    ),
    507: ("insufficient-storage", "The media storage is full", "try again in 30 seconds"),
}


def problem_example(status: int) -> dict[str, Any]:
    """An example problem document for `status`."""
    if status == 422:
        return dict(_VALIDATION_EXAMPLE)
    slug, title, detail = _EXAMPLES.get(status, ("http-error", "HTTP error", "see `title`"))
    return {"type": PROBLEM_TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}


def problem_content(status: int) -> dict[str, Any]:
    """The `content` of a documented error answer: problem+json with its own example."""
    return {
        PROBLEM_CONTENT_TYPE: {
            "schema": {"$ref": "#/components/schemas/Problem"},
            "example": problem_example(status),
        }
    }


def problem_responses(
    *statuses: int, descriptions: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry for a route: each status documented as problem+json, with an
    example of its own (and a description of its own where `descriptions` has one)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        _, title = _HTTP_SLUGS.get(status, ("", "Error"))
        if status == 422:
            title = "Request validation failed"
        elif status == 500:
            title = "Internal server error"
        out[status] = {
            "model": Problem,
            "description": (descriptions or {}).get(status, title),
            "content": problem_content(status),
        }
    return out
