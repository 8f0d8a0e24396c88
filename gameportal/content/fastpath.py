"""Public content reads answered before the framework: no routing, no validation, no
dependency solving. A read the process holds is one dict lookup; an item read it does not
hold yet is one query, then kept. Anything else, and anything unusual (a bad locale, an
unknown item, extra parameters), goes on to the app, which answers it properly. Requests
answered here are counted and logged like any other, under the route they stand for."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Receive, Scope, Send

from gameportal.content.cache import (
    ITEM_PREFIX,
    LIST_PATHS,
    Cached,
    PublicCache,
    app_path,
    cache_key,
    cached_headers,
    etag_matches,
    is_item_path,
    item_locales,
)
from gameportal.content.public import read_item
from gameportal.kit.headers import BASE_HEADERS
from gameportal.observability import (
    REQUEST_ID_HEADER,
    record_request,
    request_id_of,
    scope_header,
)

_ITEM_ROUTE = "/api/v1/content/{content_type}/{slug}"


class PublicReadFastPath:
    def __init__(self, app: ASGIApp, cache: PublicCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = app_path(scope)
            key = cache_key(path, scope["query_string"], scope_header(scope, b"accept-language"))
            if key is not None:
                started = time.perf_counter()
                hit = self.cache.get(key)
                if hit is None and is_item_path(path):
                    try:
                        hit = await self._read_item(scope, key, path)
                    except Exception:
                        # The app will meet the same trouble and answer it properly: with
                        # a problem document, a request id and a logged traceback.
                        hit = None
                if hit is not None:
                    status = await self._answer(scope, send, hit)
                    template = path if path in LIST_PATHS else _ITEM_ROUTE
                    record_request("GET", template, status, time.perf_counter() - started)
                    return
        await self.app(scope, receive, send)

    async def _read_item(self, scope: Scope, key: str, path: str) -> Cached | None:
        locales = item_locales(scope["query_string"], scope_header(scope, b"accept-language"))
        if locales is None:
            return None  # the app refuses the locale, properly
        content_type, slug = path[len(ITEM_PREFIX) :].split("/")
        generation = self.cache.generation
        hit = await read_item(scope["app"].state.db.pool, content_type, slug, locales)
        if hit is not None:
            self.cache.put(key, hit, generation)
        return hit

    async def _answer(self, scope: Scope, send: Send, hit: Cached) -> int:
        out = [
            (name.encode(), value.encode())
            for name, value in cached_headers(hit, self.cache.cache_control).items()
        ]
        out.append((REQUEST_ID_HEADER.encode(), request_id_of(scope).encode()))
        out.extend(BASE_HEADERS)  # as the middleware adds to the app's answers
        if etag_matches(scope_header(scope, b"if-none-match"), hit.etag):
            await send({"type": "http.response.start", "status": 304, "headers": out})
            await send({"type": "http.response.body", "body": b""})
            return 304
        out.append((b"content-type", b"application/json"))
        out.append((b"content-length", str(len(hit.body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": out})
        await send({"type": "http.response.body", "body": hit.body})
        return 200
