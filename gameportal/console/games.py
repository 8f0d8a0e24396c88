"""Games: every game (content of type GAME) with its achievements (criteria, hidden or
not, unlock rates), its leaderboards (the top and a player's neighbourhood, per period)
and, for admins, its servers' API keys (a new key is shown once; revoke).

Editors and admins, as the API's /api/v1/admin/achievements; API keys are for admins
only, as /api/v1/admin/games/{id}/api-keys. Every write goes through the progress admin
service; the leaderboards are read from the boards this process holds, as the public
leaderboard routes read them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Query, Request
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from gameportal.console._ops import (
    FORM,
    field_text,
    find_user,
    number,
    service_errors,
    validation_errors,
)
from gameportal.console.frame import (
    NavEntry,
    console_form,
    console_router,
    form_text,
    not_found,
    render,
    require_console_role,
    see_other,
)
from gameportal.db import DbPool, DbReadSession, DbSession
from gameportal.errors import PortalError
from gameportal.identity.service import Principal
from gameportal.kit.pagination import InvalidCursor
from gameportal.models import Achievement, Content, GameApiKey
from gameportal.progress.leaderboard import PERIODS, Period
from gameportal.progress.leaderboard_boards import Leaderboards
from gameportal.progress.leaderboard_schemas import LeaderboardPage, MyRank
from gameportal.progress.leaderboard_service import (
    UnknownGame,
    board_key,
    decode_cursor,
    list_page,
    my_rank,
)
from gameportal.progress.schemas import (
    AchievementCreate,
    AchievementRead,
    AchievementUpdate,
    ApiKeyCreate,
    ApiKeyRead,
)
from gameportal.progress.service import admin as progress_admin
from gameportal.progress.service.errors import AchievementNotFound, ApiKeyNotFound, GameNotFound
from gameportal.progress.service.runtime import UnlockCounts, runtime

router = console_router(
    "/games", nav=NavEntry("Games", "/console/games", roles=("editor",), order=50)
)
Editor = Annotated[Principal, Depends(require_console_role("editor"))]
Admin = Annotated[Principal, Depends(require_console_role("admin"))]

BOARD_SIZE = 50
AROUND = 5
MAX_ACHIEVEMENTS = 500  # shown on one page; a game has far fewer
MAX_KEYS = 100
PERIOD_LABELS = {"all": "All time", "week": "Week", "month": "Month"}
CRITERIA_TYPES = (
    ("", "None: the game server unlocks it"),
    ("level", "Level reached"),
    ("points", "Points reached"),
    ("stat", "A stat reached"),
)
# Where the schema's and the service's fields are on the achievement form.
ACHIEVEMENT_FIELDS = {
    "gameId": FORM,
    "key": "key",
    "title": "title",
    "description": "description",
    "points": "points",
    "hidden": "hidden",
    "media": FORM,
    "criteria": "criteria_type",
    "criteria.level.min": "criteria_min",
    "criteria.points.min": "criteria_min",
    "criteria.stat.min": "criteria_min",
    "criteria.stat.stat": "criteria_stat",
}
ACHIEVEMENT_LABELS = {
    "key": "Key",
    "title": "Title",
    "description": "Description",
    "points": "Points",
    "criteria_type": "Unlocked automatically",
    "criteria_min": "At least",
    "criteria_stat": "Stat",
}


def criteria_text(criteria: Any) -> str:
    """How an achievement is unlocked, in words."""
    if criteria is None:
        return "By the game server"
    kind = criteria.type
    if kind == "stat":
        return f"Stat {criteria.stat} ≥ {criteria.min:,}"
    return f"{'Level' if kind == 'level' else 'Points'} ≥ {criteria.min:,}"


async def _game(session: AsyncSession, game_id: uuid.UUID) -> Content:
    game = await session.get(Content, game_id)
    if game is None or game.type != "GAME":
        raise not_found("game")
    return game


def _tabs(game: Content, staff: Principal) -> list[tuple[str, str]]:
    base = f"/console/games/{game.id}"
    tabs = [(base, "Achievements"), (f"{base}/leaderboard", "Leaderboards")]
    if staff.has_role("admin"):
        tabs.append((f"{base}/api-keys", "API keys"))
    return tabs


def _page(
    request: Request, template: str, game: Content, staff: Principal, **context: Any
) -> Response:
    return render(
        request,
        template,
        game=game,
        tabs=_tabs(game, staff),
        is_admin=staff.has_role("admin"),
        **context,
    )


# --- the list ------------------------------------------------------------------------------


@router.get("")
async def games(request: Request, editor: Editor, session: DbReadSession) -> Response:
    rows = list(
        await session.scalars(
            select(Content).where(Content.type == "GAME").order_by(Content.title, Content.id)
        )
    )
    achievements: dict[uuid.UUID, int] = {
        game_id: count
        for game_id, count in await session.execute(
            select(Achievement.game_id, func.count()).group_by(Achievement.game_id)
        )
    }
    keys: dict[uuid.UUID, int] = {}
    if editor.has_role("admin"):
        keys = {
            game_id: count
            for game_id, count in await session.execute(
                select(GameApiKey.game_id, func.count()).group_by(GameApiKey.game_id)
            )
        }
    return render(
        request,
        "console/games/list.html",
        games=rows,
        achievements=achievements,
        keys=keys,
        is_admin=editor.has_role("admin"),
    )


# --- achievements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    unlocks: int
    players: int

    @property
    def share(self) -> float:
        return min(1.0, self.unlocks / self.players) if self.players else 0.0


@router.get("/{game_id:uuid}")
async def game(
    game_id: uuid.UUID, request: Request, editor: Editor, session: DbReadSession, db: DbPool
) -> Response:
    found = await _game(session, game_id)
    items = await progress_admin.list_achievements(
        session, game_id=game_id, after=None, limit=MAX_ACHIEVEMENTS
    )
    counts: UnlockCounts = await runtime(request.app.state).unlock_stats.of(db.pool, game_id)
    return _page(
        request,
        "console/games/achievements.html",
        found,
        editor,
        achievements=items,
        rates={a.id: Rate(counts.unlocks.get(a.id, 0), counts.players) for a in items},
        players=counts.players,
        criteria_text=criteria_text,
    )


@dataclass
class AchievementDraft:
    values: dict[str, str]

    FIELDS = ("key", "title", "description", "points", "criteria_type", "criteria_stat",
              "criteria_min")  # fmt: skip

    @classmethod
    def of(cls, form: FormData) -> AchievementDraft:
        values = {name: field_text(form, name).strip() for name in cls.FIELDS}
        values["description"] = field_text(form, "description")
        values["hidden"] = "1" if form_text(form, "hidden") else ""
        return cls(values)

    @classmethod
    def from_item(cls, item: AchievementRead) -> AchievementDraft:
        criteria = item.criteria
        return cls(
            {
                "key": item.key,
                "title": item.title,
                "description": item.description,
                "points": str(item.points),
                "hidden": "1" if item.hidden else "",
                "criteria_type": criteria.type if criteria else "",
                "criteria_stat": getattr(criteria, "stat", "") if criteria else "",
                "criteria_min": str(criteria.min) if criteria else "",
            }
        )

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def body(self) -> dict[str, Any]:
        """The API's body for this form (camelCase, as a client sends it)."""
        criteria: dict[str, Any] | None = None
        kind = self.get("criteria_type")
        if kind:
            criteria = {"type": kind, "min": number(self.get("criteria_min"), int)}
            if kind == "stat":
                criteria["stat"] = self.get("criteria_stat")
        return {
            "key": self.get("key"),
            "title": self.get("title"),
            "description": self.get("description"),
            "points": number(self.get("points") or "0", int),
            "hidden": bool(self.get("hidden")),
            "criteria": criteria,
        }


