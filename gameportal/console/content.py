"""Content: every item in every status, a Markdown editor with the live preview of what
players will get, publishing, conflicts between editors, revisions.

Writes go through gameportal.content.service, as the API's routes do: the same If-Match
check (the page's version), the same sanitising (the preview calls the very function a
save renders with), the same revisions and cache notices."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Query, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from gameportal.console import _editorial as ed
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
from gameportal.content import repository as content_repo
from gameportal.content import service
from gameportal.content.rendering import InvalidJson
from gameportal.content.rendering import render as render_html
from gameportal.content.schemas import (
    MAX_BODY,
    ContentCreate,
    ContentUpdate,
    normalize_locale,
    normalize_tag,
)
from gameportal.db import DbReadSession, DbSession
from gameportal.errors import PortalError
from gameportal.identity.service import Principal
from gameportal.kit.time import utcnow
from gameportal.models import Content, MediaAsset
from gameportal.models.content import CONTENT_FORMATS, CONTENT_STATUSES, CONTENT_TYPES

router = console_router(
    "/content", nav=NavEntry("Content", "/console/content", roles=("editor",), order=20)
)
Editor = Annotated[Principal, Depends(require_console_role("editor"))]

TYPE_LABELS = {"GAME": "Game", "NEWS": "News", "ANNOUNCEMENT": "Announcement", "FAQ": "FAQ"}
FORMAT_LABELS = {"MARKDOWN": "Markdown", "HTML": "HTML", "JSON": "JSON"}
STATUS_LABELS = {
    "DRAFT": "Draft",
    "SCHEDULED": "Scheduled",
    "PUBLISHED": "Published",
    "ARCHIVED": "Archived",
}
PICKER_SIZE = 24
REVISIONS_PAGE = 30

# The form's field for each name a validation error may carry.
_FIELD_OF = {"publishAt": "publish_at"}


# --- the editor's form -----------------------------------------------------------------------


@dataclass
class Draft:
    """What the editor's form holds, as typed (strings), so a refused save shows it again
    exactly as it was."""

    type: str = "NEWS"
    title: str = ""
    slug: str = ""
    locale: str = "en"
    format: str = "MARKDOWN"
    content: str = ""
    tags: str = ""
    media: list[str] = field(default_factory=list)
    attributes: str = "{}"

    @classmethod
    def of(cls, item: Content) -> Draft:
        return cls(
            type=item.type,
            title=item.title,
            slug=item.slug,
            locale=item.locale,
            format=item.format,
            content=item.content,
            tags=", ".join(item.tags),
            media=[str(m) for m in item.media],
            attributes=json.dumps(item.attributes, ensure_ascii=False, indent=2)
            if item.attributes
            else "{}",
        )

    @classmethod
    def from_form(cls, form: FormData, *, type: str | None = None) -> Draft:
        media = [m for m in form.getlist("media") if isinstance(m, str) and m]
        return cls(
            type=type or form_text(form, "type") or "NEWS",
            title=form_text(form, "title"),
            slug=form_text(form, "slug").strip(),
            locale=form_text(form, "locale").strip() or "en",
            format=form_text(form, "format") or "MARKDOWN",
            # Browsers send a textarea's line breaks as CRLF; the text is stored with LF.
            content=form_text(form, "content").replace("\r\n", "\n"),
            tags=form_text(form, "tags"),
            media=list(dict.fromkeys(media)),
            attributes=form_text(form, "attributes").strip() or "{}",
        )

    def values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The fields for the content schemas, and the errors of those the form itself
        cannot turn into values (the schemas and the service judge the rest)."""
        errors: dict[str, str] = {}
        values: dict[str, Any] = {
            "title": self.title,
            "locale": self.locale,
            "format": self.format,
            "content": self.content,
            "tags": [t for t in (p.strip() for p in self.tags.split(",")) if t],
        }
        if self.slug:
            values["slug"] = self.slug
        media = []
        for value in self.media:
            try:
                media.append(uuid.UUID(value))
            except ValueError:
                errors["media"] = "An attached media id is not valid; reload the page."
        values["media"] = media
        try:
            attributes = json.loads(self.attributes)
        except ValueError as exc:
            errors["attributes"] = f"Must be JSON: {exc}."
        else:
            if isinstance(attributes, dict):
                values["attributes"] = attributes
            else:
                errors["attributes"] = 'Must be a JSON object, e.g. {"genre": "racing"}.'
        return values, errors

    def snapshot(self) -> dict[str, Any]:
        """The form's fields in a revision's shape, as near as they can be read."""
        tags = []
        for tag in self.tags.split(","):
            try:
                tags.append(normalize_tag(tag))
            except ValueError:
                continue
        try:
            attributes: Any = json.loads(self.attributes)
        except ValueError:
            attributes = self.attributes
        return {
            "title": self.title,
            "slug": self.slug,
            "locale": self.locale,
            "format": self.format,
            "content": self.content,
            "tags": tags,
            "media": self.media,
            "attributes": attributes,
        }


