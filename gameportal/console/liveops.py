"""Live operations: campaigns and their A/B rules (variants), each with a form whose
refusals are shown beside their fields; a campaign's preview ("would this request match,
and why not"); activate and deactivate; a campaign's experiment results per variant
(intervals, chance to beat the control, the sample-ratio warning) with a daily chart.

Marketers and admins, as the API's /api/v1/admin/ab-rules and /admin/campaigns, and
through the same code: the schemas' validation, the admin service's checks against the
database, its ETag / If-Match (a form carries the version it was opened at, so a save
over someone else's is refused), the preview and the results of gameportal.liveops."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import Depends, Query, Request
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from gameportal.console._ops import (
    FORM,
    ContentChoice,
    content_choices,
    data_json,
    field_text,
    find_user,
    game_choices,
    lines,
    local_value,
    number,
    p_value,
    parse_utc,
    percent,
    service_errors,
    signed_percent,
    validation_errors,
    words,
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
from gameportal.content.service import VersionMismatch
from gameportal.db import DbPool, DbReadSession, DbSession
from gameportal.errors import PortalError
from gameportal.identity.service import Principal
from gameportal.liveops import admin_repository, admin_service, results
from gameportal.liveops.admin_repository import ListFilter, Row
from gameportal.liveops.errors import CampaignNotFound
from gameportal.liveops.player_schemas import PreviewRead, PreviewRequest
from gameportal.liveops.preview import preview as preview_campaign
from gameportal.liveops.results_schemas import CampaignDaily, CampaignResults
from gameportal.liveops.schemas import (
    ABRuleCreate,
    ABRuleRead,
    ABRuleUpdate,
    CampaignCreate,
    CampaignRead,
    CampaignUpdate,
)
from gameportal.liveops.snapshot import CampaignSnapshots
from gameportal.models import ABRule, MarketingCampaign

router = console_router(
    "/liveops",
    nav=NavEntry("Live operations", "/console/liveops", roles=("marketer",), order=60),
)
Marketer = Annotated[Principal, Depends(require_console_role("marketer"))]

PAGE_SIZE = 50
MAX_RULES = 500  # the variants a campaign form offers
DEVICE_TYPES = (("MOBILE", "Mobile"), ("DESKTOP", "Desktop"), ("OTHER", "Other"))
VERDICT_LABELS = {
    "active": "Active",
    "schedule": "Schedule",
    "countries": "Countries",
    "ipRanges": "IP ranges",
    "deviceTypes": "Devices",
    "languages": "Languages",
    "segment": "Segment",
}
SAMPLE_AGENTS = (
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Chrome on Windows (desktop)",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        "Safari on iPhone (mobile)",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        "Chrome on Android (mobile)",
    ),
)

CAMPAIGN_FIELDS = {
    "name": "name",
    "description": "description",
    "startAt": "start_at",
    "endAt": "end_at",
    "active": "active",
    "targetingRules.countries": "countries",
    "targetingRules.ipRanges": "ip_ranges",
    "targetingRules.deviceTypes": "device_types",
    "targetingRules.languages": "languages",
    "targetingRules.segment": "segment_game",
    "targetingRules.segment.gameId": "segment_game",
    "targetingRules.segment.minLevel": "segment_min_level",
    "targetingRules.segment.maxLevel": "segment_max_level",
    "targetingRules.segment.minPoints": "segment_min_points",
    "targetingRules.segment.hasAchievement": "segment_achievement",
    "contentIds": "content_ids",
    "abVariants": "variants",
    "coverage": "coverage",
    "hashSeed": "hash_seed",
    "exclusionGroup": "exclusion_group",
}
CAMPAIGN_LABELS = {
    "name": "Name",
    "description": "Description",
    "start_at": "Starts",
    "end_at": "Ends",
    "countries": "Countries",
    "ip_ranges": "IP ranges",
    "device_types": "Devices",
    "languages": "Languages",
    "segment_game": "Segment game",
    "segment_min_level": "Minimum level",
    "segment_max_level": "Maximum level",
    "segment_min_points": "Minimum points",
    "segment_achievement": "Has the achievement",
    "content_ids": "Content promoted",
    "control": "Control",
    "variants": "Variants",
    "coverage": "Coverage",
    "hash_seed": "Hash seed",
    "exclusion_group": "Exclusion group",
}
RULE_FIELDS = {
    "name": "name",
    "description": "description",
    "startAt": "start_at",
    "endAt": "end_at",
    "active": "active",
    "rule": "weight",
    "rule.weight": "weight",
    "rule.payload": "payload",
    "rule.contentIds": "content_ids",
}
RULE_LABELS = {
    "name": "Name",
    "description": "Description",
    "start_at": "Starts",
    "end_at": "Ends",
    "weight": "Weight",
    "payload": "Payload",
    "content_ids": "Content shown",
}
PREVIEW_FIELDS = {
    "ip": "ip",
    "userAgent": "custom_agent",
    "language": "language",
    "userId": "player",
}


def etag_of(row_id: uuid.UUID, version: str) -> str | None:
    """The If-Match a form sends: the version it was opened at."""
    return f'"{row_id}.{version}"' if version.isdigit() else None


def window_state(start: datetime | None, end: datetime | None, now: datetime) -> str:
    if end is not None and end <= now:
        return "ended"
    if start is not None and start > now:
        return "scheduled"
    return "running"


def stale_message(kind: str, exc: VersionMismatch) -> str:
    return (
        f"Someone saved this {kind} after you opened it ({exc.detail}). Your changes are "
        "still in the form: open the page again in another tab to see theirs, then save "
        "yours on top."
    )


# --- form drafts -----------------------------------------------------------------------------


def _when(values: dict[str, str], name: str, errors: dict[str, str]) -> datetime | None:
    text = values.get(name, "")
    if not text:
        return None
    try:
        return parse_utc(text)
    except ValueError as exc:
        errors[name] = str(exc)[:1].upper() + str(exc)[1:] + "."
        return None


@dataclass
class CampaignDraft:
    values: dict[str, str]
    devices: list[str]
    content: list[str]
    variants: list[str]

    TEXT = ("name", "description", "start_at", "end_at", "countries", "ip_ranges", "languages",
            "segment_game", "segment_min_level", "segment_max_level", "segment_min_points",
            "segment_achievement", "control", "coverage", "hash_seed", "exclusion_group",
            "version", "active")  # fmt: skip

    @classmethod
    def blank(cls) -> CampaignDraft:
        return cls({"coverage": "1"}, [], [], [])

    @classmethod
    def of(cls, form: FormData) -> CampaignDraft:
        def strings(name: str) -> list[str]:
            return [v for v in form.getlist(name) if isinstance(v, str) and v]

        values = {name: field_text(form, name).strip() for name in cls.TEXT}
        values["description"] = field_text(form, "description")
        return cls(values, strings("device_types"), strings("content_ids"), strings("variants"))

    @classmethod
    def of_campaign(cls, row: CampaignRead) -> CampaignDraft:
        t = row.targeting_rules
        segment = t.segment
        return cls(
            {
                "name": row.name,
                "description": row.description,
                "start_at": local_value(row.start_at),
                "end_at": local_value(row.end_at),
                "countries": ", ".join(t.countries),
                "ip_ranges": "\n".join(t.ip_ranges),
                "languages": ", ".join(t.languages),
                "segment_game": str(segment.game_id) if segment else "",
                "segment_min_level": _text(segment.min_level) if segment else "",
                "segment_max_level": _text(segment.max_level) if segment else "",
                "segment_min_points": _text(segment.min_points) if segment else "",
                "segment_achievement": (segment.has_achievement or "") if segment else "",
                "control": str(row.ab_variants[0]) if row.ab_variants else "",
                "coverage": f"{row.coverage:g}",
                "hash_seed": row.hash_seed,
                "exclusion_group": row.exclusion_group or "",
                "version": str(row.version),
                "active": "1" if row.active else "",
            },
            list(t.device_types),
            [str(c) for c in row.content_ids],
            [str(v) for v in row.ab_variants[1:]],
        )

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def body(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The API's body (camelCase, as a client sends it), and what only the form sees."""
        errors: dict[str, str] = {}
        segment: dict[str, Any] | None = None
        bounds = ("segment_min_level", "segment_max_level", "segment_min_points")
        if self.get("segment_game"):
            segment = {
                "gameId": self.get("segment_game"),
                "minLevel": number(self.get("segment_min_level"), int)
                if self.get("segment_min_level")
                else None,
                "maxLevel": number(self.get("segment_max_level"), int)
                if self.get("segment_max_level")
                else None,
                "minPoints": number(self.get("segment_min_points"), int)
                if self.get("segment_min_points")
                else None,
                "hasAchievement": self.get("segment_achievement") or None,
            }
        elif any(self.get(name) for name in (*bounds, "segment_achievement")):
            errors["segment_game"] = "Choose the game whose players the segment is about."
        control = self.get("control")
        if not control:
            errors["control"] = "Choose the control variant."
        body = {
            "name": self.get("name"),
            "description": self.get("description"),
            "startAt": _when(self.values, "start_at", errors),
            "endAt": _when(self.values, "end_at", errors),
            "targetingRules": {
                "countries": words(self.get("countries")),
                "ipRanges": lines(self.get("ip_ranges")),
                "deviceTypes": self.devices,
                "languages": words(self.get("languages")),
                "segment": segment,
            },
            "contentIds": self.content,
            "abVariants": [control, *(v for v in self.variants if v != control)] if control else [],
            "coverage": number(self.get("coverage") or "1", float),
            "hashSeed": self.get("hash_seed") or None,
            "exclusionGroup": self.get("exclusion_group") or None,
        }
        return body, errors


