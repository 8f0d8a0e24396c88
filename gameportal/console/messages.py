"""Messages: compose an in-app, email or push message to one player or to everyone, now
or at a time, with a preview per language; the delivery queue filtered by status, type
and recipient; retry a failed message, cancel a waiting one; the queue's figures with a
chart of what was processed and failed per minute.

Admins only, as the API's /api/v1/admin/notifications, and through the same service:
payloads are validated per type, an unknown recipient is refused, a cancel or retry only
happens from the state that allows it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import Depends, Query, Request
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import JSONResponse, Response

from gameportal.console._ops import (
    FORM,
    data_json,
    field_text,
    find_user,
    local_value,
    number,
    parse_utc,
    service_errors,
    validation_errors,
)
from gameportal.console.frame import (
    CONSOLE_HEADERS,
    NavEntry,
    console_form,
    console_router,
    form_text,
    not_found,
    render,
    require_console_role,
    safe_next,
    see_other,
)
from gameportal.db import DbPool, DbReadSession, DbSession
from gameportal.errors import PortalError
from gameportal.identity.service import Principal
from gameportal.models import Message, User
from gameportal.models.message import MESSAGE_STATUSES, MESSAGE_TYPES
from gameportal.notifications import service
from gameportal.notifications.channels.email import EmailChannel
from gameportal.notifications.registry import ClaimedMessage
from gameportal.notifications.schemas import MessageCreate, MessageRead, validate_payloads
from gameportal.notifications.templates import FALLBACK_LANGUAGE, TEMPLATES

router = console_router(
    "/messages", nav=NavEntry("Messages", "/console/messages", roles=("admin",), order=40)
)
Admin = Annotated[Principal, Depends(require_console_role("admin"))]

PAGE_SIZE = 50
CHART_MINUTES = 60

COMPOSE_TYPES = ("IN_APP", "EMAIL", "PUSH")
TYPE_LABELS = {
    "IN_APP": "In-app",
    "EMAIL": "Email",
    "PUSH": "Push",
    "MEDIA_PROCESSING": "Media processing",
}
STATUS_LABELS = {"PENDING": "Waiting", "PROCESSING": "Sending", "SENT": "Sent", "FAILED": "Failed"}
CATEGORIES = (
    ("marketing", "News and offers (players may opt out)"),
    ("achievements", "Achievements (players may opt out)"),
    ("transactional", "Service message (always delivered)"),
    ("account", "Account (always delivered)"),
)
CATEGORY_LABELS = {
    "marketing": "News and offers",
    "achievements": "Achievements",
    "transactional": "Service",
    "account": "Account",
}
LANGUAGE_NAMES = {"en": "English", "de": "German"}
# Who an email to everyone is previewed for: each player gets their own copy.
SAMPLE_NAME = "Alex Example"
SAMPLE_ADDRESS = "alex@example.com"

# Each type's own fields, so that a form without JavaScript (all fieldsets shown) sends
# every type's values without one overwriting another.
_PAYLOAD_FIELDS = {
    "IN_APP": ("subject", "body", "category"),
    "EMAIL": ("subject", "body", "language", "template", "variables", "category"),
    "PUSH": ("title", "body", "url", "category"),
}
_PREFIX = {"IN_APP": "in_app", "EMAIL": "email", "PUSH": "push"}
_TEXT_FIELDS = (
    "type",
    "audience",
    "recipient",
    "email_mode",
    "when",
    "scheduled_at",
    "priority",
    "dedupe_key",
    *(f"{_PREFIX[t]}_{name}" for t, names in _PAYLOAD_FIELDS.items() for name in names),
)


def type_label(message_type: str) -> str:
    return TYPE_LABELS.get(message_type, message_type)


def summary(payload: dict[str, Any]) -> str:
    """What a message is about, in a table cell."""
    for key in ("subject", "title"):
        if payload.get(key):
            return str(payload[key])
    if payload.get("template"):
        return f"Template: {payload['template']}"
    if payload.get("mediaId"):
        return f"Media {payload['mediaId']}"
    return "—"


# --- the compose form ----------------------------------------------------------------------


@dataclass
class Compose:
    """The compose form's values, as typed."""

    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def blank(cls) -> Compose:
        return cls(
            {
                "type": "IN_APP",
                "audience": "all",
                "email_mode": "text",
                "when": "now",
                "priority": "0",
                "email_language": "en",
                "in_app_category": "marketing",
                "email_category": "marketing",
                "push_category": "marketing",
            }
        )

    @classmethod
    def of(cls, form: FormData) -> Compose:
        return cls({name: field_text(form, name).strip() for name in _TEXT_FIELDS})

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    @property
    def type(self) -> str:
        chosen = self.get("type")
        return chosen if chosen in COMPOSE_TYPES else "IN_APP"

    @property
    def broadcast(self) -> bool:
        return self.get("audience") != "one"

    @property
    def templated(self) -> bool:
        return self.type == "EMAIL" and self.get("email_mode") == "template"

    def fields(self) -> dict[str, str]:
        """Where each of the schema's and the service's fields is on this form."""
        prefix = _PREFIX[self.type]
        mapping = {f"payload.{name}": f"{prefix}_{name}" for name in _PAYLOAD_FIELDS[self.type]}
        mapping.update(
            {
                "type": "type",
                "recipientUserId": "recipient",
                "scheduledAt": "scheduled_at",
                "priority": "priority",
                "dedupeKey": "dedupe_key",
                "maxAttempts": FORM,
                "payload": FORM,
            }
        )
        return mapping

    def payload(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The payload for the message's type, and the problems only the form can see."""
        prefix = _PREFIX[self.type]
        errors: dict[str, str] = {}
        names = list(_PAYLOAD_FIELDS[self.type])
        if self.type == "EMAIL":
            if self.templated:
                names = ["template", "variables", "category"]
            else:
                names = ["subject", "body", "language", "category"]
        payload: dict[str, Any] = {}
        for name in names:
            value = self.get(f"{prefix}_{name}")
            if value:
                payload[name] = value
        if self.type == "EMAIL" and not self.templated:
            for required in ("subject", "body"):
                if required not in payload:
                    errors[f"email_{required}"] = "Write the mail's " + required + "."
        if self.templated:
            template = payload.get("template")
            if not template:
                errors["email_template"] = "Choose a template."
            elif template not in TEMPLATES:
                errors["email_template"] = "There is no mail template of this name."
            raw = payload.pop("variables", "")
            if raw:
                try:
                    variables = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    errors["email_variables"] = f"Must be JSON: {exc}."
                else:
                    if isinstance(variables, dict):
                        payload["variables"] = variables
                    else:
                        errors["email_variables"] = 'Must be a JSON object, e.g. {"hours": 24}.'
        return payload, errors

    async def message(self, session: AsyncSession) -> tuple[MessageCreate | None, dict[str, str]]:
        """The API's request body for this form, or the problems with it."""
        payload, errors = self.payload()
        recipient: uuid.UUID | None = None
        if not self.broadcast:
            typed = self.get("recipient")
            user = await find_user(session, typed) if typed else None
            if not typed:
                errors["recipient"] = "Enter the player's email address or account id."
            elif user is None:
                errors["recipient"] = "No account has this email address or id."
            else:
                recipient = user.id
        scheduled: datetime | None = None
        if self.get("when") == "later":
            try:
                scheduled = parse_utc(self.get("scheduled_at"))
            except ValueError as exc:
                errors["scheduled_at"] = str(exc)[:1].upper() + str(exc)[1:] + "."
        body = {
            "type": self.type,
            "recipientUserId": recipient,
            "payload": payload,
            "scheduledAt": scheduled,
            "priority": number(self.get("priority") or "0", int),
            "dedupeKey": self.get("dedupe_key") or None,
        }
        try:
            created = MessageCreate.model_validate(body)
        except ValidationError as exc:
            return None, {**validation_errors(exc, self.fields()), **errors}
        if errors:
            return None, errors
        return created, {}


# --- previews ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailPreview:
    language: str
    language_name: str
    subject: str
    text: str
    html: str
    headers: list[tuple[str, str]]
    recipients: bool  # the language of the chosen player's account


def _parts(mail: EmailMessage) -> tuple[str, str]:
    text = html = ""
    for part in mail.walk():
        if part.get_content_type() == "text/plain" and not text:
            text = str(part.get_content())
        elif part.get_content_type() == "text/html" and not html:
            html = str(part.get_content())
    return text, html


def _preview_languages(payload: dict[str, Any]) -> list[str]:
    if payload.get("template") in TEMPLATES:
        found = sorted(TEMPLATES[payload["template"]])
        return sorted(found, key=lambda lang: (lang != FALLBACK_LANGUAGE, lang))
    return [payload.get("language") or FALLBACK_LANGUAGE]


def mail_previews(
    request: Request, payload: dict[str, Any], recipient: User | None
) -> list[MailPreview]:
    """The mail as the worker composes it, once per language it can come in: a template's
    versions (each player gets theirs), or a ready mail's one language. For a broadcast,
    as a player's copy (with the unsubscribe note copies of such a category carry)."""
    channel = EmailChannel(request.app.state.settings)
    now = datetime.now(UTC)
    message = ClaimedMessage(
        id=uuid.UUID(int=0),
        type="EMAIL",
        recipient_user_id=recipient.id if recipient is not None else uuid.UUID(int=1),
        payload=payload,
        priority=0,
        retry_count=0,
        max_attempts=1,
        scheduled_at=now,
        created_at=now,
    )
    name = recipient.name if recipient is not None else SAMPLE_NAME
    address = recipient.email if recipient is not None else SAMPLE_ADDRESS
    languages = _preview_languages(payload)
    # The version the chosen player gets: their account's language, else English.
    theirs = str((recipient.preferences or {}).get("language") or "") if recipient else ""
    primary = theirs.split("-")[0].lower()
    their_version = primary if primary in languages else FALLBACK_LANGUAGE
    previews = []
    for language in languages:
        mail = channel.compose(message, address, name, language)
        text, html = _parts(mail)
        previews.append(
            MailPreview(
                language=language,
                language_name=LANGUAGE_NAMES.get(language, language),
                subject=str(mail["Subject"] or ""),
                text=text,
                html=html,
                headers=[
                    (h, str(mail[h]))
                    for h in ("To", "Subject", "Content-Language", "List-Unsubscribe")
                    if mail[h] is not None
                ],
                recipients=recipient is not None
                and (len(languages) == 1 or language == their_version),
            )
        )
    return previews


@dataclass
class Preview:
    type: str
    broadcast: bool
    payload: dict[str, Any]
    problems: list[str]
    mails: list[MailPreview]
    recipient: User | None


async def build_preview(request: Request, session: AsyncSession, draft: Compose) -> Preview:
    payload, errors = draft.payload()
    recipient = None
    if not draft.broadcast and draft.get("recipient"):
        recipient = await find_user(session, draft.get("recipient"))
    problems = [message for message in errors.values()]
    stored: dict[str, Any] = {}
    if not problems:
        try:
            stored = validate_payloads(draft.type, [payload])[0]
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e['loc'][1:]) or 'payload'}: {e['msg']}"
                for e in exc.errors()
            ]
    mails: list[MailPreview] = []
    if not problems and draft.type == "EMAIL":
        mails = mail_previews(request, stored, recipient)
    return Preview(draft.type, draft.broadcast, stored, problems, mails, recipient)


