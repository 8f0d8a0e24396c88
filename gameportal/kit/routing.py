"""Route dispatch whose cost does not grow with the number of routes.

Starlette and FastAPI try every route in turn (a regex match each, about 3 µs per route
per request). `install_route_index(app)` puts an index in front of the app's router: a
tree of the literal path segments every route's path starts with, holding at each node,
per HTTP method, the routes (in the router's own order) that could match a request whose
path begins with those segments. A request walks the tree by its path's segments and
tries only the routes on the node it reaches, with the routes' own `matches()`, so path
parameters and convertors behave exactly as before.

Why it is the same dispatch: a route's regex starts with the literal text before its
first parameter, so a path it matches starts with that text and its first segments are
that text's complete segments; the node reached therefore holds every route that can
match, in order, and the first FULL match among them is the first FULL match among all
routes. The rest follows Starlette's order too: the first PARTIAL match (a method
mismatch: 405), then the slash-toggled path for `redirect_slashes` (307), then the
router's default (404). Two differences, on purpose: a 405's `Allow` lists every method
any route on that path accepts, where Starlette names only the first such route's; and a
matched request whose path or query parameters hold a NUL or bytes that are not UTF-8
gets a 422 naming them (`unreadable_parameters`) before any handler sees it.

Anything the index does not understand (a `Host` route, an included router, a route
class with its own `matches()`, form limits or FastAPI's native telemetry, websockets,
lifespan) goes to the router's own dispatch, unchanged. Routes added later (`add_route`,
`add_api_route`, `routes.append`, or a new `routes` list) are seen on the next request:
the router's list is replaced by one that counts its changes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from typing import Any, SupportsIndex
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter, APIWebSocketRoute
from starlette._exception_handler import wrap_app_handling_exceptions
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route, WebSocketRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gameportal.errors import FieldProblem, problem_response

# Starlette's own pattern for `{name}` / `{name:convertor}` in a path.
_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(:[a-zA-Z_][a-zA-Z0-9_]*)?}")
_ROUTE_MATCHES = (Route.matches, APIRoute.matches)
_ROUTE_HANDLES = (Route.handle, APIRoute.handle)
_WEBSOCKET_MATCHES = (WebSocketRoute.matches, APIWebSocketRoute.matches)
_ANY_METHOD = ""  # key of the lists for a method no route names
_PERCENT = ord("%")


class TrackedRoutes(list[BaseRoute]):
    """The router's route list, counting its changes so the index knows when to rebuild."""

    version = 0

    def _changed(self) -> None:
        self.version += 1

    def append(self, item: BaseRoute) -> None:
        super().append(item)
        self._changed()

    def extend(self, items: Iterable[BaseRoute]) -> None:
        super().extend(items)
        self._changed()

    def insert(self, index: SupportsIndex, item: BaseRoute) -> None:
        super().insert(index, item)
        self._changed()

    def remove(self, item: BaseRoute) -> None:
        super().remove(item)
        self._changed()

    def pop(self, index: SupportsIndex = -1) -> BaseRoute:
        item = super().pop(index)
        self._changed()
        return item

    def clear(self) -> None:
        super().clear()
        self._changed()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        super().sort(*args, **kwargs)
        self._changed()

    def reverse(self) -> None:
        super().reverse()
        self._changed()

    def __setitem__(self, index: Any, value: Any) -> None:
        super().__setitem__(index, value)
        self._changed()

    def __delitem__(self, index: Any) -> None:
        super().__delitem__(index)
        self._changed()

    def __iadd__(self, items: Iterable[BaseRoute]) -> TrackedRoutes:  # type: ignore[override,misc]
        super().__iadd__(items)
        self._changed()
        return self

    def __imul__(self, times: SupportsIndex) -> TrackedRoutes:
        super().__imul__(times)
        self._changed()
        return self