def _variant_errors(found: dict[str, str], form_errors: dict[str, str]) -> dict[str, str]:
    """Without a control the list of variants is empty: the form says which is missing,
    the schema's "at least 1 item" would only repeat it."""
    if "control" in form_errors:
        found.pop("variants", None)
    return found


def _text(value: int | None) -> str:
    return "" if value is None else str(value)


@dataclass
class RuleDraft:
    values: dict[str, str]
    content: list[str]

    TEXT = ("name", "description", "start_at", "end_at", "weight", "payload", "version",
            "active")  # fmt: skip

    @classmethod
    def blank(cls) -> RuleDraft:
        return cls({"weight": "1", "active": "1"}, [])

    @classmethod
    def of(cls, form: FormData) -> RuleDraft:
        values = {name: field_text(form, name).strip() for name in cls.TEXT}
        values["description"] = field_text(form, "description")
        content = [v for v in form.getlist("content_ids") if isinstance(v, str) and v]
        return cls(values, content)

    @classmethod
    def of_rule(cls, row: ABRuleRead) -> RuleDraft:
        payload = row.rule.payload
        return cls(
            {
                "name": row.name,
                "description": row.description,
                "start_at": local_value(row.start_at),
                "end_at": local_value(row.end_at),
                "weight": f"{row.rule.weight:g}",
                "payload": ""
                if payload is None
                else orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode(),
                "version": str(row.version),
                "active": "1" if row.active else "",
            },
            [str(c) for c in row.rule.content_ids],
        )

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def body(self) -> tuple[dict[str, Any], dict[str, str]]:
        errors: dict[str, str] = {}
        payload: Any = None
        if self.get("payload"):
            try:
                payload = orjson.loads(self.get("payload"))
            except orjson.JSONDecodeError as exc:
                errors["payload"] = f"Must be JSON: {exc}."
        body = {
            "name": self.get("name"),
            "description": self.get("description"),
            "startAt": _when(self.values, "start_at", errors),
            "endAt": _when(self.values, "end_at", errors),
            "rule": {
                "weight": number(self.get("weight"), float),
                "payload": payload,
                "contentIds": self.content,
            },
        }
        return body, errors