# --- pages ---------------------------------------------------------------------------------


async def _emails(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = await session.execute(select(User.id, User.email).where(User.id.in_(list(ids))))
    return {row.id: row.email for row in rows}


@router.get("")
async def queue(
    request: Request,
    admin: Admin,
    session: DbReadSession,
    status: Annotated[str, Query(max_length=16)] = "",
    type: Annotated[str, Query(max_length=24)] = "",
    recipient: Annotated[str, Query(max_length=320)] = "",
    before: uuid.UUID | None = None,
) -> Response:
    status = status if status in MESSAGE_STATUSES else ""
    type = type if type in MESSAGE_TYPES else ""
    recipient = recipient.strip()
    user = await find_user(session, recipient) if recipient else None
    rows: list[Message] = []
    if not recipient or user is not None:
        rows = await service.admin_list(
            session,
            status=status or None,
            message_type=type or None,
            recipient_user_id=user.id if user is not None else None,
            before=before,
            limit=PAGE_SIZE + 1,
        )
    next_before = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    rows = rows[:PAGE_SIZE]
    emails = await _emails(session, {r.recipient_user_id for r in rows if r.recipient_user_id})
    filters = {"status": status, "type": type, "recipient": recipient}
    query = urlencode({k: v for k, v in filters.items() if v})
    return render(
        request,
        "console/messages/list.html",
        messages=[MessageRead.model_validate(r) for r in rows],
        emails=emails,
        filters=filters,
        query_without_cursor=query,
        next_before=next_before,
        paged=before is not None,
        unknown_recipient=bool(recipient) and user is None,
        statuses=MESSAGE_STATUSES,
        types=MESSAGE_TYPES,
        status_labels=STATUS_LABELS,
        type_label=type_label,
        summary=summary,
        back=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    )


def _compose_page(
    request: Request,
    draft: Compose,
    *,
    errors: dict[str, str] | None = None,
    preview: Preview | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "console/messages/compose.html",
        status_code=status_code,
        draft=draft,
        errors=errors or {},
        preview=preview,
        compose_types=COMPOSE_TYPES,
        type_label=type_label,
        categories=CATEGORIES,
        category_labels=CATEGORY_LABELS,
        template_options=[("", "Choose a template")]
        + [(name, f"{name} ({', '.join(sorted(TEMPLATES[name]))})") for name in sorted(TEMPLATES)],
        language_names=LANGUAGE_NAMES,
    )


@router.get("/new")
async def compose(
    request: Request,
    admin: Admin,
    session: DbReadSession,
    to: Annotated[str, Query(max_length=320)] = "",
) -> Response:
    draft = Compose.blank()
    if to:
        user = await find_user(session, to)
        if user is not None:
            draft.values.update(audience="one", recipient=user.email)
    return _compose_page(request, draft)


@router.post("/preview")
async def preview(request: Request, admin: Admin, session: DbReadSession) -> Response:
    """The preview of the form as it stands: the panel alone for htmx (it refreshes as
    the admin types), else the compose page with it (the Preview button without JS)."""
    draft = Compose.of(await console_form(request))
    shown = await build_preview(request, session, draft)
    if request.headers.get("hx-request") == "true":
        return render(
            request,
            "console/messages/_preview.html",
            preview=shown,
            type_label=type_label,
            category_labels=CATEGORY_LABELS,
        )
    return _compose_page(request, draft, preview=shown)


@router.post("")
async def send(request: Request, admin: Admin, session: DbSession) -> Response:
    draft = Compose.of(await console_form(request))
    body, errors = await draft.message(session)
    if body is not None:
        try:
            created = await service.admin_create(session, admin.user_id, body)
        except PortalError as exc:
            await session.rollback()
            errors = service_errors(exc, draft.fields())
        else:
            audience = "every player" if body.recipient_user_id is None else "the player"
            when = (
                f"for {local_value(body.scheduled_at).replace('T', ' ')} UTC"
                if body.scheduled_at is not None
                else "to go now"
            )
            return see_other(
                request,
                f"/console/messages/{created.id}",
                flash_message=f"{type_label(created.type)} message to {audience} queued {when}.",
            )
    shown = await build_preview(request, session, draft)
    return _compose_page(request, draft, errors=errors, preview=shown, status_code=422)


@router.get("/stats")
async def stats(request: Request, admin: Admin, db: DbPool) -> Response:
    figures = await service.stats(db.pool)
    minutes = await service.settled_per_minute(db.pool, CHART_MINUTES)
    table: dict[str, dict[str, int]] = {t: {} for t in MESSAGE_TYPES}
    for count in figures.counts:
        table[count.type][count.status] = count.count
    totals = {s: sum(table[t].get(s, 0) for t in MESSAGE_TYPES) for s in MESSAGE_STATUSES}
    return render(
        request,
        "console/messages/stats.html",
        figures=figures,
        table=table,
        totals=totals,
        minutes=minutes,
        chart=data_json(_chart(minutes)),
        chart_minutes=CHART_MINUTES,
        statuses=MESSAGE_STATUSES,
        status_labels=STATUS_LABELS,
        types=MESSAGE_TYPES,
        type_label=type_label,
    )


def _chart(minutes: list[service.MinuteCount]) -> dict[str, Any]:
    return {
        "x": [int(m.minute.timestamp()) for m in minutes],
        "series": [
            {"label": "Processed", "values": [m.processed for m in minutes], "tone": "ok"},
            {"label": "Failed", "values": [m.failed for m in minutes], "tone": "danger"},
        ],
    }


@router.get("/stats/per-minute")
async def stats_per_minute(request: Request, admin: Admin, db: DbPool) -> Response:
    """The chart's data, for its refresh every half minute (console/ops.js)."""
    minutes = await service.settled_per_minute(db.pool, CHART_MINUTES)
    return JSONResponse(_chart(minutes), headers={**CONSOLE_HEADERS, "cache-control": "no-store"})


async def _found(session: AsyncSession, message_id: uuid.UUID) -> Message:
    try:
        return await service.admin_get(session, message_id)
    except service.MessageNotFound:
        raise not_found("message") from None


@router.get("/{message_id:uuid}")
async def message(
    message_id: uuid.UUID, request: Request, admin: Admin, session: DbReadSession
) -> Response:
    row = await _found(session, message_id)
    emails = await _emails(session, {row.recipient_user_id} if row.recipient_user_id else set())
    shown = MessageRead.model_validate(row)
    return render(
        request,
        "console/messages/detail.html",
        message=shown,
        payload_json=orjson.dumps(shown.payload, option=orjson.OPT_INDENT_2).decode(),
        recipient_email=emails.get(row.recipient_user_id) if row.recipient_user_id else None,
        status_labels=STATUS_LABELS,
        type_label=type_label,
        category_labels=CATEGORY_LABELS,
        summary=summary,
        back=request.url.path,
    )


def _back(form: FormData, message_id: uuid.UUID) -> str:
    wanted = form_text(form, "next")
    return safe_next(wanted) if wanted else f"/console/messages/{message_id}"


@router.post("/{message_id:uuid}/retry")
async def retry(
    message_id: uuid.UUID, request: Request, admin: Admin, session: DbSession
) -> Response:
    back = _back(await console_form(request), message_id)
    await _found(session, message_id)
    try:
        await service.admin_retry(session, message_id)
    except service.MessageStateConflict:
        await session.rollback()
        return see_other(
            request,
            back,
            flash_message="Only a failed message can be retried, and this one has not failed "
            "(another admin may have retried it already).",
            flash_kind="error",
        )
    return see_other(
        request, back, flash_message="Retrying: the message is waiting for a worker again."
    )


@router.post("/{message_id:uuid}/cancel")
async def cancel(
    message_id: uuid.UUID, request: Request, admin: Admin, session: DbSession
) -> Response:
    back = _back(await console_form(request), message_id)
    await _found(session, message_id)
    try:
        await service.admin_cancel(session, admin.user_id, message_id)
    except service.MessageStateConflict:
        await session.rollback()
        return see_other(
            request,
            back,
            flash_message="Only a waiting message can be cancelled: a worker has taken this "
            "one already, or it has ended.",
            flash_kind="error",
        )
    return see_other(
        request,
        back,
        flash_message="Cancelled: the message will not be sent (it stays in the list as failed).",
    )
