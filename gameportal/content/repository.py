"""All content SQL. Editors' writes go through the request's ORM session; public reads are
one Core statement each on the asyncpg pool (they are the hot path)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.models import Content, ContentRevision, MediaAsset

CONTENT_CHANNEL = "gameportal_content"

_NOTIFY = text("SELECT pg_notify(:channel, :id)")


async def notify_changed(session: AsyncSession, content_id: uuid.UUID) -> None:
    """Public caches drop what they hold when this commits (NOTIFY is transactional)."""
    await session.execute(_NOTIFY, {"channel": CONTENT_CHANNEL, "id": str(content_id)})


async def missing_media(session: AsyncSession, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The ids with no media asset. The ones found stay locked (KEY SHARE) until commit,
    so a concurrent delete waits and then sees this content's reference."""
    if not ids:
        return []
    found = set(
        await session.scalars(
            select(MediaAsset.id).where(MediaAsset.id.in_(ids)).with_for_update(key_share=True)
        )
    )
    return [i for i in ids if i not in found]


async def slug_taken(
    session: AsyncSession, *, type: str, locale: str, slug: str, other_than: uuid.UUID | None
) -> bool:
    query = select(Content.id).where(
        Content.type == type, Content.locale == locale, Content.slug == slug
    )
    if other_than is not None:
        query = query.where(Content.id != other_than)
    return (await session.scalar(query.limit(1))) is not None


async def get_for_update(session: AsyncSession, content_id: uuid.UUID) -> Content | None:
    return await session.scalar(select(Content).where(Content.id == content_id).with_for_update())


async def add_revision(
    session: AsyncSession, content_id: uuid.UUID, snapshot: dict[str, Any], editor: uuid.UUID
) -> int:
    number = (
        await session.scalar(
            select(func.coalesce(func.max(ContentRevision.number), 0)).where(
                ContentRevision.content_id == content_id
            )
        )
        or 0
    ) + 1
    session.add(
        ContentRevision(content_id=content_id, number=number, snapshot=snapshot, editor_id=editor)
    )
    return number


async def revisions(
    session: AsyncSession, content_id: uuid.UUID, *, before: int | None, limit: int
) -> list[ContentRevision]:
    query = select(ContentRevision).where(ContentRevision.content_id == content_id)
    if before is not None:
        query = query.where(ContentRevision.number < before)
    rows = await session.scalars(query.order_by(ContentRevision.number.desc()).limit(limit))
    return list(rows)


async def revision(
    session: AsyncSession, content_id: uuid.UUID, number: int
) -> ContentRevision | None:
    return await session.get(ContentRevision, (content_id, number))


# --- scheduling --------------------------------------------------------------------------

_PUBLISH_DUE_SQL = """
WITH due AS (
    UPDATE content
    SET status = 'PUBLISHED', published_at = coalesce(published_at, publish_at),
        version = version + 1, updated_at = now()
    WHERE status = 'SCHEDULED' AND publish_at <= now()
    RETURNING id
)
SELECT id, pg_notify($1, id::text) FROM due
"""


async def publish_due(pool: asyncpg.Pool) -> list[uuid.UUID]:
    rows = await pool.fetch(_PUBLISH_DUE_SQL, CONTENT_CHANNEL)
    return [r["id"] for r in rows]


# --- public reads --------------------------------------------------------------------------

_PUBLIC_COLUMNS = """id, type, title, slug, locale, format, content, html, tags, media,
    attributes, published_at, created_at, updated_at, version"""

_BY_SLUG_SQL = f"""
SELECT {_PUBLIC_COLUMNS} FROM content
WHERE type = $1 AND slug = $2 AND locale = ANY($3::text[]) AND status = 'PUBLISHED'
ORDER BY array_position($3::text[], locale::text)
LIMIT 1
"""


async def published_by_slug(
    pool: asyncpg.Pool, type: str, slug: str, locales: list[str]
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(_BY_SLUG_SQL, type, slug, locales)
    return row


@dataclass(frozen=True)
class ListFilter:
    type: str | None
    tags: list[str]
    locale: str | None
    q: str | None
    search_config: str


async def published_list(
    pool: asyncpg.Pool, f: ListFilter, *, after: uuid.UUID | None, limit: int
) -> list[asyncpg.Record]:
    """Newest first, or best match first when searching; keyset-paginated by the row the
    cursor names, so a page never repeats or skips under concurrent publishing."""
    where = ["c.status = 'PUBLISHED'"]
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if f.type is not None:
        where.append(f"c.type = {arg(f.type)}")
    if f.tags:
        where.append(f"c.tags @> {arg(f.tags)}::varchar[]")
    if f.locale is not None:
        where.append(f"c.locale = {arg(f.locale)}")
    if f.q is not None:
        query = f"websearch_to_tsquery({arg(f.search_config)}::regconfig, {arg(f.q)})"
        where.append(f"c.search @@ {query}")
        order_key = f"ts_rank(c.search, {query})"
    else:
        order_key = "c.published_at"
    if after is not None:
        cursor = arg(after)
        cursor_key = order_key.replace("c.", "a.")
        where.append(
            f"({order_key}, c.id) < "
            # Only a published row may serve as the cursor: a draft's rank would tell
            # whether it matches the query, so its text would leak.
            f"(SELECT {cursor_key}, a.id FROM content a "
            f"WHERE a.id = {cursor} AND a.status = 'PUBLISHED')"
        )
    # Only constant fragments are joined here; every value is a parameter. Each shape of
    # filter is its own prepared statement, planned for what it filters on.
    sql = (
        f"SELECT {', '.join('c.' + col.strip() for col in _PUBLIC_COLUMNS.split(','))} "
        f"FROM content c WHERE {' AND '.join(where)} "
        f"ORDER BY {order_key} DESC, c.id DESC LIMIT {arg(limit)}"
    )
    rows: list[asyncpg.Record] = await pool.fetch(sql, *args)
    return rows


async def tag_counts(
    pool: asyncpg.Pool, *, type: str | None, locale: str | None, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        """
        SELECT tag, count(*) AS count
        FROM content, unnest(tags) AS tag
        WHERE status = 'PUBLISHED' AND ($1::text IS NULL OR type = $1)
          AND ($2::text IS NULL OR locale = $2)
        GROUP BY tag ORDER BY count DESC, tag LIMIT $3
        """,
        type,
        locale,
        limit,
    )
    return rows
