"""The indexed router against Starlette's plain, linear one: the same route chosen, the
same path parameters, the same 404, 405 and slash redirects, over many paths and methods,
on hand-made route sets and on the real app's routes."""

from __future__ import annotations

import itertools
import re
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import BaseRoute, Host, Mount, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send

from gameportal.app import create_app
from gameportal.config import Settings
from gameportal.kit.routing import IndexedRouter, RouteIndex, install_route_index
from tests.conftest import METRICS_AUTH
from tests.factories import bearer, register

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"]


def _echo(position: int) -> Any:
    async def endpoint(request: Request) -> JSONResponse:
        route = request.scope.get("route")
        return JSONResponse(
            {
                "position": position,
                "route": getattr(route, "path", None),
                "params": {k: str(v) for k, v in request.path_params.items()},
                "root_path": request.scope.get("root_path", ""),
            }
        )

    return endpoint


class _RawApp:
    """An ASGI class endpoint: a Route with it takes every method."""

    def __init__(self, position: int) -> None:
        self.position = position

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope.get("route")
        body = f"raw {self.position} {getattr(route, 'path', None)} {scope['path']}"
        await PlainTextResponse(body)(scope, receive, send)


def echo_copies(routes: list[BaseRoute]) -> list[BaseRoute]:
    """Routes with the same paths, methods and kinds, answering which one was chosen."""
    out: list[BaseRoute] = []
    for position, route in enumerate(routes):
        if isinstance(route, Route):
            copy = Route(route.path, _echo(position), methods=["GET"])
            copy.methods = set(route.methods) if route.methods else None
            out.append(copy)
        elif isinstance(route, Mount):
            out.append(Mount(route.path, routes=echo_copies(list(route.routes))))
        else:
            out.append(route)
    return out


def synthetic_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/", _echo(0)),
        Route("/items", _echo(1), methods=["GET", "POST"]),
        Route("/items/{item_id:int}", _echo(2), methods=["GET"]),
        Route("/items/special", _echo(3), methods=["GET", "DELETE"]),  # after {item_id:int}
        Route("/items/{name}", _echo(4), methods=["PUT"]),
        Route("/items/{name}", _echo(5), methods=["PATCH"]),
        Route("/users/{user_id:uuid}", _echo(6), methods=["GET"]),
        Route("/users/{user_id:uuid}/sessions/", _echo(7), methods=["GET"]),  # trailing /
        Route("/files/{path:path}", _echo(8), methods=["GET"]),
        Route("/files{rest:path}", _echo(9), methods=["POST"]),  # prefix mid-segment
        Route("/x{n:int}/{id}", _echo(10), methods=["GET"]),
        Route("/x{n:int}/{id}", _echo(11), methods=["DELETE"]),
        Route("/x7/fixed", _echo(12), methods=["GET"]),
        Route("/price/{amount:float}", _echo(13), methods=["GET"]),
        Route("/raw", _RawApp(14)),  # no methods: any method is a full match
        Route("/a/b/c/d", _echo(15), methods=["GET"]),
        Route("/a/{b}/c/{d}", _echo(16), methods=["POST"]),
        Route("/{anything}/tail", _echo(17), methods=["GET"]),  # parameter first
        Mount("/static", routes=[Route("/{name}", _echo(18), methods=["GET"])]),
        Mount("/mnt/{tenant}", routes=[Route("/home", _echo(19), methods=["GET"])]),
        Mount("", routes=[Route("/fallback/{x}", _echo(20), methods=["GET", "POST"])]),
        Route("/weird{{literal", _echo(21), methods=["GET"]),  # braces that are no param
        Route("/items/{name}/", _echo(22), methods=["GET"]),
    ]
    routes.append(WebSocketRoute("/items", lambda ws: None))
    return routes


def paths_for(routes: list[BaseRoute]) -> list[str]:
    """Paths that hit each route, and near misses around them."""
    samples = {
        "int": ["7", "0", "-1", "12a"],
        "uuid": [str(uuid.UUID(int=5)), "not-a-uuid"],
        "float": ["1.5", "2", "x"],
        "path": ["", "a", "a/b/c", "a/"],
        "str": ["abc", "special", "x y", "%2F"],
        "other": ["news", "game", "games", "faq", "junk"],  # the app's own convertors
    }
    out = {"/", "", "//", "/nope", "/items/", "/ITEMS", "/a/b/c/d/", "/a/b/c", "/\n", "/items\n"}
    for route in routes:
        path = getattr(route, "path", None)
        if path is None:
            continue
        if isinstance(route, Mount):
            inner = [getattr(r, "path", "") for r in route.routes]
            templates = [path + p for p in inner] + [path, path + "/"]
        else:
            templates = [path]
        for template in templates:
            params = re.findall(r"{([a-zA-Z_]\w*)(?::(\w+))?}", template)
            choices = [samples.get(kind or "str", samples["other"]) for _, kind in params]
            for values in itertools.islice(itertools.product(*choices), 12):
                concrete = template
                for (name, kind), value in zip(params, values, strict=True):
                    spec = "{" + name + (f":{kind}" if kind else "") + "}"
                    concrete = concrete.replace(spec, value, 1)
                out.add(concrete)
                out.add(concrete + "/")
                out.add(concrete.rstrip("/") or "/")
                out.add(concrete + "/extra")
                out.add(concrete + "\n")
                out.add(concrete.upper())
                out.add(concrete.rsplit("/", 1)[0] or "/")
    return sorted(out)


