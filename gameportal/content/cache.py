"""An in-process cache of public content responses (body and ETag), dropped whole on any
content change anywhere: every write NOTIFYs, and each API process listens. While the
LISTEN connection is down nothing is cached, so nothing stale is served.

Entries are keyed by what the answer depends on: the path, the parameters the route reads
(others are ignored, as the route ignores them), and for items the locales to try. The
cache is bounded by entries and by bytes."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from starlette.types import Scope

from gameportal.content.locales import candidate_locales
from gameportal.content.repository import CONTENT_CHANNEL
from gameportal.errors import InvalidField
from gameportal.kit.listener import PgListener

CONTENT_TYPES = frozenset({"game", "news", "announcement", "faq"})
# The parameters each public list reads; others do not change the answer.
LIST_PARAMS = {
    "/api/v1/content": frozenset({"type", "tag", "locale", "q", "limit", "cursor"}),
    "/api/v1/tags": frozenset({"type", "locale", "limit"}),
}
LIST_PATHS = frozenset(LIST_PARAMS)
ITEM_PREFIX = "/api/v1/content/"


@dataclass(frozen=True, slots=True)
class Cached:
    etag: str
    body: bytes
    vary: bool  # the answer depends on Accept-Language


def is_item_path(path: str) -> bool:
    """`/api/v1/content/{type}/{slug}`: a public read, never an editor route."""
    if not path.startswith(ITEM_PREFIX):
        return False
    parts = path[len(ITEM_PREFIX) :].split("/")
    return len(parts) == 2 and parts[0].lower() in CONTENT_TYPES and parts[1] != ""


def app_path(scope: Scope) -> str:
    """The path as the app's routes see it, behind a proxy's path prefix too."""
    path: str = scope["path"]
    root: str = scope.get("root_path") or ""
    return path[len(root) :] if root and path.startswith(root) else path


def item_locales(query: bytes, accept_language: str | None) -> list[str] | None:
    """The locales an item read tries, as the route works them out (the last `locale`
    parameter, else Accept-Language); None when the route would refuse the locale."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True) if query else []
    explicit = next((v for k, v in reversed(pairs) if k == "locale"), None)
    try:
        return candidate_locales(explicit, accept_language)
    except InvalidField:
        return None


def cache_key(path: str, query: bytes, accept_language: str | None) -> str | None:
    """The key of a public read, or None for anything else (or for a request the route
    will refuse, such as a malformed locale)."""
    wanted = LIST_PARAMS.get(path)
    if wanted is not None:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True) if query else []
        # Stable by name: for a repeated single-valued parameter the last one counts,
        # so the order among equal names must be kept.
        kept = sorted((p for p in pairs if p[0] in wanted), key=lambda p: p[0])
        return f"{path}?{urlencode(kept)}"
    if not is_item_path(path):
        return None
    locales = item_locales(query, accept_language)
    return None if locales is None else f"{path}|{','.join(locales)}"


class PublicCache:
    def __init__(self, max_entries: int, max_bytes: int, cache_control: str) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.cache_control = cache_control
        self._entries: OrderedDict[str, Cached] = OrderedDict()
        self._bytes = 0
        self._enabled = False
        # Bumped by every drop: a response read from the database before a change must
        # not be stored after the change's NOTIFY has emptied the cache.
        self.generation = 0

    def attach(self, listener: PgListener) -> None:
        listener.on(CONTENT_CHANNEL, lambda _payload: self.clear())
        listener.on_state(self._listening)

    def _listening(self, connected: bool) -> None:
        self.clear()
        self._enabled = connected

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
        self.generation += 1

    def get(self, key: str) -> Cached | None:
        if not self._enabled:
            return None
        return self._entries.get(key)

    def put(self, key: str, value: Cached, generation: int) -> None:
        if not self._enabled or generation != self.generation or self.max_entries == 0:
            return
        size = len(value.body) + len(key)
        if size > self.max_bytes // 8:
            return  # one huge answer must not push out hundreds of ordinary ones
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body) + len(key)
        self._entries[key] = value
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            evicted_key, evicted = self._entries.popitem(last=False)  # least recently added
            self._bytes -= len(evicted.body) + len(evicted_key)

    @property
    def size_bytes(self) -> int:
        return self._bytes


def cached_headers(hit: Cached, cache_control: str) -> dict[str, str]:
    """What every answer from the cache carries, 200 or 304, wherever it is sent from."""
    headers = {"etag": hit.etag, "cache-control": cache_control}
    if hit.vary:
        headers["vary"] = "Accept-Language"
    return headers


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    stripped = if_none_match.strip()
    if stripped == etag or stripped == "*":  # `*`: any current representation (RFC 9110)
        return True
    return etag in (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
