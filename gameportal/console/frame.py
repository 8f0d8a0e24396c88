"""The operator console's frame: routers, navigation, roles, CSRF and rendering.

How to add a domain's pages (one router, its templates, one navigation entry)
-----------------------------------------------------------------------------

1. A module in this package, e.g. `gameportal/console/media.py`, with a module-level
   `router` (install_console finds every module here that has one; no list to edit)::

       from gameportal.console.frame import (
           ConsoleRequest, NavEntry, console_router, flash, render, require_console_role,
           see_other,
       )

       router = console_router(
           "/media", nav=NavEntry("Media", "/console/media", roles=("editor",), order=30)
       )
       Editor = Annotated[Principal, Depends(require_console_role("editor"))]

       @router.get("")
       async def media_list(request: Request, editor: Editor, session: DbReadSession):
           items = await media_service.list_media(session, ...)   # the API's own service
           return render(request, "console/media/list.html", items=items)

       @router.post("/{media_id}/delete")
       async def media_delete(media_id: uuid.UUID, request: Request, editor: Editor,
                              session: DbSession):
           form = await console_form(request)          # already CSRF-checked
           await media_service.delete_media(session, ...)  # raises -> an error page
           return see_other(request, "/console/media", flash_message="Deleted.")

   Every route takes a `require_console_role(...)` dependency (install_console refuses a
   route without one): it answers 303 to /console/login for a visitor who is not signed
   in, 403 for a staff member without the role (admin passes every check), and on a POST
   checks the CSRF token and the Origin first. Write through the domain's service, never
   SQL of your own, so the API's rules hold; reads may use the domain's repository.
   A domain error a handler does not catch becomes an error page with its status (404,
   409, ...); catch the ones a form should show in place.

2. Templates under `gameportal/web/templates/en/console/<domain>/`, each starting
   `{% extends "console/base.html" %}` and filling `{% block title %}` and
   `{% block content %}` (see console/overview/index.html). Every form that POSTs has
   `{{ csrf_field() }}`; htmx requests carry the token by themselves (console.js).
   Markup classes from static/console/console.css: `.card`, `.stat`, `table.data`,
   `.badge badge-<status>`, `.button`, `.button-danger`, `.filters`, `.field`.

3. The `nav=NavEntry(label, path, roles, order)` above: the sidebar shows it to staff
   with one of `roles` (and to admins), ordered by `order` (overview 0, players 10,
   content 20, media 30, messages 40, games 50, live operations 60).

4. Tests in tests/console/ (see tests/console/support.py: `signed_in(client, db, role)`)
   and every route in CONSOLE_ACCESS of tests/test_route_roles.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gameportal.config import Settings
from gameportal.errors import NotFound, PortalError
from gameportal.identity import repository as identity_repo
from gameportal.identity.service import Identity, Principal
from gameportal.web.pages import PAGE_CSP, Pages

STAFF_ROLES = ("editor", "marketer", "admin")
ROLE_LABELS = {"user": "Player", "editor": "Editor", "marketer": "Marketer", "admin": "Admin"}

COOKIE_NAME = "gameportal_console"
FLASH_COOKIE = "gameportal_console_flash"
COOKIE_PATH = "/console"
# A console session ends this long after sign-in, whatever the device session's own TTL:
# staff sign in again each working day.
SESSION_HOURS = 12

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

# The pages' CSP plus their own scripts (htmx, console.js) and htmx's requests.
CONSOLE_CSP = f"{PAGE_CSP}; script-src 'self'; connect-src 'self'"
CONSOLE_HEADERS = {"content-security-policy": CONSOLE_CSP}

_LANGUAGES = ("en",)  # the console is in English; templates under templates/en/console/


# --- errors that become pages ----------------------------------------------------------------


class SignInRequired(Exception):
    """Not signed in (no cookie, an ended session, an expired one): 303 to the sign-in."""


class ConsoleForbidden(Exception):
    """Signed in, but the page needs a role the staff member lacks: a 403 page."""

    def __init__(self, message: str, *, title: str = "You don't have access to this page"):
        super().__init__(message)
        self.message = message
        self.title = title


class CsrfRefused(ConsoleForbidden):
    def __init__(self, message: str) -> None:
        super().__init__(message, title="This form could not be accepted")


# --- navigation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NavEntry:
    label: str
    path: str  # e.g. "/console/players"; marked current for this path and below
    roles: tuple[str, ...]  # any of these (admin always)
    order: int = 100

    def visible_to(self, principal: Principal) -> bool:
        return "admin" in principal.roles or any(r in principal.roles for r in self.roles)


NAV: list[NavEntry] = []


def nav_for(principal: Principal) -> list[NavEntry]:
    return sorted((e for e in NAV if e.visible_to(principal)), key=lambda e: (e.order, e.label))


# --- routers -------------------------------------------------------------------------------------


class ConsoleRoute(APIRoute):
    """A console route: the frame's exceptions and domain errors become pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return sign_in_redirect(request)
            except ConsoleForbidden as exc:
                return error_page(request, 403, exc.title, exc.message)
            except RequestValidationError:
                return error_page(
                    request, 404, "Page not found", "This address does not name a page here."
                )
            except PortalError as exc:
                return error_page(
                    request,
                    exc.status,
                    exc.title,
                    exc.detail or exc.title,
                    headers=exc.headers or None,
                )

        return console_handler


