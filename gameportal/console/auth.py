"""Signing in to the console and out of it.

Sign-in is the identity service's login (the API's throttle, lockouts and security
events, the same answers for a wrong address and a wrong password), opening a device
session (device type OTHER, the browser's user agent). Only staff (editor, marketer,
admin) keep it: a player's password is checked like anyone's, then the session it opened
is ended at once and the page says the account has no console access.

The session's id, its user and the sign-in time, signed with the secret key, are the
`gameportal_console` cookie (HttpOnly; Secure unless GAMEPORTAL_COOKIE_SECURE=false;
SameSite=Strict; Path=/console). Every request checks the session as the API checks an
access token's (frame.current_staff): signing out, an admin ending the session, a block
or a role change count at the next click. No refresh token leaves the server: a console
session cannot be turned into API tokens.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.responses import Response

from gameportal.console.frame import (
    ConsoleSession,
    SignInRequired,
    check_csrf,
    clear_session_cookie,
    console_form,
    console_router,
    current_staff,
    form_text,
    has_console_access,
    render,
    safe_next,
    same_origin,
    see_other,
    session_cookie_value,
    set_session_cookie,
)
from gameportal.db import DbSession
from gameportal.identity import service as identity_service
from gameportal.identity.deps import get_client_info
from gameportal.identity.schemas import LoginRequest
from gameportal.identity.service import (
    AccountBlocked,
    InvalidCredentials,
    Principal,
    TooManyAttempts,
)

router = console_router()

_LOGIN_TEMPLATE = "console/login.html"


def _login_page(
    request: Request,
    *,
    status_code: int = 200,
    email: str = "",
    next_path: str = "/console",
    error: str | None = None,
    field_errors: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        _LOGIN_TEMPLATE,
        status_code=status_code,
        headers=headers,
        email=email,
        next_path=next_path,
        error=error,
        field_errors=field_errors or {},
    )


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    principal = await current_staff(request)
    if principal is not None and has_console_access(principal.roles):
        return see_other(request, safe_next(next))
    return _login_page(request, next_path=safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    if not same_origin(request):
        return _login_page(
            request,
            status_code=403,
            error="The sign-in did not come from this site's sign-in page. Reload it and "
            "try again.",
        )
    form = await console_form(request)
    email, password = form_text(form, "email"), form_text(form, "password")
    next_path = safe_next(form_text(form, "next"))
    try:
        checked = LoginRequest.model_validate({"email": email, "password": password})
    except ValidationError as exc:
        fields = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
        errors = {}
        if "email" in fields:
            errors["email"] = "Enter an email address, like name@example.com."
        if "password" in fields:
            errors["password"] = "Enter your password."  # noqa: S105 (a message)
        return _login_page(
            request, status_code=422, email=email, next_path=next_path, field_errors=errors
        )
    client = dataclasses.replace(await get_client_info(request), device_type="OTHER")
    try:
        result = await identity_service.login(
            request.app.state.db.pool,
            request.app.state.identity,
            email=checked.email,
            password=checked.password,
            client=client,
        )
    except InvalidCredentials:
        return _login_page(
            request,
            status_code=401,
            email=email,
            next_path=next_path,
            error="The email address or password is wrong.",
        )
    except AccountBlocked:
        return _login_page(
            request,
            status_code=403,
            email=email,
            next_path=next_path,
            error="This account is blocked. Ask an administrator to review it.",
        )
    except TooManyAttempts as exc:
        return _login_page(
            request,
            status_code=429,
            email=email,
            next_path=next_path,
            error=f"Too many failed attempts: {exc.detail}.",
            headers=exc.headers,
        )
    user, opened = result.user, result.session
    user_id = uuid.UUID(str(_field(user, "id")))
    session_id = uuid.UUID(str(_field(opened, "id")))
    roles: tuple[str, ...] = tuple(_field(user, "roles"))
    if not has_console_access(roles):
        # The password was right, but the console is for staff: the session just opened
        # is ended, as a logout would.
        await _end_session(request, user_id, session_id, roles)
        return _login_page(
            request,
            status_code=403,
            email=email,
            next_path=next_path,
            error="This account has no console access. The console is for editors, "
            "marketers and administrators.",
        )
    cookie = session_cookie_value(
        request.app.state.settings, ConsoleSession(session_id, user_id, int(time.time()))
    )
    response = see_other(request, next_path)
    set_session_cookie(response, request, cookie)
    return response


def _field(row: object, name: str) -> Any:
    return row[name] if isinstance(row, dict) else getattr(row, name)


async def _end_session(
    request: Request, user_id: uuid.UUID, session_id: uuid.UUID, roles: tuple[str, ...]
) -> None:
    principal = Principal(user_id=user_id, session_id=session_id, roles=roles)
    async with request.app.state.db.sessionmaker() as session:
        await identity_service.logout(session, principal)
        await session.commit()


@router.post("/logout")
async def logout(request: Request, session: DbSession) -> Response:
    # Any signed-in session may end itself, with a console role or not (any longer).
    principal = await current_staff(request)
    if principal is None:
        raise SignInRequired
    await check_csrf(request)
    await identity_service.logout(session, principal)
    response = see_other(request, "/console/login", flash_message="You have signed out.")
    clear_session_cookie(response, request)
    return response


# The routes that take no require_console_role dependency: who may call them is above.
UNGUARDED = frozenset({login_page, login, logout})
