"""An in-process cache of public content responses (body and ETag), dropped whole on any
content change anywhere: every write NOTIFYs, and each API process listens. While the
LISTEN connection is down nothing is cached, so nothing stale is served."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from gameportal.content.repository import CONTENT_CHANNEL
from gameportal.kit.listener import PgListener


@dataclass(frozen=True)
class Cached:
    etag: str
    body: bytes


class PublicCache:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
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
