"""Security headers every response carries, unless the route set its own.

Added where responses leave the app (the request middleware, the public-read fast path),
so routes answered by hand get them too. A response that sets none of a header gets the
default: nothing cached (`no-store`: token responses, the caller's own data), no type
sniffing, never framed, no referrer, and a CSP under which a response opened in a browser
loads and runs nothing. Pages that need more (gameportal.web: the account pages, the API
docs) set their own CSP.
"""

from __future__ import annotations

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


_HSTS = b"strict-transport-security"


class StrictTransportSecurity:
    """Strict-Transport-Security on every answer (the fast paths' and the request
    middleware's own included: it is the outermost middleware), unless a route set its
    own. Installed only when the public URL is https (gameportal.app): browsers ignore the
    header over plain HTTP, and a developer's http://localhost must stay reachable."""

    def __init__(self, app: ASGIApp, *, max_age: int) -> None:
        self.app = app
        self.header = (_HSTS, b"max-age=%d" % max_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == _HSTS for name, _ in headers):
                    headers.append(self.header)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_hsts)
