"""Content source → safe HTML. Markdown is rendered with markdown-it-py; every HTML
output, rendered or given, goes through nh3 (ammonia) with the allow-list below, so no
script, event handler, `javascript:` URL, SVG or style survives."""

from __future__ import annotations

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


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


class InvalidJson(ValueError):
    pass


def render(fmt: str, source: str) -> str | None:
    """The safe HTML of a content body; None for JSON, which must parse."""
    if fmt == "MARKDOWN":
        return sanitize(_markdown.render(source))
    if fmt == "HTML":
        return sanitize(source)
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
