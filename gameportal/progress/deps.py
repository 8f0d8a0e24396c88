"""FastAPI dependencies of progress: the game server behind an API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from gameportal.errors import Forbidden, Unauthorized
from gameportal.progress.keys import PREFIX, key_hash, looks_like_key

_CHECKED = "gameportal.game_key_hash"


class GameKeyAuth(APIKeyHeader):
    """The SHA-256 of the game API key the request carries, as `X-API-Key: <key>` or
    `Authorization: Bearer <key>`. Whether that key exists, and for which game, is
    checked by the statement that does the work (one round trip, and a revoked key is
    refused by the very next request). Also the OpenAPI security scheme."""

    async def __call__(self, request: Request) -> bytes:  # type: ignore[override]
        # Asked twice per request on the routes with a body: before the body is read
        # (identity.deps.authenticate_before_body), then by the route itself.
        checked: bytes | None = request.scope.get(_CHECKED)
        if checked is not None:
            return checked
        request.scope[_CHECKED] = hashed = self._check(request)
        return hashed

    @staticmethod
    def _check(request: Request) -> bytes:
        key = request.headers.get("x-api-key")
        if key is None:
            scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized(
                    "game-server routes take the game's API key: send it as "
                    "`Authorization: Bearer <key>` or `X-API-Key: <key>`"
                )
            key = token
        key = key.strip()
        if not looks_like_key(key):
            if key.count(".") == 2:  # a JWT: a player's (or an editor's) access token
                raise Forbidden(
                    "a player's access token cannot call game-server routes; they take the "
                    "game's API key (created by an administrator)"
                )
            raise Unauthorized(f"this is not a game API key (those start with `{PREFIX}`)")
        return key_hash(key)


game_key = GameKeyAuth(
    name="X-API-Key",
    scheme_name="GameApiKey",
    description="A game's API key (`gpk_…`), from `POST /api/v1/admin/games/{gameId}/api-keys`: "
    "`X-API-Key: <key>` or `Authorization: Bearer <key>`. Player access tokens are refused.",
    auto_error=True,
)
GameKey = Annotated[bytes, Depends(game_key)]
