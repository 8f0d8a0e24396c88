"""FastAPI dependencies: who is calling (Principal), with which role, from which device."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from gameportal.errors import Forbidden, PortalError, Unauthorized
from gameportal.identity import repository as repo
from gameportal.identity.devices import MAX_FINGERPRINT, MAX_USER_AGENT, device_type
from gameportal.identity.service import ClientInfo, Identity, Principal
from gameportal.identity.tokens import AccessClaims, InvalidAccessToken
from gameportal.kit.net import client_ip


# Dependencies are `async def` even when they do not await: FastAPI runs plain functions
# in its thread pool, which costs more than the work itself on every request.
async def get_identity(request: Request) -> Identity:
    identity: Identity = request.app.state.identity
    return identity


IdentityDep = Annotated[Identity, Depends(get_identity)]


async def get_client_info(request: Request) -> ClientInfo:
    peer = request.client.host if request.client else None
    ip = client_ip(peer, request.headers.get("x-forwarded-for"), request.app.state.trusted_proxies)
    user_agent = request.headers.get("user-agent")
    if user_agent is not None:
        user_agent = user_agent[:MAX_USER_AGENT]
    fingerprint = request.headers.get("x-device-fingerprint")
    if fingerprint is not None:
        fingerprint = fingerprint[:MAX_FINGERPRINT] or None
    return ClientInfo(
        ip=ip,
        user_agent=user_agent,
        device_type=device_type(user_agent),
        fingerprint=fingerprint,
        device_token=request.headers.get("x-device-token"),
    )


Client = Annotated[ClientInfo, Depends(get_client_info)]


@dataclass(frozen=True)
class AuthCall:
    """What login and refresh need, as one dependency: on these hot paths each extra
    dependency costs FastAPI more than the work it would wrap."""

    identity: Identity
    pool: asyncpg.Pool
    client: ClientInfo


async def get_auth_call(request: Request) -> AuthCall:
    return AuthCall(
        identity=request.app.state.identity,
        pool=request.app.state.db.pool,
        client=await get_client_info(request),
    )


AuthCallDep = Annotated[AuthCall, Depends(get_auth_call)]


_SESSION_ENDED = "the session has ended; log in again"
_Found = TypeVar("_Found")

# Where authenticate_before_body (below) leaves the caller it checked, for the route's own
# dependency to take.
_PRINCIPAL = "gameportal.principal"


class AccessTokenAuth(HTTPBearer):
    """The caller behind `Authorization: Bearer <accessToken>`, checked against the
    database on every request. One dependency that is also the OpenAPI security scheme:
    each extra dependency costs FastAPI measurable time on the hottest path there is."""

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        known: Principal | None = request.scope.get(_PRINCIPAL)
        if known is not None:  # checked before the body was read (authenticate_before_body)
            return known
        claims, roles = await _live_session(request, repo.live_session_roles)
        return Principal(
            user_id=claims.user_id,
            session_id=claims.session_id,
            # The database's roles, not the token's: role changes apply at once.
            roles=tuple(roles),
        )


class _AccessTokenProfile(AccessTokenAuth):
    """The same check, reading the caller's profile (UserRead's fields) in its query."""

    async def __call__(self, request: Request) -> dict[str, Any]:  # type: ignore[override]
        _, row = await _live_session(request, repo.live_session_user)
        return dict(row)


async def _live_session(
    request: Request, lookup: Callable[..., Awaitable[_Found | None]]
) -> tuple[AccessClaims, _Found]:
    """The request's token claims and what `lookup` (one of the repository's live-session
    queries) reads for them; 401 when the session has ended or the user is blocked."""
    claims = _access_claims(request)
    identity: Identity = request.app.state.identity
    found = await lookup(
        request.app.state.db.pool,
        session_id=claims.session_id,
        user_id=claims.user_id,
        idle=identity.idle_timeout,
    )
    if found is None:
        raise Unauthorized(_SESSION_ENDED)
    return claims, found


def _access_claims(request: Request) -> AccessClaims:
    """The claims of the request's access token, before the database is asked."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send an access token as `Authorization: Bearer <token>`")
    identity: Identity = request.app.state.identity
    try:
        return identity.tokens.decode(token.strip())
    except InvalidAccessToken as exc:
        raise Unauthorized(str(exc)) from None


# One security scheme in OpenAPI, whichever of the dependencies below a route takes.
_ACCESS_TOKEN_SCHEME: dict[str, Any] = {
    "scheme_name": "AccessToken",
    "description": "The `accessToken` from login, register or refresh: `Authorization: Bearer …`",
}