class ConsoleRouter(APIRouter):
    nav: NavEntry | None = None


def console_router(prefix: str = "", *, nav: NavEntry | None = None) -> ConsoleRouter:
    """A domain's router: its routes under /console`prefix`, kept out of the OpenAPI
    document, errors rendered as pages; `nav` is its entry in the sidebar."""
    router = ConsoleRouter(
        prefix=f"{COOKIE_PATH}{prefix}", include_in_schema=False, route_class=ConsoleRoute
    )
    router.nav = nav
    if nav is not None and nav not in NAV:
        NAV.append(nav)
    return router


# --- signing (session cookie, CSRF token, flash) -----------------------------------------------


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _mac(secret: str, purpose: str, value: str) -> str:
    digest = hmac.new(secret.encode(), f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(secret: str, purpose: str, value: str) -> str:
    return f"{value}.{_mac(secret, purpose, value)}"


def unsign(secret: str, purpose: str, signed: str) -> str | None:
    value, _, mac = signed.rpartition(".")
    if not value or not hmac.compare_digest(mac, _mac(secret, purpose, value)):
        return None
    return value


def csrf_token(settings: Settings, session_id: uuid.UUID) -> str:
    """The form token of a console session: bound to it, so it dies with it."""
    return _mac(settings.secret_key, "console-csrf", str(session_id))


# --- who is asking -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleSession:
    session_id: uuid.UUID
    user_id: uuid.UUID
    issued_at: int  # unix seconds


def session_cookie_value(settings: Settings, session: ConsoleSession) -> str:
    raw = f"{session.session_id.hex}-{session.user_id.hex}-{session.issued_at}"
    return sign(settings.secret_key, "console-session", raw)


def read_session_cookie(request: Request) -> ConsoleSession | None:
    signed = request.cookies.get(COOKIE_NAME) if "cookie" in request.headers else None
    if not signed:
        return None
    raw = unsign(_settings(request).secret_key, "console-session", signed)
    if raw is None:
        return None
    try:
        session_hex, user_hex, issued = raw.split("-")
        found = ConsoleSession(uuid.UUID(session_hex), uuid.UUID(user_hex), int(issued))
    except ValueError:
        return None
    if not 0 <= time.time() - found.issued_at < SESSION_HOURS * 3600:
        return None
    return found


def has_console_access(roles: Sequence[str]) -> bool:
    return any(role in STAFF_ROLES for role in roles)


async def current_staff(request: Request) -> Principal | None:
    """The signed-in staff member, checked against the database on every request (the
    identity session check: an ended session, a block or a role change count at once);
    None when not signed in. Kept on the request for the page's frame."""
    known: Principal | None = getattr(request.state, "console_principal", None)
    if known is not None:
        return known
    found = read_session_cookie(request)
    if found is None:
        return None
    identity: Identity = request.app.state.identity
    row = await identity_repo.live_session_user(
        request.app.state.db.pool,
        session_id=found.session_id,
        user_id=found.user_id,
        idle=identity.idle_timeout,
    )
    if row is None:
        return None
    user = dict(row)
    principal = Principal(
        user_id=found.user_id, session_id=found.session_id, roles=tuple(user["roles"]), user=user
    )
    request.state.console_principal = principal
    request.state.csrf_token = csrf_token(_settings(request), found.session_id)
    return principal


# The dependencies require_console_role made, so install_console can check every route has one.
ROLE_DEPENDENCIES: set[Callable[..., Any]] = set()


def require_console_role(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """A route's dependency: the signed-in staff member holding one of `roles` (admin
    holds all). Not signed in: 303 to the sign-in page; no such role: a 403 page. On a
    state-changing request it then checks the CSRF token and the Origin (a 403 page)."""
    wanted = tuple(roles) or STAFF_ROLES

    async def dependency(request: Request) -> Principal:
        principal = await current_staff(request)
        if principal is None:
            raise SignInRequired
        if not has_console_access(principal.roles):
            raise ConsoleForbidden("This account has no console access.", title="No console access")
        if "admin" not in principal.roles and not any(r in principal.roles for r in wanted):
            names = " or ".join(ROLE_LABELS.get(r, r) for r in wanted)
            raise ConsoleForbidden(f"This page is for the {names} role.")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            await check_csrf(request)
        return principal

    dependency.__name__ = "require_console_" + "_".join(wanted)
    ROLE_DEPENDENCIES.add(dependency)
    return dependency


# --- CSRF ----------------------------------------------------------------------------------------


def same_origin(request: Request) -> bool:
    """Whether the request came from a page of this site: its Origin (or, without one,
    its Referer) is the request's own host or the public base URL. A state-changing
    request with neither is refused too: every browser in use sends Origin on a POST."""
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if not referer:
            return False
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin == "null":
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    host = parts.netloc.lower()
    own = {request.headers.get("host", "").lower()}
    own.add(urlsplit(_settings(request).public_base_url).netloc.lower())
    return host in own - {""}


async def console_form(request: Request) -> FormData:
    """The posted form (an empty one for a body that is not a form); read once."""
    cached: FormData | None = getattr(request.state, "console_form", None)
    if cached is not None:
        return cached
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form(max_fields=200)
    else:
        form = FormData()
    request.state.console_form = form
    return form


async def check_csrf(request: Request) -> None:
    if not same_origin(request):
        raise CsrfRefused(
            "The request did not come from a console page. Go back, reload the page and try again."
        )
    expected: str | None = getattr(request.state, "csrf_token", None)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        value = (await console_form(request)).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if expected is None or not sent or not hmac.compare_digest(sent, expected):
        raise CsrfRefused(
            "The form's security token is missing or has expired. Go back, reload the page "
            "and try again."
        )


def form_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


# --- responses -----------------------------------------------------------------------------------


def console_url(request: Request, path: str) -> str:
    """`path` (absolute, "/console/...") under the app's root path (a proxy's prefix)."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/") + path


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a console path, never another site."""
    if not path or not path.startswith(COOKIE_PATH) or path.startswith("//") or "\\" in path:
        return COOKIE_PATH
    parts = urlsplit(path)
    if parts.scheme or parts.netloc:
        return COOKIE_PATH
    return path


def sign_in_redirect(request: Request) -> Response:
    target = COOKIE_PATH + "/login"
    if request.method == "GET" and request.url.path != target:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target += "?next=" + quote(wanted, safe="/")
    url = console_url(request, target)
    if request.headers.get("hx-request"):
        # htmx follows a 303 inside its XHR and would swap the sign-in page into a fragment.
        return Response(status_code=401, headers={"HX-Redirect": url, **CONSOLE_HEADERS})
    response = RedirectResponse(url, status_code=303)
    if COOKIE_NAME in request.cookies:
        clear_session_cookie(response, request)
    return response


def _cookie(request: Request, name: str, value: str, max_age: int) -> str:
    path = console_url(request, COOKIE_PATH)
    secure = "; Secure" if _settings(request).cookie_secure else ""
    return f"{name}={value}; Max-Age={max_age}; Path={path}; HttpOnly{secure}; SameSite=Strict"


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    response.headers.append(
        "set-cookie", _cookie(request, COOKIE_NAME, value, SESSION_HOURS * 3600)
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.headers.append("set-cookie", _cookie(request, COOKIE_NAME, "", 0))


def flash(response: Response, request: Request, message: str, kind: str = "success") -> None:
    """A message for the next page this browser opens ("Roles saved."), then gone."""
    payload = base64.urlsafe_b64encode(json.dumps([kind, message]).encode()).decode()
    signed = sign(_settings(request).secret_key, "console-flash", payload)
    response.headers.append("set-cookie", _cookie(request, FLASH_COOKIE, signed, 60))


def _take_flash(request: Request) -> list[dict[str, str]]:
    signed = request.cookies.get(FLASH_COOKIE) if "cookie" in request.headers else None
    if not signed:
        return []
    payload = unsign(_settings(request).secret_key, "console-flash", signed)
    if payload is None:
        return []
    try:
        kind, message = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except (ValueError, TypeError):
        return []
    if kind not in ("success", "error", "info"):
        kind = "info"
    return [{"kind": str(kind), "message": str(message)}]


def see_other(
    request: Request, path: str, *, flash_message: str | None = None, flash_kind: str = "success"
) -> Response:
    """303 to a console page after a form's POST, with a message for that page."""
    response = RedirectResponse(console_url(request, path), status_code=303)
    if flash_message:
        flash(response, request, flash_message, flash_kind)
    return response


def format_time(value: datetime | None, empty: str = "—") -> str:
    """A timestamp as pages show it: UTC, to the minute."""
    if value is None:
        return empty
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


def render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """`template` (under templates/en/, e.g. "console/players/list.html") inside the
    frame: the staff member, their navigation, this request's CSRF token and flash."""
    principal: Principal | None = getattr(request.state, "console_principal", None)
    token: str = getattr(request.state, "csrf_token", "")
    messages = _take_flash(request)
    path = request.url.path

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)

    nav = nav_for(principal) if principal is not None else []
    current = max(
        (
            e
            for e in nav
            if path == e.path or (e.path != COOKIE_PATH and path.startswith(e.path + "/"))
        ),
        key=lambda e: len(e.path),
        default=None,
    )
    frame = {
        "staff": principal,
        "role_labels": ROLE_LABELS,
        "nav": nav,
        "current_nav": current,
        "csrf_token": token,
        "csrf_field": csrf_field,
        "flashes": messages,
        "request_path": path,
        "console_url": lambda p: console_url(request, p),
        "fmt_time": format_time,
    }
    response = _pages(request).render(
        template,
        _LANGUAGES,
        {**frame, **context},
        status_code=status_code,
        headers={**CONSOLE_HEADERS, **(headers or {})},
    )
    if messages:
        response.headers.append("set-cookie", _cookie(request, FLASH_COOKIE, "", 0))
    return response


def error_page(
    request: Request,
    status_code: int,
    title: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    return render(
        request,
        "console/error.html",
        status_code=status_code,
        headers=headers,
        error_title=title,
        error_message=message,
        status=status_code,
    )


def not_found(what: str = "page") -> NotFound:
    return NotFound(f"There is no such {what}.")