def _validation_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for problem in exc.errors():
        loc = problem.get("loc") or ("form",)
        name = _FIELD_OF.get(str(loc[0]), str(loc[0]))
        message = str(problem.get("msg", "is not valid")).removeprefix("Value error, ")
        errors.setdefault(name, message[:1].upper() + message[1:])
    return errors


def _service_errors(exc: PortalError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for problem in exc.errors or []:
        name = _FIELD_OF.get(problem.field, problem.field.split("[", 1)[0].split(".", 1)[0])
        message = problem.message
        errors.setdefault(name, message[:1].upper() + message[1:] + ".")
    if not errors:
        errors["form"] = exc.detail or exc.title
    return errors


# --- what the pages show ---------------------------------------------------------------------


async def preview_html(fmt: str, source: str, media_base: str) -> tuple[str | None, str | None]:
    """(the sanitised HTML, or a problem): rendering.render, the function every save
    stores `html` with, with the media base the API's routes give it."""
    if fmt not in CONTENT_FORMATS:
        return None, "Choose a format."
    if len(source) > MAX_BODY:
        return None, f"The text is longer than {MAX_BODY:,} characters."
    try:
        html = await asyncio.to_thread(render_html, fmt, source, media_base)
    except InvalidJson as exc:
        return None, f"Not valid JSON: {exc}"
    return html, None


@dataclass
class Conflict:
    """Someone saved the item after this editor opened it."""

    mine_from: int | None  # the version the editor started from
    current: Content
    saved_by: ed.Person | None
    saved_at: datetime | None
    diff: ed.TextDiff
    fields: list[ed.FieldChange]


async def _conflict(
    session: AsyncSession, item: Content, draft: Draft, mine_from: int | None
) -> Conflict:
    latest = await content_repo.revisions(session, item.id, before=None, limit=1)
    people = await ed.people(session, [latest[0].editor_id] if latest else [])
    saved_by = people.get(latest[0].editor_id) if latest and latest[0].editor_id else None
    theirs = ed.snapshot_of(item)
    return Conflict(
        mine_from=mine_from,
        current=item,
        saved_by=saved_by,
        saved_at=latest[0].created_at if latest else None,
        diff=ed.text_diff(item.content, draft.content),
        fields=[f for f in ed.field_changes(theirs, draft.snapshot()) if f.name != "publish_at"],
    )


def picker_more_url(after: uuid.UUID | None, skip: list[str]) -> str | None:
    if after is None:
        return None
    query = urlencode([("after", str(after)), *(("skip", s) for s in skip)])
    return f"/console/content/media-picker?{query}"


async def _picker(
    session: AsyncSession, attached: list[str]
) -> tuple[list[MediaAsset], list[MediaAsset], str | None]:
    """The picker's first tiles: the attached media, then the library's newest."""
    ids = []
    for value in attached:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    chosen = await ed.media_by_ids(session, ids)
    skip = [m.id for m in chosen]
    others, more = await ed.media_page(
        session, ed.MediaFilter(), after=None, skip=skip, limit=PICKER_SIZE
    )
    return chosen, others, picker_more_url(more, [str(m) for m in skip])


async def _editor_page(
    request: Request,
    session: AsyncSession,
    *,
    item: Content | None,
    draft: Draft,
    version: int | None,
    errors: dict[str, str] | None = None,
    conflict: Conflict | None = None,
    preview: tuple[str | None, str | None] | None = None,
    status_code: int = 200,
) -> Response:
    if preview is None:
        preview = await preview_html(draft.format, draft.content, ed.media_base(request))
    chosen, others, more_url = await _picker(session, draft.media)
    authors = await ed.people(session, [item.author_id] if item is not None else [])
    return render(
        request,
        "console/content/edit.html",
        status_code=status_code,
        headers=ed.image_csp(request),
        item=item,
        author=authors.get(item.author_id) if item is not None and item.author_id else None,
        draft=draft,
        version=version,
        errors=errors or {},
        conflict=conflict,
        preview_html=preview[0],
        preview_problem=preview[1],
        picker_chosen=chosen,
        picker_others=others,
        picker_more_url=more_url,
        types=CONTENT_TYPES,
        formats=CONTENT_FORMATS,
        type_labels=TYPE_LABELS,
        format_labels=FORMAT_LABELS,
        now=utcnow(),
        **ed.media_helpers(request),
        status_labels=STATUS_LABELS,
    )


def _item_path(content_id: uuid.UUID, tail: str = "") -> str:
    return f"/console/content/{content_id}{tail}"


def _if_match(content_id: uuid.UUID, version: str) -> str | None:
    """The If-Match the API's clients send, from the version the page was made with."""
    return f'"{content_id}.{int(version)}"' if version.isdigit() else None


# --- the list --------------------------------------------------------------------------------


@router.get("")
async def content_list(
    request: Request,
    editor: Editor,
    session: DbReadSession,
    type: Annotated[str, Query(max_length=16)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    locale: Annotated[str, Query(max_length=35)] = "",
    tag: Annotated[str, Query(max_length=50)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    type = type.upper() if type.upper() in CONTENT_TYPES else ""
    status = status.upper() if status.upper() in CONTENT_STATUSES else ""
    problems: dict[str, str] = {}
    wanted_locale = wanted_tag = None
    if locale.strip():
        try:
            wanted_locale = normalize_locale(locale.strip())
        except ValueError as exc:
            problems["locale"] = str(exc).capitalize() + "."
    if tag.strip():
        try:
            wanted_tag = normalize_tag(tag)
        except ValueError as exc:
            problems["tag"] = str(exc).capitalize() + "."
    search = " ".join(q.split()) or None
    rows, next_cursor = await ed.content_page(
        session,
        ed.ContentFilter(
            type=type or None,
            status=status or None,
            locale=wanted_locale,
            tag=wanted_tag,
            q=search,
        ),
        cursor=cursor or None,
    )
    filters = {"type": type, "status": status, "locale": locale, "tag": tag, "q": q}
    query = urlencode({k: v for k, v in filters.items() if v})
    return render(
        request,
        "console/content/list.html",
        rows=rows,
        filters=filters,
        filter_errors=problems,
        filtered=bool(query),
        query=query,
        next_cursor=next_cursor,
        paged=bool(cursor),
        locales=await ed.content_locales(session),
        types=CONTENT_TYPES,
        statuses=CONTENT_STATUSES,
        type_labels=TYPE_LABELS,
        status_labels=STATUS_LABELS,
    )


# --- create ----------------------------------------------------------------------------------


@router.get("/new")
async def new_content(
    request: Request,
    editor: Editor,
    session: DbReadSession,
    type: Annotated[str, Query(max_length=16)] = "NEWS",
) -> Response:
    draft = Draft(type=type.upper() if type.upper() in CONTENT_TYPES else "NEWS")
    return await _editor_page(request, session, item=None, draft=draft, version=None)


@router.post("/new")
async def create_content(request: Request, editor: Editor, session: DbSession) -> Response:
    form = await console_form(request)
    draft = Draft.from_form(form)
    values, errors = draft.values()
    body: ContentCreate | None = None
    try:
        body = ContentCreate.model_validate({**values, "type": draft.type})
    except ValidationError as exc:
        errors = {**_validation_errors(exc), **errors}
    if body is not None and not errors:
        try:
            item = await service.create(
                session, editor.user_id, body, media_base=ed.media_base(request)
            )
        except PortalError as exc:
            if exc.status not in (409, 422):
                raise
            await session.rollback()
            errors = _service_errors(exc)
        else:
            return see_other(
                request, _item_path(item.id), flash_message=f"Draft “{item.title}” created."
            )
    return await _editor_page(
        request, session, item=None, draft=draft, version=None, errors=errors, status_code=422
    )


# --- preview ---------------------------------------------------------------------------------


@router.post("/preview")
async def preview(request: Request, editor: Editor, session: DbReadSession) -> Response:
    """The HTML a save would store for the text: a fragment for htmx, or (the editor's
    Preview button without JavaScript) the editor again, its fields as they were."""
    form = await console_form(request)
    fmt, source = form_text(form, "format"), form_text(form, "content").replace("\r\n", "\n")
    html, problem = await preview_html(fmt, source, ed.media_base(request))
    if ed.is_htmx(request):
        return render(
            request,
            "console/content/_preview.html",
            headers=ed.image_csp(request),
            preview_html=html,
            preview_problem=problem,
        )
    item = None
    content_id = form_text(form, "content_id")
    if content_id:
        try:
            item = await service.get(session, uuid.UUID(content_id))
        except ValueError:
            raise not_found("content") from None
    draft = Draft.from_form(form, type=item.type if item is not None else None)
    version = form_text(form, "version")
    return await _editor_page(
        request,
        session,
        item=item,
        draft=draft,
        version=int(version) if version.isdigit() else None,
        preview=(html, problem),
    )


@router.get("/media-picker")
async def media_picker(
    request: Request,
    editor: Editor,
    session: DbReadSession,
    after: uuid.UUID | None = None,
    skip: Annotated[list[uuid.UUID] | None, Query(max_length=60)] = None,
) -> Response:
    """More of the library for the editor's media picker (htmx, "Show more")."""
    items, more = await ed.media_page(
        session, ed.MediaFilter(), after=after, skip=skip or [], limit=PICKER_SIZE
    )
    return render(
        request,
        "console/content/_picker_items.html",
        headers=ed.image_csp(request),
        items=items,
        more_url=picker_more_url(more, [str(s) for s in skip or []]),
        **ed.media_helpers(request),
    )


# --- edit ------------------------------------------------------------------------------------


@router.get("/{content_id:uuid}")
async def edit_content(
    content_id: uuid.UUID, request: Request, editor: Editor, session: DbReadSession
) -> Response:
    item = await service.get(session, content_id)
    return await _editor_page(
        request, session, item=item, draft=Draft.of(item), version=item.version
    )


def _changed(item: Content, body: ContentUpdate) -> dict[str, Any]:
    """The fields of `body` that differ from the item's: a save of an unchanged form makes
    no new version and no revision, as a PATCH of nothing does."""
    changes = {}
    for name in body.model_fields_set:
        if getattr(body, name) != getattr(item, name):
            changes[name] = getattr(body, name)
    return changes


@router.post("/{content_id:uuid}")
async def save_content(
    content_id: uuid.UUID, request: Request, editor: Editor, session: DbSession
) -> Response:
    form = await console_form(request)
    item = await service.get(session, content_id)
    draft = Draft.from_form(form, type=item.type)
    sent_version = form_text(form, "version")
    values, errors = draft.values()
    body: ContentUpdate | None = None
    try:
        body = ContentUpdate.model_validate(values)
    except ValidationError as exc:
        errors = {**_validation_errors(exc), **errors}
    version = int(sent_version) if sent_version.isdigit() else None
    if body is None or errors:
        return await _editor_page(
            request, session, item=item, draft=draft, version=version, errors=errors,
            status_code=422,
        )  # fmt: skip
    changes = ContentUpdate.model_validate(_changed(item, body))
    before = item.version
    session.expire(item)  # the service reads it again, locked
    try:
        saved = await service.update(
            session,
            editor.user_id,
            content_id,
            changes,
            _if_match(content_id, sent_version),
            media_base=ed.media_base(request),
        )
    except (service.VersionMismatch, service.VersionRequired):
        await session.rollback()
        current = await service.get(session, content_id)
        return await _editor_page(
            request,
            session,
            item=current,
            draft=draft,
            # Saving again now overwrites theirs: the editor has seen it, beside their own.
            version=current.version,
            conflict=await _conflict(session, current, draft, version),
            status_code=409,
        )
    except PortalError as exc:
        if exc.status not in (409, 422):
            raise
        await session.rollback()
        current = await service.get(session, content_id)
        return await _editor_page(
            request, session, item=current, draft=draft, version=version,
            errors=_service_errors(exc), status_code=422,
        )  # fmt: skip
    if saved.version == before:
        return see_other(
            request, _item_path(content_id), flash_message="Nothing changed.", flash_kind="info"
        )
    return see_other(
        request, _item_path(content_id), flash_message=f"Saved as version {saved.version}."
    )


# --- publishing ------------------------------------------------------------------------------


def _parse_when(value: str) -> datetime | None:
    """A datetime-local field's value, in UTC (the form says so)."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


async def _status_change(
    request: Request,
    session: AsyncSession,
    content_id: uuid.UUID,
    action: Callable[[], Awaitable[object]],
    done: str,
) -> Response:
    try:
        await action()
    except service.VersionMismatch:
        await session.rollback()
        return see_other(
            request,
            _item_path(content_id),
            flash_message="Someone changed this item after you opened it. Here is its "
            "current version: check it, then try again.",
            flash_kind="error",
        )
    except service.InvalidTransition as exc:
        await session.rollback()
        return see_other(
            request,
            _item_path(content_id),
            flash_message=f"Not possible: {exc.detail}.",
            flash_kind="error",
        )
    return see_other(request, _item_path(content_id), flash_message=done)


@router.post("/{content_id:uuid}/publish")
async def publish_content(
    content_id: uuid.UUID, request: Request, editor: Editor, session: DbSession
) -> Response:
    """Publish now, or (with `publish_at`) schedule."""
    form = await console_form(request)
    if_match = _if_match(content_id, form_text(form, "version"))
    schedule = "publish_at" in form
    when = _parse_when(form_text(form, "publish_at")) if schedule else utcnow()
    if when is None or (schedule and when <= utcnow()):
        return see_other(
            request,
            _item_path(content_id),
            flash_message="To schedule, choose a date and time in the future (UTC).",
            flash_kind="error",
        )

    async def act() -> None:
        await service.publish(session, editor.user_id, content_id, when, if_match)

    done = f"Scheduled for {when:%Y-%m-%d %H:%M} UTC." if schedule else "Published."
    return await _status_change(request, session, content_id, act, done)


@router.post("/{content_id:uuid}/unpublish")
async def unpublish_content(
    content_id: uuid.UUID, request: Request, editor: Editor, session: DbSession
) -> Response:
    form = await console_form(request)
    if_match = _if_match(content_id, form_text(form, "version"))

    async def act() -> None:
        await service.unpublish(session, editor.user_id, content_id, if_match)

    return await _status_change(
        request, session, content_id, act, "Unpublished: it is a draft again, no longer public."
    )


@router.post("/{content_id:uuid}/archive")
async def archive_content(
    content_id: uuid.UUID, request: Request, editor: Editor, session: DbSession
) -> Response:
    form = await console_form(request)
    if_match = _if_match(content_id, form_text(form, "version"))

    async def act() -> None:
        await service.archive(session, editor.user_id, content_id, if_match)

    return await _status_change(
        request, session, content_id, act, "Archived: no longer public; kept with its revisions."
    )


# --- revisions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevisionLine:
    number: int
    created_at: datetime
    editor: ed.Person | None
    fields: list[str]
    added: int
    removed: int


@router.get("/{content_id:uuid}/revisions")
async def revisions(
    content_id: uuid.UUID,
    request: Request,
    editor: Editor,
    session: DbReadSession,
    before: Annotated[int | None, Query(ge=1, le=1_000_000_000)] = None,
) -> Response:
    item = await service.get(session, content_id)
    # One more than shown, and the one before the last, to say what each changed.
    rows = await service.revisions(session, content_id, before=before, limit=REVISIONS_PAGE + 2)
    shown = rows[:REVISIONS_PAGE]
    people = await ed.people(session, [r.editor_id for r in shown])
    lines = []
    for index, revision in enumerate(shown):
        older = rows[index + 1].snapshot if index + 1 < len(rows) else {}
        diff = ed.text_diff(
            str(older.get("content", "")), str(revision.snapshot.get("content", ""))
        )
        lines.append(
            RevisionLine(
                number=revision.number,
                created_at=revision.created_at,
                editor=people.get(revision.editor_id) if revision.editor_id else None,
                fields=[f.label for f in ed.field_changes(older, revision.snapshot)],
                added=diff.added,
                removed=diff.removed,
            )
        )
    more = len(rows) > REVISIONS_PAGE
    return render(
        request,
        "console/content/revisions.html",
        item=item,
        lines=lines,
        next_before=shown[-1].number if more and shown else None,
        paged=before is not None,
        status_labels=STATUS_LABELS,
        type_labels=TYPE_LABELS,
    )


@router.get("/{content_id:uuid}/revisions/{number}")
async def revision(
    content_id: uuid.UUID,
    number: int,
    request: Request,
    editor: Editor,
    session: DbReadSession,
    against: Annotated[str, Query(max_length=10)] = "previous",
) -> Response:
    item = await service.get(session, content_id)
    saved = await content_repo.revision(session, content_id, number) if number > 0 else None
    if saved is None:
        raise not_found("revision")
    against = "current" if against == "current" else "previous"
    if against == "current":
        # What restoring it would change: from the item as it is now to this revision.
        old, new = ed.snapshot_of(item), saved.snapshot
        old_label, new_label = f"Current (version {item.version})", f"Revision {number}"
    else:
        previous = await content_repo.revision(session, content_id, number - 1)
        old = previous.snapshot if previous is not None else {}
        new = saved.snapshot
        old_label = f"Revision {number - 1}" if previous is not None else "Nothing (created)"
        new_label = f"Revision {number}"
    people = await ed.people(session, [saved.editor_id])
    return render(
        request,
        "console/content/revision.html",
        item=item,
        saved=saved,
        editor_person=people.get(saved.editor_id) if saved.editor_id else None,
        against=against,
        old_label=old_label,
        new_label=new_label,
        fields=ed.field_changes(old, new),
        diff=ed.text_diff(str(old.get("content", "")), str(new.get("content", ""))),
        status_labels=STATUS_LABELS,
        type_labels=TYPE_LABELS,
    )


@router.post("/{content_id:uuid}/revisions/{number}/restore")
async def restore_revision(
    content_id: uuid.UUID, number: int, request: Request, editor: Editor, session: DbSession
) -> Response:
    form = await console_form(request)
    if_match = _if_match(content_id, form_text(form, "version"))
    try:
        item = await service.restore(
            session, editor.user_id, content_id, number, if_match, media_base=ed.media_base(request)
        )
    except service.VersionMismatch:
        await session.rollback()
        return see_other(
            request,
            _item_path(content_id, f"/revisions/{number}?against=current"),
            flash_message="Someone changed this item after you opened this page. Compare "
            "again with its current version, then restore.",
            flash_kind="error",
        )
    except PortalError as exc:
        if exc.status not in (409, 422):
            raise
        await session.rollback()
        return see_other(
            request,
            _item_path(content_id, f"/revisions/{number}"),
            flash_message=f"Could not restore: {exc.detail or exc.title}.",
            flash_kind="error",
        )
    return see_other(
        request,
        _item_path(content_id),
        flash_message=f"Restored revision {number}: saved as version {item.version}.",
    )
