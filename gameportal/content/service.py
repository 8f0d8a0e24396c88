"""The rules of editing content: slugs, safe HTML, optimistic concurrency, publishing,
revisions. Every save keeps a revision; every change tells the public caches."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.content import repository as repo
from gameportal.content.media.service import unknown_media
from gameportal.content.rendering import InvalidJson, render, search_config, slug_from
from gameportal.content.schemas import ContentCreate, ContentUpdate
from gameportal.errors import Conflict, FieldProblem, InvalidField, NotFound, PortalError
from gameportal.kit.ids import new_id
from gameportal.kit.time import utcnow
from gameportal.models import Content, ContentRevision

# The fields a revision keeps, and a restore brings back.
SNAPSHOT_FIELDS = (
    "title", "slug", "locale", "format", "content", "tags", "media", "attributes", "publish_at",
)  # fmt: skip


class SlugTaken(Conflict):
    slug = "slug-taken"
    title = "Slug already in use"


class VersionMismatch(PortalError):
    status = 412
    slug = "precondition-failed"
    title = "Someone else changed this first"


class VersionRequired(PortalError):
    status = 428
    slug = "precondition-required"
    title = "Send If-Match with the ETag you last read"


class InvalidTransition(Conflict):
    slug = "invalid-status"
    title = "Not possible in this status"


def etag(item: Content) -> str:
    return f'"{item.id}.{item.version}"'


def _check_if_match(item: Content, if_match: str | None, *, required: bool) -> None:
    if if_match is None:
        if required:
            raise VersionRequired("read the item, then send its ETag as If-Match")
        return
    wanted = {tag.strip() for tag in if_match.split(",")}
    if "*" not in wanted and etag(item) not in wanted and etag(item).strip('"') not in wanted:
        raise VersionMismatch(
            f"the item is at version {item.version}; read it again and reapply your change"
        )


def _snapshot(item: Content) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(item, name) for name in SNAPSHOT_FIELDS}
    values["media"] = [str(m) for m in item.media]
    values["publish_at"] = item.publish_at.isoformat() if item.publish_at else None
    return values


async def _render(fmt: str, source: str, media_base: str) -> str | None:
    try:
        # In a thread: 200,000 characters of pathological markup take seconds, and the
        # event loop must keep serving everyone else meanwhile.
        return await asyncio.to_thread(render, fmt, source, media_base)
    except InvalidJson as exc:
        raise InvalidField("content", f"must be valid JSON for format JSON: {exc}") from None


async def _check_media(session: AsyncSession, media: list[uuid.UUID]) -> None:
    missing = await repo.missing_media(session, media)
    if missing:
        raise unknown_media(media, missing)


def _slug_taken(type: str, locale: str, slug: str) -> SlugTaken:
    message = f"{type} in {locale!r} already has the slug {slug!r}"
    return SlugTaken(
        f"{message}; choose another",
        errors=[FieldProblem(field="slug", location="body", message=message, code="taken")],
    )


async def _check_slug(session: AsyncSession, item: Content) -> None:
    if await repo.slug_taken(
        session, type=item.type, locale=item.locale, slug=item.slug, other_than=item.id
    ):
        raise _slug_taken(item.type, item.locale, item.slug)


async def _flush(session: AsyncSession, item: Content) -> None:
    # Read now: a failed flush expires the object, and reading it then fails too.
    ident = (item.type, item.locale, item.slug)
    try:
        await session.flush()
    except IntegrityError as exc:  # two editors took the same slug at the same moment
        if "uq_content_type_locale_slug" in str(exc.orig):
            raise _slug_taken(*ident) from None
        raise


async def create(
    session: AsyncSession, author: uuid.UUID, body: ContentCreate, *, media_base: str
) -> Content:
    """`media_base`: where media links in the HTML point (rendering.sanitize)."""
    item = Content(
        id=new_id(),
        type=body.type,
        title=body.title,
        slug=body.slug or slug_from(body.title),
        locale=body.locale,
        format=body.format,
        content=body.content,
        html=await _render(body.format, body.content, media_base),
        tags=body.tags,
        media=body.media,
        attributes=body.attributes,
        status="DRAFT",
        publish_at=body.publish_at,
        author_id=author,
        version=1,
        search_config=search_config(body.locale),
    )
    await _check_media(session, body.media)
    await _check_slug(session, item)
    session.add(item)
    await _flush(session, item)
    await repo.add_revision(session, item.id, _snapshot(item), author)
    await session.refresh(item)
    return item


async def get(session: AsyncSession, content_id: uuid.UUID) -> Content:
    item = await session.get(Content, content_id)
    if item is None:
        raise NotFound("no such content")
    return item


async def _locked(session: AsyncSession, content_id: uuid.UUID) -> Content:
    item = await repo.get_for_update(session, content_id)
    if item is None:
        raise NotFound("no such content")
    return item


async def _save(
    session: AsyncSession, item: Content, editor: uuid.UUID, *, revision: bool
) -> Content:
    if item.status == "SCHEDULED" and item.publish_at is None:
        # Its date was removed (by a PATCH or a restore): nothing would ever publish it.
        item.status = "DRAFT"
    item.version += 1
    item.updated_at = utcnow()
    await _flush(session, item)
    if revision:
        await repo.add_revision(session, item.id, _snapshot(item), editor)
    await repo.notify_changed(session, item.id)
    await session.refresh(item)
    return item


async def _apply(
    session: AsyncSession, item: Content, changes: dict[str, Any], media_base: str
) -> None:
    for name, value in changes.items():
        setattr(item, name, value)
    if "content" in changes or "format" in changes:
        item.html = await _render(item.format, item.content, media_base)
    if "locale" in changes:
        item.search_config = search_config(item.locale)
    if "media" in changes:
        await _check_media(session, item.media)
    if {"slug", "locale"} & changes.keys():
        await _check_slug(session, item)


async def update(
    session: AsyncSession,
    editor: uuid.UUID,
    content_id: uuid.UUID,
    body: ContentUpdate,
    if_match: str | None,
    *,
    media_base: str,
) -> Content:
    item = await _locked(session, content_id)
    _check_if_match(item, if_match, required=True)
    changes = body.model_dump(exclude_unset=True)
    for required in (
        "title", "slug", "content", "format", "locale", "tags", "media", "attributes",
    ):  # fmt: skip
        if required in changes and changes[required] is None:
            raise InvalidField(required, "cannot be null", "null")
    if not changes:
        return item  # nothing to save: no new version, no revision
    await _apply(session, item, changes, media_base)
    return await _save(session, item, editor, revision=True)


async def publish(
    session: AsyncSession,
    editor: uuid.UUID,
    content_id: uuid.UUID,
    publish_at: datetime | None,
    if_match: str | None,
) -> Content:
    item = await _locked(session, content_id)
    _check_if_match(item, if_match, required=False)
    when = publish_at or item.publish_at
    if when is not None and when > utcnow():
        if item.status == "PUBLISHED":
            # Scheduling it would take it offline until then; say so instead.
            raise InvalidTransition("it is already published; unpublish it first to schedule")
        item.status, item.publish_at = "SCHEDULED", when
    else:
        item.status = "PUBLISHED"
        item.published_at = item.published_at or utcnow()
        item.publish_at = None
    return await _save(session, item, editor, revision=False)


async def unpublish(
    session: AsyncSession, editor: uuid.UUID, content_id: uuid.UUID, if_match: str | None
) -> Content:
    item = await _locked(session, content_id)
    _check_if_match(item, if_match, required=False)
    if item.status not in ("PUBLISHED", "SCHEDULED"):
        raise InvalidTransition(f"it is {item.status}, not published or scheduled")
    item.status = "DRAFT"
    return await _save(session, item, editor, revision=False)


async def archive(
    session: AsyncSession, editor: uuid.UUID, content_id: uuid.UUID, if_match: str | None
) -> Content:
    item = await _locked(session, content_id)
    _check_if_match(item, if_match, required=False)
    if item.status != "ARCHIVED":
        item.status = "ARCHIVED"
        await _save(session, item, editor, revision=False)
    return item


async def revisions(
    session: AsyncSession, content_id: uuid.UUID, *, before: int | None, limit: int
) -> list[ContentRevision]:
    await get(session, content_id)
    return await repo.revisions(session, content_id, before=before, limit=limit)


async def restore(
    session: AsyncSession,
    editor: uuid.UUID,
    content_id: uuid.UUID,
    number: int,
    if_match: str | None,
    *,
    media_base: str,
) -> Content:
    item = await _locked(session, content_id)
    _check_if_match(item, if_match, required=False)
    saved = await repo.revision(session, content_id, number)
    if saved is None:
        raise NotFound(f"this content has no revision {number}")
    changes = dict(saved.snapshot)
    media = [uuid.UUID(m) for m in changes.get("media", [])]
    # Media deleted since are left out: content never lists media that do not exist.
    gone = set(await repo.missing_media(session, media))
    changes["media"] = [m for m in media if m not in gone]
    publish_at = changes.get("publish_at")
    changes["publish_at"] = datetime.fromisoformat(publish_at) if publish_at else None
    await _apply(
        session, item, {k: v for k, v in changes.items() if k in SNAPSHOT_FIELDS}, media_base
    )
    return await _save(session, item, editor, revision=True)