def _achievement_form(
    request: Request,
    game: Content,
    staff: Principal,
    draft: AchievementDraft,
    *,
    item: AchievementRead | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "console/games/achievement_form.html",
        status_code=status_code,
        game=game,
        item=item,
        draft=draft,
        errors=errors or {},
        labels=ACHIEVEMENT_LABELS,
        criteria_types=CRITERIA_TYPES,
        is_admin=staff.has_role("admin"),
    )


@router.get("/{game_id:uuid}/achievements/new")
async def new_achievement(
    game_id: uuid.UUID, request: Request, editor: Editor, session: DbReadSession
) -> Response:
    found = await _game(session, game_id)
    draft = AchievementDraft({"points": "0"})
    return _achievement_form(request, found, editor, draft)


@router.post("/{game_id:uuid}/achievements")
async def create_achievement(
    game_id: uuid.UUID, request: Request, editor: Editor, session: DbSession
) -> Response:
    found = await _game(session, game_id)
    draft = AchievementDraft.of(await console_form(request))
    try:
        body = AchievementCreate.model_validate({"gameId": str(game_id), **draft.body()})
        item = await progress_admin.create_achievement(session, body)
    except ValidationError as exc:
        errors = validation_errors(exc, ACHIEVEMENT_FIELDS)
    except PortalError as exc:
        await session.rollback()  # what was loaded is expired: read again below
        found = await _game(session, game_id)
        errors = service_errors(exc, ACHIEVEMENT_FIELDS)
    else:
        return see_other(
            request,
            f"/console/games/{game_id}",
            flash_message=f"Achievement “{item.title}” created.",
        )
    return _achievement_form(request, found, editor, draft, errors=errors, status_code=422)


