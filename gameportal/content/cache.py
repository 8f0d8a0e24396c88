"""An in-process cache of public content responses (body and ETag), dropped whole on any
content change anywhere: every write NOTIFYs, and each API process listens. While the
LISTEN connection is down nothing is cached, so nothing stale is served.

Entries are keyed by the request as sent (path, query string, and Accept-Language where
the answer depends on it), so the fast path (fastpath.py) can find them before any
parsing; equivalent requests spelled differently simply get entries of their own."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from gameportal.content.repository import CONTENT_CHANNEL
from gameportal.kit.listener import PgListener

CONTENT_TYPES = frozenset({"game", "news", "announcement", "faq"})
LIST_PATHS = frozenset({"/api/v1/content", "/api/v1/tags"})
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


def cache_key(path: str, query: bytes, accept_language: str | None) -> str | None:
    """The key of a public read, or None for anything else."""
    if path in LIST_PATHS:
        return f"{path}?{query.decode('latin-1')}"
    if is_item_path(path):
        return f"{path}?{query.decode('latin-1')}|{accept_language or ''}"
    return None


class PublicCache:
    def __init__(self, max_entries: int, cache_control: str) -> None:
        self.max_entries = max_entries
        self.cache_control = cache_control
        self._entries: OrderedDict[str, Cached] = OrderedDict()
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
        self.generation += 1

    def get(self, key: str) -> Cached | None:
        if not self._enabled:
            return None
        return self._entries.get(key)

    def put(self, key: str, value: Cached, generation: int) -> None:
        if not self._enabled or generation != self.generation or self.max_entries == 0:
            return
        self._entries[key] = value
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)  # the oldest entry


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    if if_none_match.strip() == etag:
        return True
    return etag in (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
