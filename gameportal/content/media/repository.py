"""All media SQL."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.models import Content, MediaAsset


async def content_exists(session: AsyncSession, content_id: uuid.UUID) -> bool:
    return (await session.scalar(select(Content.id).where(Content.id == content_id))) is not None


async def referenced_by_published(session: AsyncSession, media_id: uuid.UUID) -> list[str]:
    """Slugs of published content that shows this media."""
    rows = await session.execute(
        text(
            "SELECT type || '/' || slug FROM content "
            "WHERE status = 'PUBLISHED' AND media @> ARRAY[CAST(:id AS uuid)] LIMIT 5"
        ),
        {"id": media_id},
    )
    return [r[0] for r in rows]


async def forget_in_content(session: AsyncSession, media_id: uuid.UUID) -> None:
    """Drafts that listed a deleted asset stop listing it: content's media always exist."""
    await session.execute(
        text(
            "UPDATE content SET media = array_remove(media, CAST(:id AS uuid)) "
            "WHERE media @> ARRAY[CAST(:id AS uuid)]"
        ),
        {"id": media_id},
    )


async def listing(
    session: AsyncSession,
    *,
    mime_prefix: str | None,
    uploader: uuid.UUID | None,
    related_content_id: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[MediaAsset]:
    query = select(MediaAsset)
    if mime_prefix is not None:
        query = query.where(MediaAsset.mime_type.startswith(mime_prefix, autoescape=True))
    if uploader is not None:
        query = query.where(MediaAsset.uploaded_by == uploader)
    if related_content_id is not None:
        query = query.where(MediaAsset.related_content_id == related_content_id)
    if after is not None:
        query = query.where(MediaAsset.id < after)
    return list(await session.scalars(query.order_by(MediaAsset.id.desc()).limit(limit)))


# --- the worker's side ---------------------------------------------------------------------


async def to_process(pool: asyncpg.Pool, media_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT storage_key, mime_type, status FROM media_assets WHERE id = $1", media_id
    )
    return row


async def for_processing(conn: asyncpg.Connection, media_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, file_name, mime_type, storage_key, uploaded_by, status "
        "FROM media_assets WHERE id = $1 FOR UPDATE",
        media_id,
    )
    return row


async def mark_ready(conn: asyncpg.Connection, media_id: uuid.UUID, **values: Any) -> None:
    await conn.execute(
        """
        UPDATE media_assets
        SET status = 'READY', width = $2, height = $3, size_bytes = $4, sha256 = $5,
            renditions = $6::jsonb, updated_at = now()
        WHERE id = $1
        """,
        media_id,
        values["width"],
        values["height"],
        values["size_bytes"],
        values["sha256"],
        values["renditions"],
    )


async def mark_rejected(conn: asyncpg.Connection, media_id: uuid.UUID, reason: str) -> None:
    await conn.execute(
        "UPDATE media_assets SET status = 'REJECTED', reject_reason = $2, updated_at = now() "
        "WHERE id = $1",
        media_id,
        reason[:500],
    )


async def mark_failed(conn: asyncpg.Connection, media_id: uuid.UUID, reason: str) -> None:
    await conn.execute(
        "UPDATE media_assets SET status = 'FAILED', reject_reason = $2, updated_at = now() "
        "WHERE id = $1",
        media_id,
        reason[:500],
    )


async def take_abandoned_uploads(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Presigned uploads never completed: removed (row and any bytes) past their expiry."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        DELETE FROM media_assets WHERE id IN (
            SELECT id FROM media_assets
            WHERE status = 'UPLOADING' AND upload_expires_at < now() - interval '1 minute'
            ORDER BY upload_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING id, storage_key
        """,
        limit,
    )
    return rows