class _Node:
    __slots__ = ("by_method", "children", "routes")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.routes: list[int] = []  # positions in the router's list of routes placed here
        # method -> routes that may FULL-match; "" -> routes for any other method;
        # None -> every route that may match the path at all (for 405 and redirects).
        self.by_method: dict[str | None, tuple[BaseRoute, ...]] = {}

    def candidates(self, method: str) -> tuple[BaseRoute, ...]:
        """The routes that may FULL-match a request with this method, in order."""
        found = self.by_method.get(method)
        return self.by_method[_ANY_METHOD] if found is None else found


class RouteIndex:
    """The tree for one version of a router's route list; None from `build` when some
    route is of a kind the index cannot reason about."""

    def __init__(self, root: _Node) -> None:
        self.root = root

    @classmethod
    def build(cls, routes: list[BaseRoute]) -> RouteIndex | None:
        root = _Node()
        methods: dict[int, frozenset[str] | None] = {}  # None: any method
        for position, route in enumerate(routes):
            placed = _placement(route)
            if placed is None:
                continue  # a websocket route: never matches an HTTP request
            if isinstance(placed, bool):
                return None
            segments, route_methods = placed
            node = root
            for segment in segments:
                node = node.children.setdefault(segment, _Node())
            node.routes.append(position)
            methods[position] = route_methods
        known = sorted({m for ms in methods.values() if ms for m in ms})

        def fill(node: _Node, above: list[int]) -> None:
            here = sorted(above + node.routes)
            node.by_method[None] = tuple(routes[i] for i in here)
            for method in [*known, _ANY_METHOD]:
                node.by_method[method] = tuple(
                    routes[i]
                    for i in here
                    if methods[i] is None or method in methods[i]  # type: ignore[operator]
                )
            for child in node.children.values():
                fill(child, here)

        fill(root, [])
        return cls(root)

    def node_for(self, route_path: str) -> _Node:
        node = self.root
        # A path regex's `$` also matches before a final newline: walk without it.
        if route_path.endswith("\n"):
            route_path = route_path[:-1]
        children = node.children
        for segment in route_path.split("/")[1:]:
            child = children.get(segment)
            if child is None:
                break
            node = child
            children = node.children
        return node

    def candidates(self, route_path: str, method: str) -> tuple[BaseRoute, ...]:
        return self.node_for(route_path).candidates(method)


def _placement(route: BaseRoute) -> tuple[list[str], frozenset[str] | None] | bool | None:
    """Where a route sits in the tree (the complete literal segments its paths start with)
    and the methods it FULL-matches; None for routes no HTTP request matches; False for a
    route the index cannot reason about."""
    kind = type(route)
    if isinstance(route, WebSocketRoute) and kind.matches in _WEBSOCKET_MATCHES:
        return None
    if isinstance(route, Route) and kind.matches in _ROUTE_MATCHES:
        path = route.path
        methods = frozenset(route.methods) if route.methods else None
    elif isinstance(route, Mount) and kind.matches is Mount.matches:
        path = route.path + "/{path:path}"
        methods = None
    else:
        return False
    # The index derives a route's prefix from its path: make sure that is what it matches.
    if compile_path(path)[0].pattern != route.path_regex.pattern:
        return False
    first = _PARAM.search(path)
    literal = path if first is None else path[: first.start()]
    if "\n" in literal or "\r" in literal or not literal.startswith("/"):
        return [], methods  # tried for every path: nothing to gain, nothing to risk
    pieces = literal.split("/")[1:]
    # A piece followed by a parameter is only the start of a segment ("/x{n}" matches
    # "/x17"); without parameters the path is matched whole (or with a final newline,
    # which node_for drops), so every piece is a segment.
    segments = pieces if first is None else pieces[:-1]
    return segments, methods


