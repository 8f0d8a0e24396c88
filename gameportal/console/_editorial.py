"""What the content and media pages share: their reads (every status, for editors),
the images they may show (CSP), names of who did what, and text diffs.

Reads only: every write goes through gameportal.content's services, as the API's do."""

from __future__ import annotations

import base64
import binascii
import difflib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from sqlalchemy import Select, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.config import Settings
from gameportal.console.frame import CONSOLE_CSP
from gameportal.content.media.images import IMAGE_FORMATS
from gameportal.content.media.service import allowed_types
from gameportal.content.media.storage import Storage, media_key, media_route_base
from gameportal.models import Content, MediaAsset, User

PAGE_SIZE = 50

# --- images the pages show -------------------------------------------------------------------


def media_base(request: Request) -> str:
    """Where media links in rendered HTML point: as the API renders them (settings only)."""
    settings: Settings = request.app.state.settings
    return media_route_base(settings)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def image_csp(request: Request) -> dict[str, str]:
    """The console's CSP with images also from where media are served (the public base
    URL, a CDN, S3): a preview shows the HTML exactly as published, absolute media links
    included, and the library shows thumbnails."""
    storage: Storage = request.app.state.storage
    origins = {
        o
        for o in (_origin(media_base(request)), _origin(storage.url(media_key(uuid.UUID(int=0)))))
        if o is not None
    }
    sources = " ".join(["'self'", *sorted(origins)])
    return {"content-security-policy": CONSOLE_CSP.replace("img-src 'self'", f"img-src {sources}")}


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


# --- cursors ---------------------------------------------------------------------------------


def encode_cursor(when: datetime, ident: uuid.UUID) -> str:
    raw = f"{when.isoformat()}|{ident}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """A cursor this page made, or None for anything else (the first page then)."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, ident = raw.split("|")
        found = datetime.fromisoformat(when)
        return (found, uuid.UUID(ident)) if found.tzinfo is not None else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


# --- content ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContentFilter:
    type: str | None = None
    status: str | None = None
    locale: str | None = None
    tag: str | None = None
    q: str | None = None


@dataclass(frozen=True)
class ContentRow:
    id: uuid.UUID
    type: str
    title: str
    slug: str
    locale: str
    status: str
    tags: list[str]
    publish_at: datetime | None
    published_at: datetime | None
    updated_at: datetime
    version: int
    author: str | None


def _content_query(f: ContentFilter) -> Select[Content, str]:
    query = select(Content, User.name).outerjoin(User, User.id == Content.author_id)
    if f.type:
        query = query.where(Content.type == f.type)
    if f.status:
        query = query.where(Content.status == f.status)
    if f.locale:
        query = query.where(Content.locale == f.locale)
    if f.tag:
        query = query.where(Content.tags.contains([f.tag]))
    if f.q:
        # A word anywhere in the title or slug, or the item's text search (stemmed in its
        # own language, as the public search is).
        query = query.where(
            or_(
                Content.title.icontains(f.q, autoescape=True),
                Content.slug.icontains(f.q, autoescape=True),
                text(
                    "content.search @@ websearch_to_tsquery(content.search_config, :q)"
                ).bindparams(q=f.q),
            )
        )
    return query


async def content_page(
    session: AsyncSession, f: ContentFilter, *, cursor: str | None, limit: int = PAGE_SIZE
) -> tuple[list[ContentRow], str | None]:
    """Every item, in any status, most recently changed first; keyset-paged."""
    query = _content_query(f)
    after = decode_cursor(cursor)
    if after is not None:
        when, ident = after
        query = query.where(
            or_(Content.updated_at < when, (Content.updated_at == when) & (Content.id < ident))
        )
    query = query.order_by(Content.updated_at.desc(), Content.id.desc()).limit(limit + 1)
    rows = [
        ContentRow(
            id=c.id,
            type=c.type,
            title=c.title,
            slug=c.slug,
            locale=c.locale,
            status=c.status,
            tags=list(c.tags),
            publish_at=c.publish_at,
            published_at=c.published_at,
            updated_at=c.updated_at,
            version=c.version,
            author=name,
        )
        for c, name in (await session.execute(query)).all()
    ]
    page = rows[:limit]
    more = len(rows) > limit and page
    return page, encode_cursor(page[-1].updated_at, page[-1].id) if more else None


