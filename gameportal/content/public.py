"""Building public answers: which locales to try for a reader, and a published item as
the bytes and ETag the cache keeps. Used by the router and by the fast path alike."""

from __future__ import annotations

import hashlib
import re

import asyncpg

from gameportal.content import repository as repo
from gameportal.content.cache import Cached
from gameportal.content.schemas import PublicContent, normalize_locale
from gameportal.errors import InvalidField

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_MAX_ACCEPTED_LANGUAGES = 6


def candidate_locales(explicit: str | None, accept_language: str | None) -> list[str]:
    """The locales to try, best first: `?locale=`, else Accept-Language by quality (each
    region tag followed by its language), and English last."""
    wanted: list[str] = []
    if explicit is not None:
        try:
            wanted.append(normalize_locale(explicit))
        except ValueError as exc:
            raise InvalidField("locale", str(exc)) from None
    elif accept_language:
        ranked: list[tuple[float, int, str]] = []
        for index, part in enumerate(accept_language.split(",")[:20]):
            tag, _, params = part.strip().partition(";")
            quality = 1.0
            if params.strip().startswith("q="):
                try:
                    quality = float(params.strip()[2:])
                except ValueError:
                    continue
            if tag and tag != "*" and quality > 0:
                ranked.append((-quality, index, tag))
        for _, _, tag in sorted(ranked):
            try:
                locale = normalize_locale(tag)
            except ValueError:
                continue
            wanted.extend([locale, locale.split("-")[0]])
    wanted.append("en")
    return list(dict.fromkeys(wanted))[:_MAX_ACCEPTED_LANGUAGES]


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