get_principal = AccessTokenAuth(
    **_ACCESS_TOKEN_SCHEME,
)
CurrentUser = Annotated[Principal, Depends(get_principal)]

# The caller's own profile (UserRead's fields), read by the session check itself: for the
# routes that answer with it, the same security scheme.
get_user_profile = _AccessTokenProfile(
    **_ACCESS_TOKEN_SCHEME,
)
CurrentUserProfile = Annotated[dict[str, Any], Depends(get_user_profile)]


class _AccessTokenIfSent(AccessTokenAuth):
    async def __call__(self, request: Request) -> Principal | None:  # type: ignore[override]
        if "authorization" not in request.headers:
            return None
        return await super().__call__(request)


# The caller if the request has an Authorization header (which must then be valid), else
# None; documented as the same security scheme. For routes a cookie may authenticate
# instead (logout in browser session mode).
get_principal_if_sent = _AccessTokenIfSent(
    **_ACCESS_TOKEN_SCHEME,
)
BearerIfSent = Annotated[Principal | None, Depends(get_principal_if_sent)]


def _check_role(principal: Principal, role: str) -> None:
    if not principal.has_role(role):
        raise Forbidden(f"this needs the `{role}` role")


# The role each require_role() dependency asks for, so authenticate_before_body can ask too.
_REQUIRED_ROLE: dict[Callable[..., Any], str] = {}


def require_role(role: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: CurrentUser) -> Principal:
        _check_role(principal, role)
        return principal

    dependency.__name__ = f"require_{role}"
    _REQUIRED_ROLE[dependency] = role
    return dependency


AdminUser = Annotated[Principal, Depends(require_role("admin"))]
EditorUser = Annotated[Principal, Depends(require_role("editor"))]
MarketerUser = Annotated[Principal, Depends(require_role("marketer"))]


async def get_optional_principal(request: Request) -> Principal | None:
    """The caller if they sent a token (which must then be valid), else None."""
    if "authorization" not in request.headers:
        return None
    return await get_principal(request)


MaybeUser = Annotated[Principal | None, Depends(get_optional_principal)]


# --- authentication before the body ----------------------------------------------------------
#
# FastAPI reads (and, for multipart, spools to disk) a route's whole body before it solves
# the route's dependencies: an anonymous client could make the server take in a 20 MiB
# upload before hearing 401. For every route with a body that needs a caller, the caller
# (and the role the route asks for) is checked first; the route's own dependency then
# finds the principal already made, so the session is still looked up once.


def _needs(
    dependant: Dependant, others: tuple[Callable[..., Any], ...] = ()
) -> tuple[bool, list[str], list[Callable[..., Any]]]:
    """Whether a route's dependencies need an authenticated caller, which roles, and which
    of the `others` (callers' checks of other kinds) they use."""
    needed, roles, extra = False, [], []
    pending = [dependant]
    while pending:
        current = pending.pop()
        call = current.call
        if call is get_principal:
            needed = True
        elif call is not None and call in others and call not in extra:
            extra.append(call)
        role = _REQUIRED_ROLE.get(call) if call is not None else None
        if role is not None and role not in roles:
            roles.append(role)
        pending.extend(current.dependencies)
    return needed or bool(roles), roles, extra


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


def _authenticated_first(
    app: ASGIApp,
    principal_needed: bool,
    roles: tuple[str, ...],
    others: tuple[Callable[[Request], Awaitable[object]], ...],
) -> ASGIApp:
    async def first(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        try:
            for check in others:
                await check(request)
            if principal_needed:
                principal = await get_principal(request)
                for role in roles:
                    _check_role(principal, role)
                scope[_PRINCIPAL] = principal
        except PortalError as exc:
            if _has_body(scope):
                # The body is not wanted: closing spares reading it (a client that sent
                # `Expect: 100-continue` never sends it at all).
                exc.headers.setdefault("Connection", "close")
            raise
        await app(scope, receive, send)

    return first


def authenticate_before_body(
    routes: Iterable[BaseRoute], *, also: Iterable[Callable[[Request], Awaitable[object]]] = ()
) -> None:
    """Check the caller of every route that takes a body and needs one before its body is
    read (see above): the access token and role, and `also` other dependencies that tell
    a caller by the request's headers alone (a game server's API key). Call once, when
    the app's routes are all in place."""
    others = tuple(also)
    for route in routes:
        if not isinstance(route, APIRoute) or route.body_field is None:
            continue
        needed, roles, extra = _needs(route.dependant, others)
        if needed or extra:
            route.app = _authenticated_first(route.app, needed, tuple(roles), tuple(extra))