async def call(
    app: Any, method: str, path: str, *, root_path: str = "", in_app: bool = False
) -> tuple[int, dict[str, str], bytes, Scope]:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
        "root_path": root_path,
        "path": root_path + path,
        "raw_path": (root_path + path).encode(),
        "query_string": b"q=1",
        "headers": [(b"host", b"testserver")],
    }
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = messages[0]
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in messages[1:])
    return start["status"], headers, body, scope


def indexed(routes: list[BaseRoute]) -> IndexedRouter:
    router = APIRouter(routes=routes)
    return IndexedRouter(router, router.app)


def allowed_methods(routes: list[BaseRoute], method: str, path: str) -> set[str]:
    """Every method of every route whose path matches: what a complete Allow lists."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    return methods


def _relative(location: str | None) -> str | None:
    """Starlette's absolute redirect as the index writes it: a path on the same server
    (never a URL built from the client's Host header), with one leading slash."""
    if location is None:
        return None
    return "/" + location.removeprefix("http://testserver").lstrip("/")


async def compare(routes: list[BaseRoute], paths: list[str], root_path: str = "") -> int:
    plain = Router(routes=routes)
    fast = indexed(routes)
    assert fast.index() is not None, "the index must cover these routes, not hand them on"
    compared = 0
    for path, method in itertools.product(paths, METHODS):
        expected = await call(plain, method, path, root_path=root_path)
        got = await call(fast, method, path, root_path=root_path)
        where = f"{method} {path!r}"
        assert got[0] == expected[0], where
        assert got[2] == expected[2], where
        # The same target; the index writes it as a path (a mounted router, which answers
        # for itself, still writes Starlette's URL: the request middleware makes it a path).
        assert _relative(got[1].get("location")) == _relative(expected[1].get("location")), where
        if got[1].get("location") != expected[1].get("location"):
            assert got[1]["location"].startswith("/"), where
        assert got[3].get("route") is expected[3].get("route"), where
        assert got[3].get("path_params") == expected[3].get("path_params"), where
        if expected[0] == 405:
            # Starlette names the first matching route's methods; the index names all.
            listed = set(got[1]["allow"].split(", "))
            assert set(expected[1]["allow"].split(", ")) <= listed, where
            at_this_level = allowed_methods(routes, method, path)
            if at_this_level:  # else a mounted router answered, as before
                assert listed == at_this_level, where
            else:
                assert got[1]["allow"] == expected[1]["allow"], where
        compared += 1
    return compared


async def test_synthetic_routes_match_starlette() -> None:
    routes = synthetic_routes()
    assert await compare(routes, paths_for(routes)) > 2000


async def test_synthetic_routes_under_a_root_path() -> None:
    routes = synthetic_routes()
    assert await compare(routes, paths_for(routes)[:80], root_path="/prefix") > 500


async def test_without_redirect_slashes() -> None:
    routes = synthetic_routes()
    plain = Router(routes=routes, redirect_slashes=False)
    router = APIRouter(routes=routes, redirect_slashes=False)
    fast = IndexedRouter(router, router.app)
    for path in ["/items/", "/users/" + str(uuid.UUID(int=5)) + "/sessions", "/a/b/c/d/"]:
        expected = await call(plain, "GET", path)
        got = await call(fast, "GET", path)
        assert (got[0], got[2]) == (expected[0], expected[2]) == (404, b"Not Found")


def real_routes() -> list[BaseRoute]:
    app = create_app(Settings(database_url="postgresql://unused@127.0.0.1:1/unused"))
    return list(app.router.routes)


async def test_real_app_routes_match_starlette() -> None:
    routes = echo_copies(real_routes())
    assert len(routes) > 50
    assert await compare(routes, paths_for(routes)) > 5000


async def test_real_app_routes_with_many_more_match_starlette() -> None:
    extra: list[BaseRoute] = []
    for i in range(300):
        extra.append(Route(f"/api/v1/x{i}/{{id}}", _echo(1000 + i), methods=["GET"]))
        extra.append(Route(f"/api/v1/x{i}", _echo(2000 + i), methods=["GET", "POST"]))
    routes = echo_copies(real_routes()) + extra
    paths = [*paths_for(routes[:80]), "/api/v1/x17/abc", "/api/v1/x299", "/api/v1/x300/a"]
    assert await compare(routes, paths) > 3000


async def test_lookup_does_not_try_unrelated_routes() -> None:
    extra = [Route(f"/api/v1/x{i}/{{id}}", _echo(i), methods=["GET"]) for i in range(300)]
    routes = echo_copies(real_routes()) + extra
    index = RouteIndex.build(routes)
    assert index is not None
    tried = index.candidates("/api/v1/me", "GET")
    assert len(tried) <= 10
    assert any(getattr(r, "path", None) == "/api/v1/me" for r in tried)
    assert [getattr(r, "path", None) for r in index.candidates("/api/v1/x5/abc", "GET")][-1] == (
        "/api/v1/x5/{id}"
    )


async def test_routes_added_later_are_routed() -> None:
    # Without the catch-all mount, which would take /late/1 before a route added after it.
    routes = [r for r in synthetic_routes() if getattr(r, "path", None) != ""]
    router = APIRouter(routes=routes)
    fast = IndexedRouter(router, router.app)
    assert (await call(fast, "GET", "/late/1"))[0] == 404
    router.add_route("/late/{n}", _echo(99), methods=["GET"])
    status, _, body, scope = await call(fast, "GET", "/late/1")
    assert status == 200 and b'"position":99' in body
    assert scope["route"].path == "/late/{n}"
    router.routes.insert(0, Route("/items", _echo(98), methods=["GET"]))
    assert b'"position":98' in (await call(fast, "GET", "/items"))[2]
    router.routes = [Route("/only", _echo(97), methods=["GET"])]  # a new list altogether
    assert (await call(fast, "GET", "/items"))[0] == 404
    assert b'"position":97' in (await call(fast, "GET", "/only"))[2]
    del router.routes[0]
    assert (await call(fast, "GET", "/only"))[0] == 404


async def test_routes_the_index_cannot_judge_go_to_the_router() -> None:
    routes: list[BaseRoute] = [
        Host("api.example.com", app=Router(routes=[Route("/h", _echo(1))])),
        Route("/items", _echo(2), methods=["GET"]),
    ]
    fast = indexed(routes)
    assert fast.index() is None
    status, _, body, _ = await call(fast, "GET", "/items")
    assert status == 200 and b'"position":2' in body


async def test_websocket_and_lifespan_go_to_the_router() -> None:
    seen: list[str] = []

    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    fast = IndexedRouter(APIRouter(routes=synthetic_routes()), fallback)
    await fast({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    await fast({"type": "websocket", "path": "/items"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan", "websocket"]


def test_install_is_idempotent() -> None:
    app = FastAPI()
    first = install_route_index(app)
    assert install_route_index(app) is first
    assert app.router.middleware_stack is first


# --- the real app, through its middleware and error handlers ----------------------------


async def test_405_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    # GET, PATCH and DELETE /api/v1/me are three routes; Starlette's Allow named only the
    # first one's methods.
    response = await client.post("/api/v1/me")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    # HEAD too: the request middleware answers it as GET without the body.
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH", "DELETE"}
    assert response.json()["type"] == "urn:gameportal:problem:method-not-allowed"


async def test_404_and_slash_redirects(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:gameportal:problem:not-found"
    redirect = await client.get("/api/v1/me/", follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["location"].endswith("/api/v1/me")
    bad_uuid = await client.get("/api/v1/admin/users/not-a-uuid")
    assert bad_uuid.status_code in (401, 422)  # matched its route: auth or validation


async def test_path_parameters_reach_the_endpoint(client: httpx.AsyncClient) -> None:
    data = await register(client)
    sessions = (await client.get("/api/v1/me/sessions", headers=bearer(data))).json()
    own = sessions["items"][0]["id"]
    other = str(uuid.UUID(int=7))
    assert (
        await client.delete(f"/api/v1/me/sessions/{other}", headers=bearer(data))
    ).status_code == 404
    assert (
        await client.delete(f"/api/v1/me/sessions/{own}", headers=bearer(data))
    ).status_code == 204


async def test_metrics_label_plain_routes_by_template(client: httpx.AsyncClient) -> None:
    # /metrics is a plain Starlette route: FastAPI's router never set scope["route"] for
    # it, so its requests were counted as "<unmatched>".
    await client.get("/metrics", headers=METRICS_AUTH)
    text = (await client.get("/metrics", headers=METRICS_AUTH)).text
    assert 'route="/metrics"' in text
