"""Leaderboard routes: a game's ranked list (public) and the caller's own rank. HTTP only;
the answers are built in leaderboard_service from the boards this process holds."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request, Response

from gameportal.content.cache import etag_matches
from gameportal.errors import problem_responses
from gameportal.identity.deps import CurrentUser, get_principal
from gameportal.kit.ids import plain_uuid
from gameportal.kit.openapi import headers
from gameportal.kit.routing import answer_directly
from gameportal.progress.leaderboard import PERIODS, Period
from gameportal.progress.leaderboard_boards import CachedPage, Leaderboards
from gameportal.progress.leaderboard_schemas import LeaderboardPage, MyRank
from gameportal.progress.leaderboard_service import (
    CACHE_CONTROL,
    DEFAULT_AROUND,
    DEFAULT_LIMIT,
    MAX_AROUND,
    MAX_LIMIT,
    board_key,
    decode_cursor,
    list_page,
    my_rank,
    open_board,
)

leaderboard_router = APIRouter(
    prefix="/api/v1/games", tags=["leaderboards"], responses=problem_responses(500)
)

PeriodParam = Annotated[
    Period,
    Query(description="`all` (total points), `week` (ISO week, UTC) or `month` (UTC)"),
]
AtParam = Annotated[
    date | None,
    Query(
        description="A day in the week or month to show (a past one stays readable); "
        "default today, UTC. The all-time board has no past: it ignores `at`"
    ),
]


def _boards(request: Request) -> Leaderboards:
    boards: Leaderboards = request.app.state.leaderboards
    return boards


def page_response(page: CachedPage, if_none_match: str | None) -> Response:
    headers = {"etag": page.etag, "cache-control": CACHE_CONTROL}
    if etag_matches(if_none_match, page.etag):
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type="application/json", headers=headers)


@leaderboard_router.get(
    "/{game_id}/leaderboard",
    operation_id="games_leaderboard_get",
    response_model=LeaderboardPage,
    responses={
        200: {"headers": headers("ETag", "Cache-Control")},
        304: {
            "description": "Not modified (If-None-Match)",
            "headers": headers("ETag", "Cache-Control"),
        },
        **problem_responses(400, 404, 422),
    },
    summary="A game's players ranked by points in a period, most first",
)
async def get_leaderboard(
    request: Request,
    game_id: uuid.UUID,
    period: PeriodParam = "all",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Players per page")] = (
        DEFAULT_LIMIT
    ),
    cursor: Annotated[
        str | None, Query(max_length=64, description="`nextCursor` of the previous page")
    ] = None,
    at: AtParam = None,
) -> Response:
    boards = _boards(request)
    key = board_key(boards, game_id, period, at)
    await open_board(boards, key)  # an unknown game is a 404 whatever the cursor
    offset = decode_cursor(cursor) if cursor else 0
    page = await list_page(boards, key, offset, limit)
    return page_response(page, request.headers.get("if-none-match"))


@leaderboard_router.get(
    "/{game_id}/leaderboard/me",
    operation_id="games_leaderboard_me_get",
    response_model=MyRank,
    responses=problem_responses(401, 404, 422),
    summary="The caller's rank in a game, with the players just above and below",
)
async def get_my_rank(
    request: Request,
    game_id: uuid.UUID,
    principal: CurrentUser,
    period: PeriodParam = "all",
    around: Annotated[
        int, Query(ge=0, le=MAX_AROUND, description="Players shown above and below")
    ] = DEFAULT_AROUND,
    at: AtParam = None,
) -> Response:
    boards = _boards(request)
    key = board_key(boards, game_id, period, at)
    body = await my_rank(boards, key, principal.user_id, around)
    return Response(body, media_type="application/json")


# --- the same answers without FastAPI's parameter parsing, for plain requests ---------

_SMALL_NUMBER = re.compile(r"[1-9][0-9]{0,2}|0")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class PlainQuery:
    """A query string the declared route would take as it is: known names, each once,
    plain values. Anything else (a repeat, an odd number, a bad date) is None, and the
    declared route answers it, errors included."""

    __slots__ = ("around", "at", "cursor", "limit", "period")

    def __init__(self) -> None:
        self.period: Period = "all"
        self.limit = DEFAULT_LIMIT
        self.around = DEFAULT_AROUND
        self.cursor: str | None = None
        self.at: date | None = None

    @classmethod
    def parse(cls, query: bytes, allowed: frozenset[str]) -> PlainQuery | None:
        plain = cls()
        if not query:
            return plain
        seen: set[str] = set()
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if name not in allowed or name in seen:
                return None
            seen.add(name)
            if name == "period":
                if value not in PERIODS:
                    return None
                plain.period = value
            elif name in ("limit", "around"):
                if not _SMALL_NUMBER.fullmatch(value):
                    return None
                number = int(value)
                if name == "limit" and 1 <= number <= MAX_LIMIT:
                    plain.limit = number
                elif name == "around" and number <= MAX_AROUND:
                    plain.around = number
                else:
                    return None
            elif name == "cursor":
                if not value or len(value) > 64:
                    return None
                plain.cursor = value
            else:  # at
                if not _DAY.fullmatch(value):
                    return None
                try:
                    plain.at = date.fromisoformat(value)
                except ValueError:
                    return None
        return plain


_ME_PARAMS = frozenset({"period", "around", "at"})


async def _my_rank_directly(request: Request, _: bytes) -> Response | None:
    # The caller's rank is GET /me plus a lookup in memory: answered without FastAPI's
    # dependency solving, as /me is (tests compare the two routes' answers).
    game_id = plain_uuid(request.scope["path_params"].get("game_id", ""))
    query = PlainQuery.parse(request.scope["query_string"], _ME_PARAMS)
    if game_id is None or query is None:
        return None
    principal = await get_principal(request)
    boards = _boards(request)
    key = board_key(boards, game_id, query.period, query.at)
    body = await my_rank(boards, key, principal.user_id, query.around)
    return Response(body, media_type="application/json")


answer_directly(leaderboard_router, get_my_rank, _my_rank_directly)
