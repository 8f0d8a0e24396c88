"""Public content reads the process already holds, answered before the framework: no
routing, no validation, no dependency solving, one dict lookup. Everything else (and every
miss) goes on to the app, which fills the cache. Hits are counted and logged like any
request, under the route they stand for."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Receive, Scope, Send

from gameportal.content.cache import Cached, PublicCache, cache_key, etag_matches
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
            path: str = scope["path"]
            headers = scope["headers"]
            key = cache_key(path, scope["query_string"], _header(headers, b"accept-language"))
            hit = self.cache.get(key) if key is not None else None
            if hit is not None:
                started = time.perf_counter()
                status = await self._answer(scope, send, hit, headers)
                template = path if key is not None and not key.count("|") else _ITEM_ROUTE
                record_request("GET", template, status, time.perf_counter() - started)
                return
        await self.app(scope, receive, send)

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
