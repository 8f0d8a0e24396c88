"""Building public answers: which locales to try for a reader, and a published item as
the bytes and ETag the cache keeps. Used by the router and by the fast path alike."""

from __future__ import annotations

import hashlib
import re

import asyncpg

from gameportal.content import repository as repo
from gameportal.content.cache import Cached
from gameportal.content.schemas import PublicContent

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def digest_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


async def read_item(
    pool: asyncpg.Pool, content_type: str, slug: str, locales: list[str]
) -> Cached | None:
    """A published item in the first of `locales` it exists in, or None."""
    if len(slug) > 120 or not SLUG.match(slug):
        return None
    row = await repo.published_by_slug(pool, content_type.upper(), slug, locales)
    if row is None:
        return None
    body = PublicContent.model_validate(dict(row)).model_dump_json(by_alias=True).encode()
    return Cached(etag=f'"{row["id"]}.{row["version"]}"', body=body, vary=True)