class IndexedRouter:
    """The router's dispatch, in front of its own: installed as its middleware stack."""

    def __init__(self, router: APIRouter, fallback: Callable[[Scope, Receive, Send], Any]):
        self.router = router
        self.fallback = fallback
        self._routes: TrackedRoutes | None = None
        self._version = -1
        self._index: RouteIndex | None = None

    def index(self) -> RouteIndex | None:
        routes = self.router.routes
        if type(routes) is not TrackedRoutes:
            routes = self.router.routes = TrackedRoutes(routes)
        if routes is not self._routes or routes.version != self._version:
            self._index = RouteIndex.build(routes)
            self._routes, self._version = routes, routes.version
        return self._index

    def _plain(self, scope: Scope) -> bool:
        router = self.router
        return (
            scope["type"] == "http"
            and "fastapi.telemetry" not in scope
            and not router.form_limits
            and not getattr(router, "_low_priority_routes", None)
        )

    def direct(self, scope: Scope) -> BaseRoute | None:
        """The route a request goes to when that route is answered directly
        (`answer_directly`), its match put in the scope as the router would; None for
        anything else, which then takes the usual way (and the router's own dispatch)."""
        index = self.index() if self._plain(scope) else None
        if index is None:
            return None
        if _may_be_unreadable(scope):
            return None  # parameters that may need refusing: the router does that
        found = _first_full_match(index.node_for(get_route_path(scope)), scope)
        if found is None or not getattr(found[0], _DIRECT, False):
            return None
        route, child_scope = found
        scope.update(child_scope)
        scope["route"] = route
        scope.setdefault("router", self.router)
        return route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        index = self.index() if self._plain(scope) else None
        if index is None:
            await self.fallback(scope, receive, send)
            return
        router = self.router
        if "router" not in scope:
            scope["router"] = router
        route_path = get_route_path(scope)
        node = index.node_for(route_path)
        found = _first_full_match(node, scope)
        if found is not None:
            route, child_scope = found
            scope.update(child_scope)
            scope["route"] = route
            if _may_be_unreadable(scope):
                refused = unreadable_parameters(scope)
                if refused:
                    await _refuse(refused, scope, receive, send)
                    return
            await route.handle(scope, receive, send)
            return

        partial: tuple[BaseRoute, Scope] | None = None
        allowed: set[str] | None = set()
        for route in node.by_method[None]:
            match, child_scope = route.matches(scope)
            if match is Match.PARTIAL:
                if partial is None:
                    partial = (route, child_scope)
                if (
                    allowed is not None
                    and isinstance(route, Route)
                    and type(route).handle in _ROUTE_HANDLES
                    and route.methods
                ):
                    allowed |= route.methods
                else:
                    allowed = None  # a route of its own kind answers for itself
        if partial is not None:
            route, child_scope = partial
            scope.update(child_scope)
            scope["route"] = route
            if allowed:
                await _method_not_allowed(scope, receive, send, allowed)
            else:
                await route.handle(scope, receive, send)
            return

        if router.redirect_slashes and route_path != "/":
            redirect_scope = dict(scope)
            if route_path.endswith("/"):
                redirect_scope["path"] = redirect_scope["path"].rstrip("/")
            else:
                redirect_scope["path"] = redirect_scope["path"] + "/"
            other = index.node_for(get_route_path(redirect_scope))
            for route in other.by_method[None]:
                match, _ = route.matches(redirect_scope)
                if match is not Match.NONE:
                    response = RedirectResponse(url=_relative_location(redirect_scope))
                    await response(scope, receive, send)
                    return

        await router.default(scope, receive, send)


def _relative_location(scope: Scope) -> str:
    """The redirect's target as a path on this same server. Starlette writes an absolute
    URL from the request's Host header, which the client chooses: `Host: evil.example`
    made a redirect to evil.example (cache poisoning, phishing through a shared link)."""
    # As Starlette escapes it (the path is already the whole path, root_path included).
    path: str = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    # "//host/…" would name another host.
    location = "/" + path.lstrip("/")
    query: bytes = scope.get("query_string", b"")
    return location + "?" + query.decode("latin-1") if query else location


