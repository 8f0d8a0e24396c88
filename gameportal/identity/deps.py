"""FastAPI dependencies: who is calling (Principal), with which role, from which device."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from gameportal.errors import Forbidden, Unauthorized
from gameportal.identity import repository as repo
from gameportal.identity.devices import MAX_FINGERPRINT, MAX_USER_AGENT, device_type
from gameportal.identity.service import ClientInfo, Identity, Principal
from gameportal.identity.tokens import InvalidAccessToken
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


class AccessTokenAuth(HTTPBearer):
    """The caller behind `Authorization: Bearer <accessToken>`, checked against the
    database on every request. One dependency that is also the OpenAPI security scheme:
    each extra dependency costs FastAPI measurable time on the hottest path there is."""

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send an access token as `Authorization: Bearer <token>`")
        identity: Identity = request.app.state.identity
        try:
            claims = identity.tokens.decode(token.strip())
        except InvalidAccessToken as exc:
            raise Unauthorized(str(exc)) from None
        row = await repo.live_session_user(
            request.app.state.db.pool,
            session_id=claims.session_id,
            user_id=claims.user_id,
            idle=identity.idle_timeout,
        )
        if row is None:
            raise Unauthorized("the session has ended; log in again")
        user = dict(row)
        return Principal(
            user_id=claims.user_id,
            session_id=claims.session_id,
            # The database's roles, not the token's: role changes apply at once.
            roles=tuple(user["roles"]),
            user=user,
        )


get_principal = AccessTokenAuth(
    scheme_name="AccessToken",
    description="The `accessToken` from login, register or refresh: `Authorization: Bearer …`",
)
CurrentUser = Annotated[Principal, Depends(get_principal)]


def require_role(role: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: CurrentUser) -> Principal:
        if not principal.has_role(role):
            raise Forbidden(f"this needs the `{role}` role")
        return principal

    dependency.__name__ = f"require_{role}"
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
