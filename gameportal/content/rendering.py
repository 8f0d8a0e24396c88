"""Content source → safe HTML. Markdown is rendered with markdown-it-py; every HTML
output, rendered or given, goes through nh3 (ammonia) with the allow-list below, so no
script, event handler, `javascript:` URL, SVG or style survives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import nh3
import orjson
from markdown_it import MarkdownIt
from slugify import slugify

# The documented allow-list (README: Content). Anything else is removed, its text kept.
ALLOWED_TAGS: Final = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details",
        "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5",
        "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s",
        "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: Final = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start"},
}
URL_SCHEMES: Final = frozenset({"http", "https", "mailto"})

_markdown = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])

# This server's media, as an editor links it (`![](/api/v1/media/<id>/file)`): made
# absolute when the HTML is rendered, since the HTML is shown on other origins (the
# publisher's site, a game's web view), where a path would name their server, not ours.
MEDIA_PATH: Final = "/api/v1/media/"
_URL_ATTRIBUTES: Final = frozenset({("img", "src"), ("a", "href")})


def _media_urls_from(base: str) -> Callable[[str, str, str], str | None]:
    base = base.rstrip("/")

    def absolute(tag: str, attribute: str, value: str) -> str | None:
        if (tag, attribute) in _URL_ATTRIBUTES and value.startswith(MEDIA_PATH):
            return base + value
        return value

    return absolute


def sanitize(html: str, media_base: str | None = None) -> str:
    """Safe HTML; with `media_base` (the public base URL media paths are served from),
    links to this server's media made absolute."""
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_media_urls_from(media_base) if media_base else None,
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


class InvalidJson(ValueError):
    pass


def render(fmt: str, source: str, media_base: str | None = None) -> str | None:
    """The safe HTML of a content body, media links made absolute on `media_base` (see
    sanitize); None for JSON, which must parse."""
    if fmt == "MARKDOWN":
        return sanitize(_markdown.render(source), media_base)
    if fmt == "HTML":
        return sanitize(source, media_base)
    try:
        orjson.loads(source)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(str(exc)) from None
    return None


MAX_SLUG = 120
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"  # what slug_from makes, and all a slug may be


def slug_from(title: str) -> str:
    return slugify(title, max_length=MAX_SLUG, word_boundary=True) or "item"


# PostgreSQL's text search configurations by language; anything else is searched
# without stemming ('simple').
SEARCH_CONFIGS: Final = {
    "ar": "arabic", "da": "danish", "de": "german", "el": "greek", "en": "english",
    "es": "spanish", "fi": "finnish", "fr": "french", "hu": "hungarian", "id": "indonesian",
    "it": "italian", "nl": "dutch", "no": "norwegian", "nb": "norwegian", "pt": "portuguese",
    "ro": "romanian", "ru": "russian", "sv": "swedish", "tr": "turkish",
}  # fmt: skip


def search_config(locale: str) -> str:
    return SEARCH_CONFIGS.get(locale.split("-")[0].lower(), "simple")