# --- shared reads ----------------------------------------------------------------------------


async def _rule_names(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = await session.execute(select(ABRule.id, ABRule.name).where(ABRule.id.in_(list(ids))))
    return {row.id: row.name for row in rows}


async def _campaign(session: AsyncSession, campaign_id: uuid.UUID) -> CampaignRead:
    try:
        row = await admin_service.get_campaign(session, campaign_id)
    except CampaignNotFound:
        raise not_found("campaign") from None
    return CampaignRead.model_validate(row)


async def _rule(session: AsyncSession, rule_id: uuid.UUID) -> ABRuleRead:
    try:
        row = await admin_service.get_rule(session, rule_id)
    except admin_service.ABRuleNotFound:
        raise not_found("A/B rule") from None
    return ABRuleRead.model_validate(row)


def _tabs(current: str) -> list[tuple[str, str, bool]]:
    return [
        ("/console/liveops", "Campaigns", current == "campaigns"),
        ("/console/liveops/rules", "A/B rules", current == "rules"),
    ]


def _bool_filter(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


# --- campaigns: list -------------------------------------------------------------------------


@router.get("")
async def campaigns(
    request: Request,
    marketer: Marketer,
    session: DbReadSession,
    q: Annotated[str, Query(max_length=200)] = "",
    active: Annotated[str, Query(max_length=3)] = "",
    current: Annotated[str, Query(max_length=3)] = "",
    after: uuid.UUID | None = None,
) -> Response:
    f = ListFilter(
        active=_bool_filter(active), name_prefix=q.strip() or None, current=_bool_filter(current)
    )
    rows = await admin_service.list_campaigns(session, f, after=after, limit=PAGE_SIZE + 1)
    next_after = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    shown = [CampaignRead.model_validate(r) for r in rows[:PAGE_SIZE]]
    filters = {"q": q.strip(), "active": active, "current": current}
    return render(
        request,
        "console/liveops/campaigns.html",
        campaigns=shown,
        names=await _rule_names(session, {v for c in shown for v in c.ab_variants}),
        filters=filters,
        query=urlencode({k: v for k, v in filters.items() if v}),
        next_after=next_after,
        paged=after is not None,
        tabs=_tabs("campaigns"),
        now=datetime.now(UTC),
        window_state=window_state,
        percent=percent,
    )


# --- campaigns: forms ------------------------------------------------------------------------


async def _campaign_form(
    request: Request,
    session: AsyncSession,
    draft: CampaignDraft,
    *,
    campaign: CampaignRead | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    rules = await admin_service.list_rules(session, ListFilter(), after=None, limit=MAX_RULES)
    rule_options = [
        (str(r.id), f"{r.name} (weight {r.rule.get('weight', 0):g})") for r in reversed(rules)
    ]
    return render(
        request,
        "console/liveops/campaign_form.html",
        status_code=status_code,
        campaign=campaign,
        draft=draft,
        errors=errors or {},
        labels=CAMPAIGN_LABELS,
        rule_options=rule_options,
        game_options=[("", "No segment: every player")]
        + [(str(i), t) for i, t in await game_choices(session)],
        content_options=_content_options(await content_choices(session)),
        device_types=DEVICE_TYPES,
    )


def _content_options(choices: list[ContentChoice]) -> list[tuple[str, str]]:
    return [(str(c.id), c.label) for c in choices]


@router.get("/campaigns/new")
async def new_campaign(request: Request, marketer: Marketer, session: DbReadSession) -> Response:
    return await _campaign_form(request, session, CampaignDraft.blank())


@router.post("/campaigns")
async def create_campaign(request: Request, marketer: Marketer, session: DbSession) -> Response:
    draft = CampaignDraft.of(await console_form(request))
    body, errors = draft.body()
    body["active"] = bool(draft.get("active"))
    try:
        parsed = CampaignCreate.model_validate(body)
    except ValidationError as exc:
        errors = {**_variant_errors(validation_errors(exc, CAMPAIGN_FIELDS), errors), **errors}
    else:
        if not errors:
            try:
                row = await admin_service.create_campaign(session, marketer.user_id, parsed)
            except PortalError as exc:
                await session.rollback()
                errors = service_errors(exc, CAMPAIGN_FIELDS)
            else:
                state = "active" if row.active else "inactive until you activate it"
                return see_other(
                    request,
                    f"/console/liveops/campaigns/{row.id}",
                    flash_message=f"Campaign “{row.name}” created, {state}.",
                )
    return await _campaign_form(request, session, draft, errors=errors, status_code=422)


@router.get("/campaigns/{campaign_id:uuid}/edit")
async def edit_campaign(
    campaign_id: uuid.UUID, request: Request, marketer: Marketer, session: DbReadSession
) -> Response:
    found = await _campaign(session, campaign_id)
    return await _campaign_form(request, session, CampaignDraft.of_campaign(found), campaign=found)


@router.post("/campaigns/{campaign_id:uuid}")
async def update_campaign(
    campaign_id: uuid.UUID, request: Request, marketer: Marketer, session: DbSession
) -> Response:
    found = await _campaign(session, campaign_id)
    draft = CampaignDraft.of(await console_form(request))
    body, errors = draft.body()
    try:
        parsed = CampaignUpdate.model_validate(body)
    except ValidationError as exc:
        errors = {**_variant_errors(validation_errors(exc, CAMPAIGN_FIELDS), errors), **errors}
    else:
        if not errors:
            try:
                row = await admin_service.update_campaign(
                    session, campaign_id, parsed, etag_of(campaign_id, draft.get("version"))
                )
            except VersionMismatch as exc:
                await session.rollback()
                errors = {FORM: stale_message("campaign", exc)}
            except PortalError as exc:
                await session.rollback()
                errors = service_errors(exc, CAMPAIGN_FIELDS)
            else:
                return see_other(
                    request,
                    f"/console/liveops/campaigns/{row.id}",
                    flash_message=f"Campaign “{row.name}” saved.",
                )
    return await _campaign_form(
        request, session, draft, campaign=found, errors=errors, status_code=422
    )


# --- campaigns: the page, preview, activate ----------------------------------------------------


@dataclass
class PreviewDraft:
    values: dict[str, str]

    @classmethod
    def blank(cls) -> PreviewDraft:
        return cls({"user_agent": SAMPLE_AGENTS[0][0], "ip": "", "language": "", "player": ""})

    @classmethod
    def of(cls, form: FormData) -> PreviewDraft:
        names = ("ip", "user_agent", "custom_agent", "language", "player")
        return cls({n: field_text(form, n).strip() for n in names})

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    @property
    def agent(self) -> str:
        """A User-Agent typed in wins over the one picked from the list."""
        return self.get("custom_agent") or self.get("user_agent")


async def _campaign_page(
    request: Request,
    session: AsyncSession,
    found: CampaignRead,
    *,
    draft: PreviewDraft | None = None,
    verdict: PreviewRead | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    names = await _rule_names(session, set(found.ab_variants))
    if verdict is not None and verdict.assignment and verdict.assignment.variant_id:
        names.update(await _rule_names(session, {verdict.assignment.variant_id}))
    weights = {
        r.id: float(r.rule.get("weight", 0))
        for r in (await admin_repository.rules(session, found.ab_variants)).values()
    }
    total = sum(weights.get(v, 0) for v in found.ab_variants)
    games = dict(await game_choices(session))
    content = {c.id: c for c in await content_choices(session)}
    return render(
        request,
        "console/liveops/campaign.html",
        status_code=status_code,
        campaign=found,
        names=names,
        weights=weights,
        total_weight=total,
        games=games,
        content=content,
        draft=draft or PreviewDraft.blank(),
        verdict=verdict,
        errors=errors or {},
        sample_agents=SAMPLE_AGENTS,
        verdict_labels=VERDICT_LABELS,
        window=window_state(found.start_at, found.end_at, datetime.now(UTC)),
        percent=percent,
    )


@router.get("/campaigns/{campaign_id:uuid}")
async def campaign(
    campaign_id: uuid.UUID, request: Request, marketer: Marketer, session: DbReadSession
) -> Response:
    return await _campaign_page(request, session, await _campaign(session, campaign_id))


@router.post("/campaigns/{campaign_id:uuid}/preview")
async def preview(
    campaign_id: uuid.UUID,
    request: Request,
    marketer: Marketer,
    session: DbReadSession,
    db: DbPool,
) -> Response:
    """Would a request like this match, rule by rule, and which variant would the player
    get: the page again with the answer (or the answer alone for htmx)."""
    found = await _campaign(session, campaign_id)
    draft = PreviewDraft.of(await console_form(request))
    errors: dict[str, str] = {}
    user_id: uuid.UUID | None = None
    if draft.get("player"):
        user = await find_user(session, draft.get("player"))
        if user is None:
            errors["player"] = "No account has this email address or id."
        else:
            user_id = user.id
    verdict: PreviewRead | None = None
    try:
        asked = PreviewRequest.model_validate(
            {
                "ip": draft.get("ip"),
                "userAgent": draft.agent,
                "userId": user_id,
                "language": draft.get("language") or None,
            }
        )
    except ValidationError as exc:
        errors = {**validation_errors(exc, PREVIEW_FIELDS), **errors}
    else:
        if not errors:
            snapshots: CampaignSnapshots = request.app.state.liveops
            verdict = PreviewRead.model_validate(
                await preview_campaign(
                    db.pool,
                    campaign_id,
                    ip=ipaddress.ip_address(asked.ip),
                    user_agent=asked.user_agent,
                    user_id=asked.user_id,
                    language=asked.language,
                    now=snapshots.clock(),
                )
            )
    return await _campaign_page(
        request,
        session,
        found,
        draft=draft,
        verdict=verdict,
        errors=errors,
        status_code=422 if errors else 200,
    )


async def _set_active(
    request: Request,
    session: AsyncSession,
    model: type[Row],
    row_id: uuid.UUID,
    active: bool,
    back: str,
) -> Response:
    version = form_text(await console_form(request), "version")
    kind = "campaign" if model is MarketingCampaign else "variant"
    try:
        row = await admin_service.set_active(
            session, model, row_id, active, etag_of(row_id, version)
        )
    except (CampaignNotFound, admin_service.ABRuleNotFound):
        raise not_found(kind) from None
    except VersionMismatch:
        await session.rollback()
        return see_other(
            request,
            back,
            flash_message=f"This {kind} was changed after you opened the page; here it is as "
            "it is now. Check it, then try again.",
            flash_kind="error",
        )
    if active:
        message = (
            f"“{row.name}” is active: it matches and assigns players (inside its window)."
            if model is MarketingCampaign
            else f"“{row.name}” is active: it takes new players again."
        )
    else:
        message = (
            f"“{row.name}” is inactive: it matches no one; its results stay."
            if model is MarketingCampaign
            else f"“{row.name}” is inactive: no new players; those assigned keep it."
        )
    return see_other(request, back, flash_message=message)


@router.post("/campaigns/{campaign_id:uuid}/activate")
async def activate_campaign(
    campaign_id: uuid.UUID, request: Request, marketer: Marketer, session: DbSession
) -> Response:
    back = f"/console/liveops/campaigns/{campaign_id}"
    return await _set_active(request, session, MarketingCampaign, campaign_id, True, back)


@router.post("/campaigns/{campaign_id:uuid}/deactivate")
async def deactivate_campaign(
    campaign_id: uuid.UUID, request: Request, marketer: Marketer, session: DbSession
) -> Response:
    back = f"/console/liveops/campaigns/{campaign_id}"
    return await _set_active(request, session, MarketingCampaign, campaign_id, False, back)


# --- campaigns: results ------------------------------------------------------------------------


def _daily_chart(daily: CampaignDaily, names: dict[uuid.UUID, str]) -> dict[str, Any]:
    """Each variant's conversion rate so far, day by day (cumulative: what the decision
    reads), as the chart in console/ops.js takes it."""
    series = []
    for index, variant in enumerate(daily.variants):
        values: list[float | None] = []
        for day in daily.days:
            counts = day.variants[index]
            values.append(
                counts.cumulative_conversions / counts.cumulative_assigned
                if counts.cumulative_assigned
                else None
            )
        label = variant.name or names.get(variant.variant_id) or str(variant.variant_id)[:8]
        series.append(
            {"label": label + (" (control)" if variant.control else ""), "values": values}
        )
    return {
        "x": [int(datetime.combine(d.day, time(), UTC).timestamp()) for d in daily.days],
        "series": series,
        "format": "percent",
        "days": True,
        "xLabel": "Day",
    }


@router.get("/campaigns/{campaign_id:uuid}/results")
async def campaign_results(
    campaign_id: uuid.UUID, request: Request, marketer: Marketer, session: DbReadSession
) -> Response:
    found = await _campaign(session, campaign_id)
    summary: CampaignResults = await results.campaign_results(session, campaign_id)
    daily: CampaignDaily = await results.campaign_daily(session, campaign_id)
    names = {v.variant_id: v.name or "" for v in summary.variants}
    return render(
        request,
        "console/liveops/results.html",
        campaign=found,
        results=summary,
        daily=daily,
        chart=data_json(_daily_chart(daily, names)),
        percent=percent,
        signed_percent=signed_percent,
        p_value=p_value,
    )


# --- A/B rules -------------------------------------------------------------------------------


@router.get("/rules")
async def rules(
    request: Request,
    marketer: Marketer,
    session: DbReadSession,
    q: Annotated[str, Query(max_length=200)] = "",
    active: Annotated[str, Query(max_length=3)] = "",
    after: uuid.UUID | None = None,
) -> Response:
    f = ListFilter(active=_bool_filter(active), name_prefix=q.strip() or None)
    rows = await admin_service.list_rules(session, f, after=after, limit=PAGE_SIZE + 1)
    next_after = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    filters = {"q": q.strip(), "active": active}
    return render(
        request,
        "console/liveops/rules.html",
        rules=[ABRuleRead.model_validate(r) for r in rows[:PAGE_SIZE]],
        filters=filters,
        query=urlencode({k: v for k, v in filters.items() if v}),
        next_after=next_after,
        paged=after is not None,
        tabs=_tabs("rules"),
        now=datetime.now(UTC),
        window_state=window_state,
        payload_text=_payload_text,
    )


def _payload_text(payload: Any) -> str:
    return "—" if payload is None else orjson.dumps(payload).decode()


async def _rule_form(
    request: Request,
    session: AsyncSession,
    draft: RuleDraft,
    *,
    rule: ABRuleRead | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    used_by: list[MarketingCampaign] = []
    if rule is not None:
        used_by = await admin_repository.campaigns_using(session, rule.id, limit=50)
    return render(
        request,
        "console/liveops/rule_form.html",
        status_code=status_code,
        rule=rule,
        draft=draft,
        errors=errors or {},
        labels=RULE_LABELS,
        content_options=_content_options(await content_choices(session)),
        used_by=used_by,
    )


@router.get("/rules/new")
async def new_rule(request: Request, marketer: Marketer, session: DbReadSession) -> Response:
    return await _rule_form(request, session, RuleDraft.blank())


@router.post("/rules")
async def create_rule(request: Request, marketer: Marketer, session: DbSession) -> Response:
    draft = RuleDraft.of(await console_form(request))
    body, errors = draft.body()
    body["active"] = bool(draft.get("active"))
    try:
        parsed = ABRuleCreate.model_validate(body)
    except ValidationError as exc:
        errors = {**validation_errors(exc, RULE_FIELDS), **errors}
    else:
        if not errors:
            try:
                row = await admin_service.create_rule(session, marketer.user_id, parsed)
            except PortalError as exc:
                await session.rollback()
                errors = service_errors(exc, RULE_FIELDS)
            else:
                return see_other(
                    request,
                    "/console/liveops/rules",
                    flash_message=f"A/B rule “{row.name}” created: campaigns can list it now.",
                )
    return await _rule_form(request, session, draft, errors=errors, status_code=422)


@router.get("/rules/{rule_id:uuid}")
async def rule(
    rule_id: uuid.UUID, request: Request, marketer: Marketer, session: DbReadSession
) -> Response:
    found = await _rule(session, rule_id)
    return await _rule_form(request, session, RuleDraft.of_rule(found), rule=found)


@router.post("/rules/{rule_id:uuid}")
async def update_rule(
    rule_id: uuid.UUID, request: Request, marketer: Marketer, session: DbSession
) -> Response:
    found = await _rule(session, rule_id)
    draft = RuleDraft.of(await console_form(request))
    body, errors = draft.body()
    try:
        parsed = ABRuleUpdate.model_validate(body)
    except ValidationError as exc:
        errors = {**validation_errors(exc, RULE_FIELDS), **errors}
    else:
        if not errors:
            try:
                row = await admin_service.update_rule(
                    session, rule_id, parsed, etag_of(rule_id, draft.get("version"))
                )
            except VersionMismatch as exc:
                await session.rollback()
                errors = {FORM: stale_message("A/B rule", exc)}
            except PortalError as exc:
                await session.rollback()
                errors = service_errors(exc, RULE_FIELDS)
            else:
                return see_other(
                    request,
                    f"/console/liveops/rules/{row.id}",
                    flash_message=f"A/B rule “{row.name}” saved.",
                )
    return await _rule_form(request, session, draft, rule=found, errors=errors, status_code=422)


@router.post("/rules/{rule_id:uuid}/activate")
async def activate_rule(
    rule_id: uuid.UUID, request: Request, marketer: Marketer, session: DbSession
) -> Response:
    back = f"/console/liveops/rules/{rule_id}"
    return await _set_active(request, session, ABRule, rule_id, True, back)


@router.post("/rules/{rule_id:uuid}/deactivate")
async def deactivate_rule(
    rule_id: uuid.UUID, request: Request, marketer: Marketer, session: DbSession
) -> Response:
    back = f"/console/liveops/rules/{rule_id}"
    return await _set_active(request, session, ABRule, rule_id, False, back)


@router.post("/rules/{rule_id:uuid}/delete")
async def delete_rule(
    rule_id: uuid.UUID, request: Request, marketer: Marketer, session: DbSession
) -> Response:
    found = await _rule(session, rule_id)
    try:
        await admin_service.delete_rule(session, rule_id, None)
    except admin_service.ABRuleInUse as exc:
        await session.rollback()
        return see_other(
            request,
            f"/console/liveops/rules/{rule_id}",
            flash_message=f"Not deleted: {exc.detail}.",
            flash_kind="error",
        )
    return see_other(
        request, "/console/liveops/rules", flash_message=f"A/B rule “{found.name}” deleted."
    )