async def content_locales(session: AsyncSession) -> list[str]:
    rows = await session.scalars(select(Content.locale).distinct().order_by(Content.locale))
    return list(rows.all())


@dataclass(frozen=True)
class Person:
    name: str
    email: str


async def people(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, Person]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(select(User.id, User.name, User.email).where(User.id.in_(wanted)))
    return {i: Person(name, email) for i, name, email in rows.all()}


# --- media -----------------------------------------------------------------------------------


MEDIA_KINDS = {"image": "Images", "other": "Other files"}
MEDIA_STATUSES = ("UPLOADING", "PROCESSING", "READY", "REJECTED", "FAILED")
MEDIA_STATUS_LABELS = {
    "UPLOADING": "Uploading",
    "PROCESSING": "Processing",
    "READY": "Ready",
    "REJECTED": "Rejected",
    "FAILED": "Failed",
}
SETTLED = ("READY", "REJECTED", "FAILED")  # processing is over: pieces stop polling


def media_helpers(request: Request) -> dict[str, Any]:
    """What the media macros (templates/en/console/media/_macros.html) use."""
    settings: Settings = request.app.state.settings
    return {
        "media_status_labels": MEDIA_STATUS_LABELS,
        "settled": SETTLED,
        "thumbnail_url": thumbnail_url,
        "markdown_image": markdown_image,
        "human_size": human_size,
        "max_bytes": settings.media_max_bytes,
        "accepted_types": sorted(allowed_types(settings)),
        "image_types": IMAGE_FORMATS,
    }


@dataclass(frozen=True)
class MediaFilter:
    kind: str | None = None  # "image" | "other"
    status: str | None = None
    q: str | None = None  # in the file name


