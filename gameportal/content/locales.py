"""Which locales a reader should get content in, best first."""

from __future__ import annotations

import functools

from gameportal.content.schemas import normalize_locale
from gameportal.errors import InvalidField

_MAX_ACCEPTED_LANGUAGES = 6


def candidate_locales(explicit: str | None, accept_language: str | None) -> list[str]:
    """The locales to try, best first: `?locale=`, else Accept-Language by quality (each
    region tag followed by its language), and English last."""
    return list(_candidates(explicit, accept_language))


# Readers send few distinct headers; parsing each once per process is plenty. Bounded, so
# a client inventing headers only recycles entries.
@functools.lru_cache(maxsize=4096)
def _candidates(explicit: str | None, accept_language: str | None) -> tuple[str, ...]:
    wanted: list[str] = []
    if explicit is not None:
        try:
            locale = normalize_locale(explicit)
        except ValueError as exc:
            raise InvalidField("locale", str(exc), location="query") from None
        wanted.extend([locale, locale.split("-")[0]])
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
    return tuple(dict.fromkeys(wanted))[:_MAX_ACCEPTED_LANGUAGES]
