"""Public content reads answered before the framework: no routing, no validation, no
dependency solving. A read the process holds is one dict lookup; an item read it does not
hold yet is one query, then kept. Anything else, and anything unusual (a bad locale, an
unknown item, extra parameters), goes on to the app, which answers it properly. Requests
answered here are counted and logged like any other, under the route they stand for."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from gameportal.content.cache import (
    ITEM_PREFIX,
    LIST_PATHS,
    Cached,
    PublicCache,
    app_path,
    cache_key,
    etag_matches,
    is_item_path,
)
from gameportal.content.locales import candidate_locales
from gameportal.content.public import read_item
from gameportal.errors import InvalidField
from gameportal.observability import REQUEST_ID_HEADER, record_request, request_id_of

_ITEM_ROUTE = "/api/v1/content/{content_type}/{slug}"


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


class PublicReadFastPath:
    def __init__(self, app: ASGIApp, cache: PublicCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = app_path(scope)
            headers = scope["headers"]
            key = cache_key(path, scope["query_string"], _header(headers, b"accept-language"))
            if key is not None:
                started = time.perf_counter()
                hit = self.cache.get(key)
                if hit is None and is_item_path(path):
                    try:
                        hit = await self._read_item(scope, key, path, headers)
                    except Exception:
                        # The app will meet the same trouble and answer it properly: with
                        # a problem document, a request id and a logged traceback.
                        hit = None
                if hit is not None:
                    status = await self._answer(scope, send, hit, headers)
                    template = path if path in LIST_PATHS else _ITEM_ROUTE
                    record_request("GET", template, status, time.perf_counter() - started)
                    return
        await self.app(scope, receive, send)

    async def _read_item(
        self, scope: Scope, key: str, path: str, headers: list[tuple[bytes, bytes]]
    ) -> Cached | None:
        query = scope["query_string"]
        explicit = None
        if query:  # the last `locale` counts, as in the route; others do not matter
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            explicit = next((v for k, v in reversed(pairs) if k == "locale"), None)
        try:
            locales = candidate_locales(explicit, _header(headers, b"accept-language"))
        except InvalidField:
            return None
        content_type, slug = path[len(ITEM_PREFIX) :].split("/")
        generation = self.cache.generation
        hit = await read_item(scope["app"].state.db.pool, content_type, slug, locales)
        if hit is not None:
            self.cache.put(key, hit, generation)
        return hit

    async def _answer(
        self, scope: Scope, send: Send, hit: Cached, headers: list[tuple[bytes, bytes]]
    ) -> int:
        out = [
            (b"etag", hit.etag.encode()),
            (b"cache-control", self.cache.cache_control.encode()),
            (REQUEST_ID_HEADER.lower().encode(), request_id_of(scope).encode()),
        ]
        if hit.vary:
            out.append((b"vary", b"Accept-Language"))
        if etag_matches(_header(headers, b"if-none-match"), hit.etag):
            await send({"type": "http.response.start", "status": 304, "headers": out})
            await send({"type": "http.response.body", "body": b""})
            return 304
        out.append((b"content-type", b"application/json"))
        out.append((b"content-length", str(len(hit.body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": out})
        await send({"type": "http.response.body", "body": hit.body})
        return 200