def _first_full_match(node: _Node, scope: Scope) -> tuple[BaseRoute, Scope] | None:
    """The first of the node's routes for the request's method that matches it fully,
    with the scope its match gives."""
    for route in node.candidates(scope["method"]):
        match, child_scope = route.matches(scope)
        if match is Match.FULL:
            return route, child_scope
    return None


def _may_be_unreadable(scope: Scope) -> bool:
    # Only a percent sign (or a raw non-ASCII byte) can bring a NUL or bytes that are not
    # UTF-8: the usual request pays for two byte searches (by int: `b"%" in` costs 15
    # times as much, through the buffer protocol).
    query: bytes = scope.get("query_string", b"")
    raw_path: bytes = scope.get("raw_path") or b""
    return _PERCENT in query or _PERCENT in raw_path or not (query.isascii() and raw_path.isascii())


def unreadable_parameters(scope: Scope) -> list[FieldProblem]:
    """The path and query parameters of a routed request that no handler should see: a NUL
    (which PostgreSQL cannot store) or bytes that are not UTF-8 (an unpaired surrogate can
    only come that way; the server would have put U+FFFD in their place). Every route
    gets the same 422 naming the parameter, as for a bad field in a JSON body."""
    problems: list[FieldProblem] = []
    raw_path: bytes = scope.get("raw_path") or b""
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
        path_decodes = True
    except UnicodeDecodeError:
        path_decodes = False
    for name, value in scope.get("path_params", {}).items():
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            problems.append(_parameter_problem(name, "path", _NUL))
        elif not path_decodes and "\ufffd" in value:
            problems.append(_parameter_problem(name, "path", _NOT_UTF8))
    for part in scope.get("query_string", b"").split(b"&"):
        raw_name, _, raw_value = part.partition(b"=")
        name = unquote_to_bytes(raw_name.replace(b"+", b" "))
        value = unquote_to_bytes(raw_value.replace(b"+", b" "))
        shown = name.decode("utf-8", "backslashreplace").replace("\x00", "\\u0000")
        try:
            text = name.decode("utf-8") + value.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(_parameter_problem(shown, "query", _NOT_UTF8))
            continue
        if "\x00" in text:
            problems.append(_parameter_problem(shown, "query", _NUL))
    return problems


_NUL = ("must not contain NUL characters", "value_error")
_NOT_UTF8 = ("is not valid UTF-8 once percent-decoded", "string_unicode")


def _parameter_problem(name: str, location: str, reason: tuple[str, str]) -> FieldProblem:
    return FieldProblem(field=name, location=location, message=reason[0], code=reason[1])


async def _refuse(problems: list[FieldProblem], scope: Scope, receive: Receive, send: Send) -> None:
    noun = "field is" if len(problems) == 1 else "fields are"
    response = problem_response(
        422,
        "validation-error",
        "Request validation failed",
        f"{len(problems)} {noun} invalid",
        errors=problems,
    )
    await response(scope, receive, send)


async def _method_not_allowed(
    scope: Scope, receive: Receive, send: Send, allowed: set[str]
) -> None:
    # As Route.handle answers, with every method the path takes.
    headers = {"Allow": ", ".join(sorted(allowed))}
    if "app" in scope:
        raise HTTPException(status_code=405, headers=headers)
    response = PlainTextResponse("Method Not Allowed", status_code=405, headers=headers)
    await response(scope, receive, send)


def install_route_index(app: FastAPI) -> IndexedRouter:
    """Route the app's requests through the index. The router keeps its own dispatch for
    what the index hands on; its routes may still change at any time."""
    router = app.router
    installed = router.middleware_stack
    if isinstance(installed, IndexedRouter):
        return installed
    # Only where the router's stack is its bare dispatch: a router-level middleware
    # would otherwise be skipped.
    if installed != router.app:
        raise RuntimeError("the router has its own middleware; the route index would bypass it")
    indexed = IndexedRouter(router, installed)
    router.middleware_stack = indexed
    return indexed


