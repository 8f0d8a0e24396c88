"""A game's leaderboard page answered before the framework when this process already
holds it rendered: no routing, no validation, no dependency solving, no await. Anything
else (a board or page not held yet, an unusual query, an error to report) goes on to the
app, whose route answers it and keeps the page for next time. Requests answered here are
counted and logged like any other, under the route they stand for."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Receive, Scope, Send

from gameportal.content.cache import app_path, etag_matches
from gameportal.kit.ids import plain_uuid
from gameportal.kit.pagination import InvalidCursor
from gameportal.observability import (
    REQUEST_ID_HEADER,
    record_request,
    request_id_of,
    scope_header,
)
from gameportal.progress.leaderboard import period_start
from gameportal.progress.leaderboard_boards import CachedPage, Leaderboards
from gameportal.progress.leaderboard_router import PlainQuery
from gameportal.progress.leaderboard_service import CACHE_CONTROL, decode_cursor

_PREFIX = "/api/v1/games/"
_SUFFIX = "/leaderboard"
_ROUTE = "/api/v1/games/{game_id}/leaderboard"
_PARAMS = frozenset({"period", "limit", "cursor", "at"})
_CACHE_CONTROL = CACHE_CONTROL.encode()
_REQUEST_ID = REQUEST_ID_HEADER.encode()


class LeaderboardFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = app_path(scope)
            if path.startswith(_PREFIX) and path.endswith(_SUFFIX):
                started = time.perf_counter()
                page = self._held_page(scope, path)
                if page is not None:
                    status = await _answer(scope, send, page)
                    record_request("GET", _ROUTE, status, time.perf_counter() - started)
                    return
        await self.app(scope, receive, send)

    @staticmethod
    def _held_page(scope: Scope, path: str) -> CachedPage | None:
        boards: Leaderboards | None = getattr(scope["app"].state, "leaderboards", None)
        game_id = plain_uuid(path[len(_PREFIX) : -len(_SUFFIX)])
        if boards is None or game_id is None:
            return None
        query = PlainQuery.parse(scope["query_string"], _PARAMS)
        if query is None:
            return None
        try:
            offset = decode_cursor(query.cursor) if query.cursor else 0
        except InvalidCursor:
            return None
        day = query.at if query.at is not None else boards.clock().date()
        board = boards.held((game_id, query.period, period_start(query.period, day)))
        if board is None:
            return None
        page = board.pages.get((offset, query.limit))
        if page is not None:
            boards.touch(board)  # in use, though perhaps only ever answered here
        return page


async def _answer(scope: Scope, send: Send, page: CachedPage) -> int:
    headers = [
        (b"etag", page.etag.encode()),
        (b"cache-control", _CACHE_CONTROL),
        (_REQUEST_ID, request_id_of(scope).encode()),
    ]
    if etag_matches(scope_header(scope, b"if-none-match"), page.etag):
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return 304
    headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(page.body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": page.body})
    return 200