async def media_page(
    session: AsyncSession,
    f: MediaFilter,
    *,
    after: uuid.UUID | None,
    skip: Iterable[uuid.UUID] = (),
    limit: int = PAGE_SIZE,
) -> tuple[list[MediaAsset], uuid.UUID | None]:
    """Media newest first (ids are time-ordered), keyset-paged by id."""
    query = select(MediaAsset)
    if f.kind == "image":
        query = query.where(MediaAsset.mime_type.startswith("image/"))
    elif f.kind == "other":
        query = query.where(~MediaAsset.mime_type.startswith("image/"))
    if f.status:
        query = query.where(MediaAsset.status == f.status)
    if f.q:
        query = query.where(MediaAsset.file_name.icontains(f.q, autoescape=True))
    skipped = list(skip)
    if skipped:
        query = query.where(MediaAsset.id.not_in(skipped))
    if after is not None:
        query = query.where(MediaAsset.id < after)
    rows = list(await session.scalars(query.order_by(MediaAsset.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    return page, page[-1].id if len(rows) > limit and page else None


async def media_by_ids(session: AsyncSession, ids: list[uuid.UUID]) -> list[MediaAsset]:
    if not ids:
        return []
    found = {
        m.id: m for m in await session.scalars(select(MediaAsset).where(MediaAsset.id.in_(ids)))
    }
    return [found[i] for i in ids if i in found]


@dataclass(frozen=True)
class Usage:
    id: uuid.UUID
    type: str
    title: str
    slug: str
    locale: str
    status: str
    listed: bool  # in the item's media
    in_text: bool  # linked from its text
    related: bool  # uploaded for it (relatedContentId)

    @property
    def blocks_delete(self) -> bool:
        """What the media service refuses a delete for: published content listing it."""
        return self.status == "PUBLISHED" and self.listed


async def media_usage(session: AsyncSession, media_id: uuid.UUID) -> list[Usage]:
    """Content that lists this media, links it from its text, or that it was uploaded for."""
    link = f"/api/v1/media/{media_id}/"
    rows = await session.execute(
        select(
            Content,
            Content.media.contains([media_id]).label("listed"),
            Content.content.contains(link, autoescape=True).label("in_text"),
        )
        .where(
            or_(
                Content.media.contains([media_id]),
                Content.content.contains(link, autoescape=True),
                Content.id
                == select(MediaAsset.related_content_id)
                .where(MediaAsset.id == media_id)
                .scalar_subquery(),
            )
        )
        .order_by(Content.updated_at.desc())
        .limit(100)
    )
    related = await session.scalar(
        select(MediaAsset.related_content_id).where(MediaAsset.id == media_id)
    )
    return [
        Usage(
            id=c.id,
            type=c.type,
            title=c.title,
            slug=c.slug,
            locale=c.locale,
            status=c.status,
            listed=bool(listed),
            in_text=bool(in_text),
            related=c.id == related,
        )
        for c, listed, in_text in rows.all()
    ]


def human_size(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


def thumbnail_url(item: MediaAsset) -> str | None:
    """The smallest image of READY media (a rendition, else the original image)."""
    if item.status != "READY" or not item.mime_type.startswith("image/"):
        return None
    renditions = sorted(item.renditions or [], key=lambda r: r.get("width", 0))
    if renditions:
        return str(renditions[0]["url"])
    return item.url


def markdown_image(item: MediaAsset) -> str:
    """How an editor links media in Markdown: this server's path, which rendering makes
    absolute (rendering.MEDIA_PATH), so it works wherever the HTML is shown."""
    alt = item.file_name.rsplit(".", 1)[0].replace("[", "").replace("]", "")
    path = f"/api/v1/media/{item.id}/file"
    if item.mime_type.startswith("image/"):
        return f"![{alt}]({path})"
    return f"[{alt}]({path})"


# --- diffs -----------------------------------------------------------------------------------


@dataclass
class DiffLine:
    kind: str  # "hunk" | "add" | "del" | "same"
    text: str
    old: int | None = None
    new: int | None = None


@dataclass
class TextDiff:
    lines: list[DiffLine] = field(default_factory=list)
    added: int = 0
    removed: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def text_diff(old: str, new: str, *, context: int = 3) -> TextDiff:
    """A unified diff of two texts, line by line, for a template to show (autoescaped:
    the texts are never markup here)."""
    a, b = old.splitlines(), new.splitlines()
    diff = TextDiff()
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        diff.lines.append(
            DiffLine(
                "hunk",
                f"@@ -{first[1] + 1},{last[2] - first[1]} +{first[3] + 1},{last[4] - first[3]} @@",
            )
        )
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for offset, line in enumerate(a[i1:i2]):
                    diff.lines.append(DiffLine("same", line, i1 + offset + 1, j1 + offset + 1))
                continue
            if tag in ("replace", "delete"):
                for offset, line in enumerate(a[i1:i2]):
                    diff.lines.append(DiffLine("del", line, i1 + offset + 1, None))
                    diff.removed += 1
            if tag in ("replace", "insert"):
                for offset, line in enumerate(b[j1:j2]):
                    diff.lines.append(DiffLine("add", line, None, j1 + offset + 1))
                    diff.added += 1
    return diff


FIELD_LABELS = {
    "title": "Title",
    "slug": "Slug",
    "locale": "Locale",
    "format": "Format",
    "tags": "Tags",
    "media": "Media",
    "attributes": "Attributes",
    "publish_at": "Publish at",
}


@dataclass(frozen=True)
class FieldChange:
    name: str
    label: str
    old: str
    new: str


def show_value(name: str, value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "—"
    if name in ("tags", "media") and isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if name == "attributes":
        import json

        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """The fields besides the text that differ between two snapshots."""
    changes = []
    for name, label in FIELD_LABELS.items():
        before, after = show_value(name, old.get(name)), show_value(name, new.get(name))
        if before != after:
            changes.append(FieldChange(name, label, before, after))
    return changes


def snapshot_of(item: Content) -> dict[str, Any]:
    """An item's current fields in a revision's shape, to compare with one."""
    return {
        "title": item.title,
        "slug": item.slug,
        "locale": item.locale,
        "format": item.format,
        "content": item.content,
        "tags": list(item.tags),
        "media": [str(m) for m in item.media],
        "attributes": item.attributes,
        "publish_at": item.publish_at.isoformat() if item.publish_at else None,
    }