def answer_directly(
    router: APIRouter,
    endpoint: Callable[..., Any],
    handler: Callable[[Request, bytes], Awaitable[Response | None]],
    *,
    with_body: bool = False,
) -> None:
    """Serve the route of `endpoint` with a plain `handler(request, body)` instead of
    FastAPI's machinery, keeping the route as declared: path, methods, OpenAPI.

    For the hottest paths, where solving dependencies (two exit stacks per request) and
    validating the request and response models cost more than the work itself. The handler
    must answer as the declared route would: the same dependencies run by hand, the
    response model's exact bytes; each such route has a test that compares the two.
    Errors it raises reach the app's exception handlers as any route's do. With
    `with_body`, the whole body is read first; a handler that returns None (a body it does
    not take in its stride: another content type, odd JSON, a field error) hands the
    request to the declared route, which gets the body as it came and answers as before.
    """
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint is endpoint:
            route.app = _direct_app(handler, route.app, with_body)
            setattr(route, _DIRECT, True)
            return
    raise LookupError(f"no route of {endpoint.__qualname__} on this router")


def _direct_app(
    handler: Callable[[Request, bytes], Awaitable[Response | None]],
    declared: Callable[[Scope, Receive, Send], Awaitable[None]],
    with_body: bool,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received: list[Message] = []
        complete = not with_body
        chunks: list[bytes] = []
        while not complete:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break  # the client left (or the body was over the limit): as declared
            chunks.append(message.get("body", b""))
            complete = not message.get("more_body", False)
        if complete:
            response = await handler(Request(scope, receive, send), b"".join(chunks))
            if response is not None:
                await response(scope, receive, send)
                return
        replay = iter(received)

        async def replayed() -> Message:
            message = next(replay, None)
            return await receive() if message is None else message

        if "fastapi_middleware_astack" in scope:
            await declared(scope, replayed, send)
            return
        # Come by DirectRoutes, past FastAPI's exit stack: the declared route may need one.
        async with AsyncExitStack() as stack:
            scope["fastapi_middleware_astack"] = stack
            await declared(scope, replayed, send)

    return app


# The mark answer_directly leaves on the routes it serves.
_DIRECT = "_gameportal_answered_directly"


class DirectRoutes:
    """Requests for the routes `answer_directly` serves go from here straight to the route:
    past FastAPI's exception middleware and exit stack, the router and the route's own
    `handle`, four layers of coroutines and send wrappers that cost GET /api/v1/me about
    as much as its own handler (profiled at 32 connections). What those layers do for such
    a route is done here: the match, by the same index and with the same `matches()`; the
    app's exception handlers around the route, as the exception middleware puts them.
    Place it inside the request-context middleware (request id, limits, logs, errors),
    with no middleware of the app's between the two; everything else passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._handlers: tuple[object, tuple[dict[Any, Any], dict[int, Any]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            fastapi_app = scope.get("app")
            indexed = getattr(getattr(fastapi_app, "router", None), "middleware_stack", None)
            if isinstance(indexed, IndexedRouter):
                route = indexed.direct(scope)
                if route is not None:
                    scope["starlette.exception_handlers"] = self._exception_handlers(fastapi_app)
                    handled = wrap_app_handling_exceptions(
                        route.app,  # type: ignore[attr-defined]
                        Request(scope, receive, send),
                    )
                    await handled(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _exception_handlers(self, app: Any) -> tuple[dict[Any, Any], dict[int, Any]]:
        # As FastAPI gives them to its exception middleware: all but the one for 500 (the
        # server-error middleware's, outside), status codes apart from exception classes.
        registered = app.exception_handlers
        if self._handlers is None or self._handlers[0] is not registered:
            by_class: dict[Any, Any] = {}
            by_status: dict[int, Any] = {}
            for key, handler in registered.items():
                if key in (500, Exception):
                    continue
                if isinstance(key, int):
                    by_status[key] = handler
                else:
                    by_class[key] = handler
            self._handlers = (registered, (by_class, by_status))
        return self._handlers[1]
