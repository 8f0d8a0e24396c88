"""Security headers every response carries, unless the route set its own.

Added where responses leave the app (the request middleware, the public-read fast path),
so routes answered by hand get them too. A response that sets none of a header gets the
default: nothing cached (`no-store`: token responses, the caller's own data), no type
sniffing, never framed, no referrer, and a CSP under which a response opened in a browser
loads and runs nothing. Pages that need more (the API docs) set their own CSP.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

# Every response, whatever it sets.
BASE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", API_CSP),
)
DEFAULT_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    *BASE_HEADERS,
    (b"cache-control", b"no-store"),
)
_DEFAULT_NAMES = frozenset(name for name, _ in DEFAULT_HEADERS)


def with_security_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` and the defaults it does not set itself."""
    out = list(headers)
    present = {name.lower() for name, _ in out} & _DEFAULT_NAMES
    if not present:
        out.extend(DEFAULT_HEADERS)
    elif len(present) < len(_DEFAULT_NAMES):
        out.extend(item for item in DEFAULT_HEADERS if item[0] not in present)
    return out


# --- pages ---------------------------------------------------------------------------------

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def page_csp(html: bytes) -> bytes:
    """The CSP of FastAPI's documentation pages (Swagger UI, ReDoc): their scripts and
    styles from the CDN they are served from, inline scripts only by their hashes, calls
    only to this origin (the OpenAPI document, "try it out"), never framed."""
    hashes = b" ".join(
        b"'sha256-" + base64.b64encode(hashlib.sha256(script).digest()) + b"'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return b"; ".join(
        [
            b"default-src 'none'",
            b"script-src https://cdn.jsdelivr.net" + (b" " + hashes if hashes else b""),
            # ReDoc styles its page from script (styled-components): inline styles.
            b"style-src https://cdn.jsdelivr.net https://fonts.googleapis.com 'unsafe-inline'",
            b"font-src https://fonts.gstatic.com",
            b"img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
            b"connect-src 'self'",
            b"worker-src blob:",  # ReDoc's search runs in a worker
            b"frame-ancestors 'none'",
            b"base-uri 'none'",
            b"form-action 'none'",
        ]
    )


def with_page_csp(app: ASGIApp) -> ASGIApp:
    """An HTML route's app, answering with a CSP made for the page it renders (its inline
    scripts' hashes). For small generated pages only: the body is held until complete."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = [
                (name, value)
                for name, value in start.get("headers", [])
                if name.lower() != b"content-security-policy"
            ]
            headers.append((b"content-security-policy", page_csp(body)))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, hold)

    return wrapped
