"""Structured logs, Prometheus metrics and the ASGI middleware that feeds both.

The middleware is plain ASGI (not BaseHTTPMiddleware): it sits on every request, and the
task-per-request wrapper of BaseHTTPMiddleware costs more than everything it does here.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import os
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gameportal.errors import PayloadTooLarge, internal_error_response, problem_response
from gameportal.kit.db_outage import RETRY_AFTER_SECONDS, DatabaseOutage, database_unavailable
from gameportal.kit.headers import with_security_headers
from gameportal.kit.log_redaction import install_query_secret_filter

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Keys whose values never reach a log line, wherever a caller puts them.
_SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|authorization|cookie|hash|api[_-]?key", re.IGNORECASE
)

HTTP_REQUESTS = Counter(
    "gameportal_http_requests_total",
    "HTTP requests by route template, method and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "gameportal_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key != "event" and _SECRET_KEYS.search(key):
            event[key] = "[redacted]"
    return event


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    as_json = (not sys.stderr.isatty()) if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=orjson.dumps)
        if as_json
        else structlog.dev.ConsoleRenderer()
    )
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    global _access_lines_direct
    _access_lines_direct = as_json and numeric <= logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=(
            # Straight to file descriptor 2, one unbuffered write per line: lines from
            # several workers never interleave mid-line, and nothing waits in a buffer.
            structlog.BytesLoggerFactory(open(2, "wb", buffering=0, closefd=False))  # noqa: SIM115
            if as_json
            else structlog.PrintLoggerFactory(sys.stderr)
        ),
        # Not cached: create_app() may reconfigure (tests, embedding), and module-level
        # loggers must follow.
        cache_logger_on_first_use=False,
    )
    install_query_secret_filter()  # uvicorn's request lines: no ticket or token in them


access_log = structlog.get_logger("gameportal.access")
error_log = structlog.get_logger("gameportal.errors")


class RequestContextMiddleware:
    """Request id, body size and time limits, security headers, database-outage answers,
    access log and metrics for every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_limits: dict[str, int] | None = None,
        body_timeout: float = 20.0,
        body_min_rate: int = 16 * 1024,
        outage: DatabaseOutage | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Paths that take more than JSON does (media uploads), by exact path.
        self.body_limits = body_limits or {}
        self.body_timeout = body_timeout
        self.body_min_rate = body_min_rate
        self.outage = outage or DatabaseOutage(None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # HEAD is GET without the body (RFC 9110 9.3.2): FastAPI's routes take GET only, and
        # a load balancer probing /healthz with HEAD would otherwise see a 405. The app
        # gets a GET; the log and the metrics keep the HEAD; the body is not sent.
        inner = scope
        if scope["method"] == "HEAD":
            inner = {**scope, "method": "GET"}
            send = _without_body(send)
        request_id = request_id_of(scope)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        limit = self.body_limits.get(scope["path"], self.max_body_bytes)

        # A declared length over the limit is refused before reading a byte; a body that
        # only turns out too long (chunked, or a lying header) is cut off while read.
        declared = scope_header(scope, b"content-length")
        refused = (
            413 if declared is not None and (not declared.isdigit() or int(declared) > limit) else 0
        )
        started_response = False
        received = 0
        body_complete = False
        waited = 0.0  # seconds spent waiting for the client's body

        async def limited_receive() -> Message:
            nonlocal received, refused, body_complete, waited
            if body_complete:
                return await receive()  # waiting for a disconnect: no limit
            # The client has body_timeout, and a second more for every body_min_rate bytes
            # it has sent, to send its body: a client trickling a byte a second is cut
            # off, a slow but steady upload is not. Only time spent waiting here counts,
            # never the app's own.
            allowed = self.body_timeout + received / self.body_min_rate - waited
            loop = asyncio.get_running_loop()
            before = loop.time()
            try:
                async with asyncio.timeout(allowed):
                    message = await receive()
            except TimeoutError:
                refused = 408
                return {"type": "http.disconnect"}
            waited += loop.time() - before
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Tell the app the client went away; we answer 413 ourselves below.
                    # (An exception raised here would surface as FastAPI's generic 400.)
                    refused = 413
                    return {"type": "http.disconnect"}
                body_complete = not message.get("more_body", False)
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if refused:
                return  # the app's answer to a body it never fully got is dropped
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                headers = with_security_headers(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode()))
                if 300 <= status < 400:
                    _location_on_this_server(scope, headers)
                elif status == 405:
                    _head_where_get(headers)
                message = {**message, "headers": headers}
            await send(message)

        try:
            if not refused:
                try:
                    await self.app(inner, limited_receive, send_with_id)
                except Exception as exc:
                    if refused:
                        pass
                    elif started_response:
                        raise  # too late for an error response; uvicorn closes the stream
                    elif database_unavailable(exc):
                        # Not this request's fault and nothing to debug: one log line per
                        # outage (DatabaseOutage), a 503 the client may retry.
                        self.outage.refuse(exc)
                        status = 503
                        await _answer(send, request_id, _database_unavailable())
                    else:
                        # Here, not in the outer handler: the log line and the answer both
                        # carry the request id, so a user's report leads to the traceback.
                        error_log.exception(
                            "unhandled_error", method=scope["method"], path=scope["path"]
                        )
                        status = 500
                        await _answer(send, request_id, internal_error_response())
            if refused and not started_response:
                status = refused
                await _answer(send, request_id, _refusal(refused, limit, self.body_timeout))
        finally:
            self._record(scope["method"], inner, status, started)
            structlog.contextvars.unbind_contextvars("request_id")

    @staticmethod
    def _record(method: str, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "<unmatched>"
        record_request(method, template, status, time.perf_counter() - started)


def _head_where_get(headers: list[tuple[bytes, bytes]]) -> None:
    """A 405's Allow names HEAD wherever it names GET: this middleware answers it."""
    for i, (name, value) in enumerate(headers):
        if name.lower() == b"allow":
            methods = [m.strip() for m in value.split(b",")]
            if b"GET" in methods and b"HEAD" not in methods:
                headers[i] = (name, b", ".join(sorted([*methods, b"HEAD"])))


def _without_body(send: Send) -> Send:
    """`send` for a HEAD request: the headers (Content-Length included) as for GET, no
    body bytes (uvicorn would drop them anyway; other servers and test clients may not)."""

    async def send_headers_only(message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            message = {**message, "body": b""}
        await send(message)

    return send_headers_only


def _location_on_this_server(scope: Scope, headers: list[tuple[bytes, bytes]]) -> None:
    """A redirect to this server written as a URL (Starlette's own trailing-slash redirect
    in a mounted router, anything made from `request.url`) names whatever host the client
    put in its Host header: `Host: evil.example` would send the next request there. Such
    a Location becomes a path on this server; redirects elsewhere (S3 media) are kept."""
    host = scope_header(scope, b"host")
    if not host:
        return
    for i, (name, value) in enumerate(headers):
        if name.lower() != b"location":
            continue
        scheme, sep, rest = value.partition(b"://")
        authority, _, path = rest.partition(b"/")
        if (
            sep
            and scheme.lower() in (b"http", b"https")
            and authority.lower() == host.lower().encode()
        ):
            headers[i] = (name, b"/" + path.lstrip(b"/"))


def _database_unavailable() -> Response:
    return problem_response(
        503,
        "database-unavailable",
        "Service temporarily unavailable",
        f"the database cannot be reached; try again in {RETRY_AFTER_SECONDS} seconds",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _refusal(status: int, limit: int, body_timeout: float) -> Response:
    # The rest of the body is not wanted: closing the connection spares reading it.
    close = {"Connection": "close"}
    if status == 413:
        return problem_response(
            413,
            PayloadTooLarge.slug,
            PayloadTooLarge.title,
            f"the request body is larger than {limit} bytes",
            headers=close,
        )
    return problem_response(
        408,
        "request-timeout",
        "Request timeout",
        f"the request body did not arrive in time (about {body_timeout:g} s, more for "
        "larger bodies sent steadily)",
        headers=close,
    )


async def _answer(send: Send, request_id: str, response: Response) -> None:
    """Sends an answer of the middleware's own, with the headers every response carries."""
    headers = with_security_headers(response.raw_headers)
    headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def record_request(method: str, template: str, status: int, elapsed: float) -> None:
    """Metrics and the access log line of one request."""
    # A client picks the method: an unknown one must not mint a new time series.
    method = method if method in _KNOWN_METHODS else "OTHER"
    counter, histogram = _series(method, template, status)
    counter.inc()
    histogram.observe(elapsed)
    duration_ms = round(elapsed * 1000, 2)
    if _access_lines_direct:
        _write_access_line(method, template, status, duration_ms)
    else:
        access_log.info(
            "request", method=method, route=template, status=status, duration_ms=duration_ms
        )


# Set by configure_logging: JSON at INFO or below, where the access log writes its lines
# itself. Through structlog's processor chain a line cost 8.8 µs, written here 2 µs; on
# GET /api/v1/me logging at INFO instead of WARNING was 20% of the throughput.
_access_lines_direct = False


def _write_access_line(method: str, route: str, status: int, duration_ms: float) -> None:
    """The line structlog would write for access_log.info("request", ...): the same keys in
    the same order, the bound context (request id), level, UTC timestamp, redaction (a
    test compares the two)."""
    event: dict[str, Any] = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": duration_ms,
        "event": "request",
    }
    for key, value in structlog.contextvars.get_contextvars().items():
        event.setdefault(key, value)
    event["level"] = "info"
    event["timestamp"] = datetime.now(UTC).isoformat()[:-6] + "Z"  # utc_text, without its checks
    _redact(None, "", event)
    line = orjson.dumps(event) + b"\n"
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        os.write(2, line)
        return
    _pending_lines.append(line)
    if len(_pending_lines) == 1:
        loop.call_soon(flush_access_lines)


# Access lines of one turn of the event loop, written together at its end: one write
# system call per turn instead of one per request (under load a turn completes several
# requests; the call was 5% of GET /me). A line waits for less than one turn.
_pending_lines: list[bytes] = []
# POSIX makes writes of up to PIPE_BUF bytes to a pipe atomic: chunks no larger keep
# lines from several processes sharing stderr from interleaving mid-line.
_ATOMIC_WRITE = 4096


def flush_access_lines() -> None:
    lines = _pending_lines[:]
    _pending_lines.clear()
    chunk = b""
    for line in lines:
        if chunk and len(chunk) + len(line) > _ATOMIC_WRITE:
            os.write(2, chunk)
            chunk = b""
        chunk += line
    if chunk:
        os.write(2, chunk)


_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@functools.cache
def _series(method: str, template: str, status: int) -> tuple[Any, Any]:
    """The labelled children, looked up once: `labels()` costs a lock and a dict build on
    every call. Bounded: methods are normalised, templates and statuses come from the app."""
    return (
        HTTP_REQUESTS.labels(method, template, str(status)),
        HTTP_LATENCY.labels(method, template),
    )


def scope_header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def request_id_of(scope: Scope) -> str:
    given = scope_header(scope, REQUEST_ID_HEADER.encode())
    if given and _SAFE_REQUEST_ID.match(given):
        return given
    # A correlation id, not a secret: the PRNG (reseeded in a forked child) instead of a
    # getrandom() system call per request, which was 4% of GET /me.
    return f"{random.getrandbits(128):032x}"


# Gauges read from the database when Prometheus scrapes, not on every change.
MetricsRefresher = Callable[[Any], Awaitable[None]]
_refreshers: list[MetricsRefresher] = []


def refresh_on_scrape(refresher: MetricsRefresher) -> None:
    if refresher not in _refreshers:
        _refreshers.append(refresher)


async def metrics_endpoint(request: Request) -> Response:
    # Login and registration counts, traffic and queue depth are not for everyone: the
    # scraper sends GAMEPORTAL_METRICS_TOKEN as a bearer token; without one set, there is
    # no /metrics at all.
    token: str | None = request.app.state.settings.metrics_token
    if token is None:
        return problem_response(
            404,
            "not-found",
            "Not found",
            "metrics are off; set GAMEPORTAL_METRICS_TOKEN and scrape with it as a bearer token",
        )
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not _same_secret(given.strip(), token):
        return problem_response(
            401,
            "unauthorized",
            "Authentication required",
            "send the metrics token as `Authorization: Bearer <token>`",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    for refresher in _refreshers:
        try:
            await refresher(request.app)
        except Exception:  # a stale gauge beats a failed scrape
            error_log.exception("metrics_refresh_failed", refresher=refresher.__qualname__)
    return Response(latest_metrics(), media_type=CONTENT_TYPE_LATEST)


def _same_secret(given: str, expected: str) -> bool:
    # Digests first: compare_digest on the raw strings would tell the token's length.
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


# --- several processes ---------------------------------------------------------------------
#
# `gameportal serve --workers N` runs N API processes and a queue worker, each with its own
# metrics; a scrape reaches one of them. With PROMETHEUS_MULTIPROC_DIR set before the
# processes start (serve sets it), prometheus_client keeps every process's values in files
# there, and a scrape adds them up: counters and histograms summed over every process that
# ever ran (a restarted worker's requests still count), each gauge as its
# `multiprocess_mode` says.


def multiprocess_dir() -> str | None:
    """The folder this process's metrics are written to, or None when they live in memory.

    prometheus_client decides when it is first imported, from the environment then; this
    follows that decision rather than the environment now, so a process never scrapes a
    folder it does not write to."""
    if not getattr(values.ValueClass, "_multiprocess", False):
        return None
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def latest_metrics() -> bytes:
    """The exposition text: this process's metrics, or every process's in multiprocess mode."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def process_exiting() -> None:
    """Bookkeeping when a process that wrote metrics stops (see forget_process)."""
    flush_access_lines()
    forget_process(os.getpid())


def forget_process(pid: int) -> None:
    """Drops a stopped process's live gauges (modes `live*`), which describe running
    processes only. Counters and histograms stay: the work it did still counts."""
    path = multiprocess_dir()
    if path is not None:
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