async def _achievement(
    session: AsyncSession, game_id: uuid.UUID, achievement_id: uuid.UUID
) -> AchievementRead:
    try:
        item = await progress_admin.get_achievement(session, achievement_id)
    except AchievementNotFound:
        raise not_found("achievement") from None
    if item.game_id != game_id:
        raise not_found("achievement")
    return item


@router.get("/{game_id:uuid}/achievements/{achievement_id:uuid}")
async def edit_achievement(
    game_id: uuid.UUID,
    achievement_id: uuid.UUID,
    request: Request,
    editor: Editor,
    session: DbReadSession,
) -> Response:
    found = await _game(session, game_id)
    item = await _achievement(session, game_id, achievement_id)
    return _achievement_form(request, found, editor, AchievementDraft.from_item(item), item=item)


@router.post("/{game_id:uuid}/achievements/{achievement_id:uuid}")
async def update_achievement(
    game_id: uuid.UUID,
    achievement_id: uuid.UUID,
    request: Request,
    editor: Editor,
    session: DbSession,
) -> Response:
    found = await _game(session, game_id)
    item = await _achievement(session, game_id, achievement_id)
    draft = AchievementDraft.of(await console_form(request))
    try:
        body = AchievementUpdate.model_validate(draft.body())
        saved = await progress_admin.update_achievement(session, achievement_id, body)
    except ValidationError as exc:
        errors = validation_errors(exc, ACHIEVEMENT_FIELDS)
    except PortalError as exc:
        await session.rollback()  # what was loaded is expired: read again below
        found = await _game(session, game_id)
        item = await _achievement(session, game_id, achievement_id)
        errors = service_errors(exc, ACHIEVEMENT_FIELDS)
    else:
        return see_other(
            request, f"/console/games/{game_id}", flash_message=f"“{saved.title}” saved."
        )
    return _achievement_form(
        request, found, editor, draft, item=item, errors=errors, status_code=422
    )


@router.post("/{game_id:uuid}/achievements/{achievement_id:uuid}/delete")
async def delete_achievement(
    game_id: uuid.UUID,
    achievement_id: uuid.UUID,
    request: Request,
    editor: Editor,
    session: DbSession,
) -> Response:
    await _game(session, game_id)
    item = await _achievement(session, game_id, achievement_id)
    await progress_admin.delete_achievement(session, achievement_id)
    return see_other(
        request,
        f"/console/games/{game_id}",
        flash_message=f"“{item.title}” deleted with its unlocks; the points it gave stay.",
    )


# --- leaderboards ----------------------------------------------------------------------------


