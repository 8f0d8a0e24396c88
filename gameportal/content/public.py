"""Building public answers: a published item, or a list, as the bytes and ETag the cache
keeps. Used by the router and by the fast path alike."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import asyncpg
import orjson

from gameportal.content import repository as repo
from gameportal.content.cache import Cached
from gameportal.content.rendering import MAX_SLUG, SLUG_PATTERN
from gameportal.kit.schemas import uuid_as_text

_SLUG = re.compile(SLUG_PATTERN)


def public_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as `PublicContent` says, ready for orjson: on the hot path, a dict and
    orjson cost a tenth of validating and dumping the model (a test keeps them equal)."""
    return {
        "id": row["id"],
        "type": row["type"],
        "title": row["title"],
        "slug": row["slug"],
        "locale": row["locale"],
        "format": row["format"],
        "content": row["content"],
        "html": row["html"],
        "tags": row["tags"],
        "media": row["media"],
        "attributes": row["attributes"],
        "publishedAt": row["published_at"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def to_json(value: Any) -> bytes:
    # UTC datetimes end in `Z`, as everywhere in the API.
    return orjson.dumps(value, default=uuid_as_text, option=orjson.OPT_UTC_Z)


def digest_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


async def read_item(
    pool: asyncpg.Pool, content_type: str, slug: str, locales: list[str]
) -> Cached | None:
    """A published item in the first of `locales` it exists in, or None."""
    if len(slug) > MAX_SLUG or not _SLUG.match(slug):
        return None
    row = await repo.published_by_slug(pool, content_type.upper(), slug, locales)
    if row is None:
        return None
    return Cached(etag=f'"{row["id"]}.{row["version"]}"', body=to_json(public_item(row)), vary=True)
