"""Routes of a player's own identity: auth and /me. HTTP only; the rules live in service."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Request, Response, status
from pydantic import ValidationError

from gameportal.db import DbPool, DbReadSession, DbSession
from gameportal.errors import Unauthorized, problem_responses
from gameportal.identity import service
from gameportal.identity.browser import (
    check_same_site_request,
    clear_refresh_cookie,
    clear_refresh_cookie_header,
    refresh_cookie,
    set_refresh_cookie,
)
from gameportal.identity.deps import (
    AuthCall,
    AuthCallDep,
    BearerIfSent,
    Client,
    CurrentUser,
    CurrentUserProfile,
    IdentityDep,
    get_auth_call,
    get_client_info,
    get_user_profile,
)
from gameportal.identity.schemas import (
    AccountDelete,
    AuthResponse,
    EmailVerification,
    LoginRequest,
    MeUpdate,
    PasswordChange,
    PasswordReset,
    PasswordResetRequest,
    RefreshRequest,
    RegisterRequest,
    SessionMode,
    SessionRead,
    TokenResponse,
    UserRead,
    auth_response_json,
    plain_refresh_token,
    token_response_json,
    user_read_json,
)
from gameportal.kit.pagination import Page, Pagination, split_page
from gameportal.kit.routing import answer_directly
from gameportal.kit.schemas import Schema, example
from gameportal.liveops.conversions import carry_over, carry_over_in

auth_router = APIRouter(prefix="/api/v1/auth", tags=["auth"], responses=problem_responses(500))
me_router = APIRouter(prefix="/api/v1/me", tags=["me"], responses=problem_responses(500))

_AUTHED = problem_responses(401, 422)


class SessionsEnded(Schema):
    model_config = example({"ended": 2})

    ended: int


def _auth_response(result: service.AuthResult, *, cookie: bool = False) -> AuthResponse:
    session = SessionRead.model_validate(result.session)
    return AuthResponse(
        access_token=result.tokens.access_token,
        refresh_token=None if cookie else result.tokens.refresh_token,
        expires_in=result.tokens.expires_in,
        device_token=result.device_token,
        user=UserRead.model_validate(result.user),
        session=session.model_copy(update={"current": True}),
    )


def _cookie_mode(request: Request, mode: SessionMode) -> bool:
    """Whether the caller asked for browser session mode; if so, only from a page allowed
    to call the API (login CSRF: another site must not log a player's browser into an
    account of its choosing). Checked before any work."""
    if mode != "cookie":
        return False
    check_same_site_request(request)
    return True


def _with_fingerprint(
    client: service.ClientInfo, fingerprint: str | None, device_token: str | None = None
) -> service.ClientInfo:
    # What the body says about the device wins over its headers.
    if fingerprint is None and device_token is None:
        return client
    return service.ClientInfo(
        ip=client.ip,
        user_agent=client.user_agent,
        device_type=client.device_type,
        fingerprint=fingerprint or client.fingerprint,
        device_token=device_token or client.device_token,
    )


@auth_router.post(
    "/register",
    operation_id="auth_register",
    status_code=status.HTTP_201_CREATED,
    response_model=AuthResponse,
    responses=problem_responses(403, 409, 413, 422, 429),
    summary="Create an account and its first device session",
)
async def register(
    body: RegisterRequest,
    session: DbSession,
    db: DbPool,
    identity: IdentityDep,
    client: Client,
    request: Request,
    response: Response,
) -> AuthResponse:
    cookie = _cookie_mode(request, body.session_mode)
    result = await service.register(
        session,
        db.pool,
        identity,
        email=body.email,
        password=body.password,
        name=body.name,
        preferences=body.preferences.model_dump(exclude_none=True) if body.preferences else {},
        client=_with_fingerprint(client, body.fingerprint),
    )
    if cookie:
        set_refresh_cookie(response, request, result.tokens.refresh_token)
    # Live operations: a visitor's campaign variants pass to the new account.
    await carry_over_in(session, request.headers.get("x-anonymous-id"), result.user)
    return _auth_response(result, cookie=cookie)


@auth_router.post(
    "/login",
    operation_id="auth_login",
    response_model=AuthResponse,
    responses=problem_responses(401, 403, 422, 429),
    summary="Log in: a new device session with an access and a refresh token",
)
async def login(
    body: LoginRequest, call: AuthCallDep, request: Request, response: Response
) -> AuthResponse:
    cookie = _cookie_mode(request, body.session_mode)
    result = await _log_in(body, call, request.headers.get("x-anonymous-id"))
    if cookie:
        set_refresh_cookie(response, request, result.tokens.refresh_token)
    return _auth_response(result, cookie=cookie)


async def _log_in(
    body: LoginRequest, call: AuthCall, anonymous_id: str | None = None
) -> service.AuthResult:
    result = await service.login(
        call.pool,
        call.identity,
        email=body.email,
        password=body.password,
        client=_with_fingerprint(call.client, body.fingerprint, body.device_token),
    )
    # Live operations: a visitor's campaign variants (X-Anonymous-Id) pass to the account.
    await carry_over(call.pool, anonymous_id, result.user)
    return result


async def _login_directly(request: Request, body: bytes) -> Response | None:
    # login without FastAPI's dependency solving and response model: during a login
    # storm every millisecond of the event loop's is one the hashing threads lose. The
    # request model validates the body exactly as on the declared route; what it refuses
    # (or another content type) goes to the declared route, which answers as before.
    if request.headers.get("content-type") != "application/json":
        return None
    try:
        body_model = LoginRequest.model_validate_json(body)
    except ValidationError:
        return None
    cookie = _cookie_mode(request, body_model.session_mode)
    result = await _log_in(
        body_model, await get_auth_call(request), request.headers.get("x-anonymous-id")
    )
    tokens, user, session = result.tokens, result.user, result.session
    if not isinstance(user, dict) or not isinstance(session, dict):  # ORM rows: the model
        response = Response(
            _auth_response(result, cookie=cookie).model_dump_json(by_alias=True),
            media_type="application/json",
        )
    else:
        response = Response(
            auth_response_json(
                tokens.access_token,
                None if cookie else tokens.refresh_token,
                tokens.expires_in,
                result.device_token,
                user,
                session,
            ),
            media_type="application/json",
        )
    if cookie:
        set_refresh_cookie(response, request, tokens.refresh_token)
    return response


answer_directly(auth_router, login, _login_directly, with_body=True)


@auth_router.post(
    "/refresh",
    operation_id="auth_refresh",
    response_model=TokenResponse,
    responses=problem_responses(401, 403, 422),
    summary="Rotate a refresh token; a replayed one ends its session",
    description="The refresh token comes in the body, or in browser session mode as the "
    "session cookie, with no body (and then the `X-CSRF` header, from an allowed origin). "
    "A token replayed within GAMEPORTAL_REFRESH_REUSE_GRACE_SECONDS of its rotation, from "
    "the device that rotated it (two tabs at once, a retry), gets the same new refresh "
    "token; any other replay ends the session.",
)
async def refresh(
    call: AuthCallDep,
    request: Request,
    response: Response,
    body: Annotated[RefreshRequest | None, Body()] = None,
) -> TokenResponse:
    cookie = body is None
    if body is not None:
        token = body.refresh_token
    else:
        found = refresh_cookie(request)
        if found is None:
            raise service.InvalidRefreshToken(
                "send the refresh token as `refreshToken` in the body, or (browser session "
                "mode) the session cookie with no body"
            )
        check_same_site_request(request)
        token = found
    try:
        tokens = await service.refresh(
            call.pool, call.identity, refresh_token=token, client=call.client
        )
    except service.InvalidRefreshToken as exc:
        if cookie:  # a cookie that no longer opens anything: the browser drops it
            exc.headers["Set-Cookie"] = clear_refresh_cookie_header(request)
        raise
    if cookie:
        set_refresh_cookie(response, request, tokens.refresh_token)
    return TokenResponse(
        access_token=tokens.access_token,
        refresh_token=None if cookie else tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


async def _refresh_directly(request: Request, body: bytes) -> Response | None:
    # refresh without FastAPI's body validation, dependency solving and response model
    # (tests/identity/test_hot_paths.py compares the two); any body RefreshRequest would
    # not take as it is goes to the declared route, which answers as before.
    token = plain_refresh_token(request.headers.get("content-type"), body)
    if token is None:
        return None
    tokens = await service.refresh(
        request.app.state.db.pool,
        request.app.state.identity,
        refresh_token=token,
        client=await get_client_info(request),
    )
    return Response(
        token_response_json(tokens.access_token, tokens.refresh_token, tokens.expires_in),
        media_type="application/json",
    )


answer_directly(auth_router, refresh, _refresh_directly, with_body=True)


@auth_router.post(
    "/verify-email/request",
    operation_id="auth_verify_email_request",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,  # documented as it is sent: no body
    responses=problem_responses(401),
    summary="Mail a new verification link (none if already verified or sent a minute ago)",
)
async def request_email_verification(
    principal: CurrentUser, session: DbSession, identity: IdentityDep
) -> Response:
    await service.request_email_verification(session, identity, principal)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@auth_router.post(
    "/verify-email",
    operation_id="auth_verify_email",
    response_model=UserRead,
    responses=problem_responses(400, 422),
    summary="Confirm an email address with the mailed token",
)
async def verify_email(body: EmailVerification, session: DbSession) -> UserRead:
    return UserRead.model_validate(await service.verify_email(session, token=body.token))


@auth_router.post(
    "/password-reset/request",
    operation_id="auth_password_reset_request",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,  # documented as it is sent: no body
    responses=problem_responses(422),
    summary="Mail a reset link (always 202: whether the address has an account is not told)",
)
async def request_password_reset(
    body: PasswordResetRequest, db: DbPool, identity: IdentityDep, after: BackgroundTasks
) -> Response:
    # Answered before the address is looked up, the same for every address: the lookup
    # and the mail happen once the answer is out (see the service function).
    after.add_task(
        service.request_password_reset_after_answer, db.sessionmaker, identity, email=body.email
    )
    return Response(status_code=status.HTTP_202_ACCEPTED)


@auth_router.post(
    "/password-reset",
    operation_id="auth_password_reset",
    response_model=SessionsEnded,
    responses=problem_responses(400, 422),
    summary="Set a new password with a mailed token; every session of the account ends",
)
async def reset_password(
    body: PasswordReset, session: DbSession, identity: IdentityDep
) -> SessionsEnded:
    ended = await service.reset_password(
        session, identity, token=body.token, new_password=body.new_password
    )
    return SessionsEnded(ended=ended)


@auth_router.post(
    "/logout",
    operation_id="auth_logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403),
    summary="End the current device session",
    description="The session of the access token, or in browser session mode the "
    "session cookie's (then with the `X-CSRF` header, from an allowed origin: 403 "
    "otherwise); the cookie is cleared.",
)
async def logout(principal: BearerIfSent, session: DbSession, request: Request) -> Response:
    token = refresh_cookie(request)
    if principal is None and token is None:
        raise Unauthorized(
            "send an access token as `Authorization: Bearer <token>`, or (browser session "
            "mode) the session cookie"
        )
    if principal is not None:
        await service.logout(session, principal)
    else:
        check_same_site_request(request)
    if token is not None:  # its session too, should the cookie be another session's
        await service.logout_by_refresh_token(session, refresh_token=token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    if token is not None:
        clear_refresh_cookie(response, request)
    return response


@me_router.get("", operation_id="me_get", response_model=UserRead, responses=problem_responses(401))
async def get_me(user: CurrentUserProfile) -> UserRead:
    # The session check already read the user: no second query.
    return UserRead.model_validate(user)


async def _get_me_directly(request: Request, _: bytes) -> Response:
    # get_me without FastAPI's dependency solving and response validation (about a third
    # of the request's time in the app), as tests/identity/test_hot_paths.py checks.
    user = await get_user_profile(request)
    return Response(user_read_json(user), media_type="application/json")


answer_directly(me_router, get_me, _get_me_directly)


@me_router.patch("", operation_id="me_update", response_model=UserRead, responses=_AUTHED)
async def update_me(body: MeUpdate, principal: CurrentUser, session: DbSession) -> UserRead:
    preferences = None
    if body.preferences is not None:
        preferences = body.preferences.model_dump(include=body.preferences.model_fields_set)
    user = await service.update_me(session, principal, name=body.name, preferences=preferences)
    return UserRead.model_validate(user)


@me_router.post(
    "/password",
    operation_id="me_password_change",
    response_model=SessionsEnded,
    responses=problem_responses(401, 403, 422, 429),
    summary="Change the password; every other device session ends",
)
async def change_password(
    body: PasswordChange,
    principal: CurrentUser,
    session: DbSession,
    db: DbPool,
    identity: IdentityDep,
    client: Client,
) -> SessionsEnded:
    ended = await service.change_password(
        session,
        db.pool,
        identity,
        principal,
        current_password=body.current_password,
        new_password=body.new_password,
        ip=client.ip,
    )
    return SessionsEnded(ended=ended)


@me_router.delete(
    "",
    operation_id="me_delete",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 409, 422, 429),
    summary="Erase the account and all its sessions",
)
async def delete_me(
    body: Annotated[AccountDelete, Body()],
    principal: CurrentUser,
    session: DbSession,
    db: DbPool,
    identity: IdentityDep,
    client: Client,
) -> Response:
    await service.delete_me(
        session, db.pool, identity, principal, password=body.password, ip=client.ip
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me_router.get(
    "/sessions",
    operation_id="me_sessions_list",
    response_model=Page[SessionRead],
    responses=problem_responses(400, 401, 422),
    summary="The caller's live device sessions, newest first",
)
async def list_my_sessions(
    principal: CurrentUser, session: DbReadSession, identity: IdentityDep, page: Pagination
) -> Page[SessionRead]:
    rows = await service.my_sessions(
        session, identity, principal, before=page.after, limit=page.limit + 1
    )
    rows, next_cursor = split_page(rows, page.limit)
    items = [
        SessionRead.model_validate(r).model_copy(update={"current": r.id == principal.session_id})
        for r in rows
    ]
    return Page[SessionRead](items=items, next_cursor=next_cursor)


@me_router.delete(
    "/sessions/{session_id}",
    operation_id="me_sessions_end",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404, 422),
    summary="End one of the caller's device sessions",
)
async def end_my_session(
    session_id: uuid.UUID, principal: CurrentUser, session: DbSession
) -> Response:
    await service.end_my_session(session, principal, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me_router.delete(
    "/sessions",
    operation_id="me_sessions_end_others",
    response_model=SessionsEnded,
    responses=problem_responses(401),
    summary="End every device session but the current one",
)
async def end_my_other_sessions(principal: CurrentUser, session: DbSession) -> SessionsEnded:
    return SessionsEnded(ended=await service.end_my_other_sessions(session, principal))