@router.get("/{game_id:uuid}/leaderboard")
async def leaderboard(
    game_id: uuid.UUID,
    request: Request,
    editor: Editor,
    session: DbReadSession,
    period: Annotated[str, Query(max_length=8)] = "all",
    at: Annotated[str, Query(max_length=10)] = "",
    player: Annotated[str, Query(max_length=320)] = "",
    cursor: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    found = await _game(session, game_id)
    chosen: Period = next((p for p in PERIODS if p == period), "all")
    errors: dict[str, str] = {}
    day: date | None = None
    if at and chosen != "all":
        try:
            day = date.fromisoformat(at)
        except ValueError:
            errors["at"] = "Must be a day, e.g. 2030-03-16."
    offset = 0
    if cursor:
        try:
            offset = decode_cursor(cursor)
        except InvalidCursor:
            offset = 0
    boards: Leaderboards = request.app.state.leaderboards
    key = board_key(boards, game_id, chosen, day)
    top: LeaderboardPage | None = None
    around: MyRank | None = None
    who = None
    if found.status == "PUBLISHED":
        try:
            top = LeaderboardPage.model_validate_json(
                (await list_page(boards, key, offset, BOARD_SIZE)).body
            )
            if player.strip():
                who = await find_user(session, player)
                if who is None:
                    errors["player"] = "No account has this email address or id."
                else:
                    around = MyRank.model_validate_json(await my_rank(boards, key, who.id, AROUND))
        except UnknownGame:  # unpublished a moment ago
            top = None
    query = {"period": chosen, "at": at if chosen != "all" else "", "player": player.strip()}
    return _page(
        request,
        "console/games/leaderboard.html",
        found,
        editor,
        period=chosen,
        periods=PERIODS,
        period_labels=PERIOD_LABELS,
        at=at,
        player=player.strip(),
        who=who,
        top=top,
        around=around,
        offset=offset,
        errors=errors,
        query=urlencode({k: v for k, v in query.items() if v}),
    )


# --- API keys (admins) -----------------------------------------------------------------------


async def _keys_page(
    request: Request,
    session: AsyncSession,
    game: Content,
    admin: Principal,
    *,
    created: tuple[ApiKeyRead, str] | None = None,
    name: str = "",
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    rows = await progress_admin.list_keys(session, game.id, before=None, limit=MAX_KEYS)
    return render(
        request,
        "console/games/api_keys.html",
        status_code=status_code,
        game=game,
        tabs=_tabs(game, admin),
        is_admin=True,
        keys=[ApiKeyRead.model_validate(r) for r in rows],
        created=created,
        name=name,
        errors=errors or {},
    )


@router.get("/{game_id:uuid}/api-keys")
async def api_keys(
    game_id: uuid.UUID, request: Request, admin: Admin, session: DbReadSession
) -> Response:
    return await _keys_page(request, session, await _game(session, game_id), admin)


@router.post("/{game_id:uuid}/api-keys")
async def create_api_key(
    game_id: uuid.UUID, request: Request, admin: Admin, session: DbSession
) -> Response:
    """The new key is on this answer only (only its hash is kept): not a redirect, and the
    page is not stored (no-store, as every console page)."""
    found = await _game(session, game_id)
    name = form_text(await console_form(request), "name").strip()
    try:
        body = ApiKeyCreate.model_validate({"name": name})
        row, key = await progress_admin.create_key(session, admin.user_id, game_id, body.name)
    except ValidationError as exc:
        errors = validation_errors(exc, {"name": "name"})
    except GameNotFound:
        raise not_found("game") from None
    else:
        return await _keys_page(
            request, session, found, admin, created=(ApiKeyRead.model_validate(row), key)
        )
    return await _keys_page(
        request, session, found, admin, name=name, errors=errors, status_code=422
    )


@router.post("/{game_id:uuid}/api-keys/{key_id:uuid}/revoke")
async def revoke_api_key(
    game_id: uuid.UUID, key_id: uuid.UUID, request: Request, admin: Admin, session: DbSession
) -> Response:
    await _game(session, game_id)
    try:
        await progress_admin.revoke_key(session, admin.user_id, game_id, key_id)
    except ApiKeyNotFound:
        return see_other(
            request,
            f"/console/games/{game_id}/api-keys",
            flash_message="That key had already been revoked.",
            flash_kind="info",
        )
    return see_other(
        request,
        f"/console/games/{game_id}/api-keys",
        flash_message="Key revoked: the next request made with it is refused.",
    )
