"""Browser session mode: the refresh token in an HttpOnly cookie, never in the page's
JavaScript, and the CSRF defence of every route the cookie authenticates.

A login or registration with `"sessionMode": "cookie"` answers the access token in its
body as always (the page keeps it in memory) and the refresh token only as a cookie:
`HttpOnly` (no script reads it), `Secure` (HTTPS only; GAMEPORTAL_COOKIE_SECURE=false for
a plain-HTTP development host), `SameSite=Strict` (no other site's page or link makes
the browser send it) and `Path=/api/v1/auth` (sent to the auth routes alone). Refresh and
logout then read it.

A cookie is sent by the browser whoever asks, so every request the cookie authenticates
(and every login asking for one, against login CSRF) must also show that a page allowed
to call the API sent it: an `Origin` (or, without one, a `Referer`) that is one of
GAMEPORTAL_CORS_ORIGINS or the API's own, and the `X-CSRF` header, which an HTML form
cannot send and a script on another origin can send only after a CORS preflight that
only those origins pass. Either missing: 403 `cross-site-request`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from gameportal.config import Settings
from gameportal.errors import Forbidden

CSRF_HEADER = "X-CSRF"
COOKIE_PATH = "/api/v1/auth"  # the routes that read it: refresh, logout
# `__Secure-` makes browsers refuse the cookie from anything but HTTPS, so a
# man-in-the-middle on plain HTTP cannot plant a session of their own in its place.
SECURE_COOKIE = "__Secure-gameportal-refresh"
PLAIN_COOKIE = "gameportal-refresh"  # GAMEPORTAL_COOKIE_SECURE=false (development)

_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


class CrossSiteRequest(Forbidden):
    slug = "cross-site-request"
    title = "Cross-site request refused"


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def cookie_name(settings: Settings) -> str:
    return SECURE_COOKIE if settings.cookie_secure else PLAIN_COOKIE


def refresh_cookie(request: Request) -> str | None:
    """The refresh token of browser session mode, if the request carries one."""
    if "cookie" not in request.headers:
        return None
    return request.cookies.get(cookie_name(_settings(request))) or None


def _cookie(request: Request, value: str, max_age: int) -> str:
    settings = _settings(request)
    # Behind a proxy that mounts the API under a prefix, the routes are under it too.
    path = request.scope.get("root_path", "").rstrip("/") + COOKIE_PATH
    secure = "; Secure" if settings.cookie_secure else ""
    return (
        f"{cookie_name(settings)}={value}; Max-Age={max_age}; Path={path}; HttpOnly"
        f"{secure}; SameSite=Strict"
    )


def set_refresh_cookie(response: Response, request: Request, token: str) -> None:
    """The cookie lives as long as the session may stay unused (each refresh renews it);
    the session's own end still ends it sooner."""
    settings = _settings(request)
    max_age = min(settings.session_idle_days, settings.session_ttl_days) * 86_400
    response.headers.append("set-cookie", _cookie(request, token, max_age))


def clear_refresh_cookie_header(request: Request) -> str:
    return _cookie(request, "", 0)


def clear_refresh_cookie(response: Response, request: Request) -> None:
    response.headers.append("set-cookie", clear_refresh_cookie_header(request))


def _origin(request: Request) -> str | None:
    origin = request.headers.get("origin")
    if origin is not None:
        return origin
    referer = request.headers.get("referer")
    if not referer:
        return None
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def _authority(netloc: str, scheme: str) -> str:
    default = _DEFAULT_PORTS.get(scheme)
    netloc = netloc.lower()
    return netloc[: -len(default)] if default and netloc.endswith(default) else netloc


def allowed_origin(request: Request, origin: str) -> bool:
    """One of the configured origins (`*` does not count: any origin may read the public
    API, none may use a player's cookie), or the API's own, as its Host header names it (a
    browser sets both; a page of another host sends its own host in Origin)."""
    origin = origin.strip().lower().rstrip("/")
    configured = {o.strip().lower().rstrip("/") for o in _settings(request).cors_origins}
    if origin in configured - {"*"}:
        return True
    parts = urlsplit(origin)
    host = request.headers.get("host")
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc or "@" in parts.netloc or not host:
        return False
    return _authority(parts.netloc, parts.scheme) == _authority(host, parts.scheme)


def check_same_site_request(request: Request) -> None:
    """Refuse (403) a request the cookie would authenticate unless a page allowed to call
    the API sent it (see the module's docstring)."""
    if not request.headers.get(CSRF_HEADER):
        raise CrossSiteRequest(
            f"send the {CSRF_HEADER} header (any value, e.g. `{CSRF_HEADER}: 1`) with requests "
            "that use the session cookie; an HTML form cannot send it"
        )
    origin = _origin(request)
    if origin is None or not allowed_origin(request, origin):
        raise CrossSiteRequest(
            "the session cookie is only taken from the API's own origin and the origins in "
            "GAMEPORTAL_CORS_ORIGINS; this request's Origin is not one of them"
        )
