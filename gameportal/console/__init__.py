"""The operator console under /console: server-rendered pages for editors, marketers and
admins, calling the same domain services as the API. The frame (routers, navigation,
roles, CSRF, rendering) and the recipe for adding a domain's pages are in frame.py."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.responses import Response

from gameportal.console.frame import (
    ROLE_DEPENDENCIES,
    STAFF_ROLES,
    ConsoleRouter,
    console_router,
    error_page,
    require_console_role,
)
from gameportal.identity.service import Principal

# Modules of this package that are not a domain's pages.
_FRAME_MODULES = {"frame", "auth"}


def page_routers() -> list[ConsoleRouter]:
    """The sign-in router, then every module of this package with a `router`: a domain
    adds its pages by adding its module (frame.py says how), not by editing a list."""
    from gameportal.console import auth

    routers: list[ConsoleRouter] = [auth.router]
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name in _FRAME_MODULES or module.name.startswith("_"):
            continue
        found = getattr(importlib.import_module(f"{__name__}.{module.name}"), "router", None)
        if isinstance(found, ConsoleRouter):
            routers.append(found)
    return routers


def _calls(dependant: Dependant) -> Iterator[object]:
    pending = [dependant]
    while pending:
        current = pending.pop()
        yield current.call
        pending.extend(current.dependencies)


_not_found = console_router()
_AnyStaff = Annotated[Principal, Depends(require_console_role(*STAFF_ROLES))]


@_not_found.get("/{rest:path}")
async def no_such_page(request: Request, staff: _AnyStaff) -> Response:
    """Any other address under /console, for signed-in staff: a 404 page in the frame."""
    return error_page(request, 404, "Page not found", "There is no console page at this address.")


def install_console(app: FastAPI) -> None:
    """Add the console's routes to `app` (flat, as app.py adds the API's). Every route but
    sign-in and sign-out must take a require_console_role dependency: a page nobody
    decided the roles of is refused here, when the app is built."""
    from gameportal.console import auth

    routes: list[APIRoute] = []
    for router in page_routers():
        for route in router.routes:
            assert isinstance(route, APIRoute)
            guarded = any(call in ROLE_DEPENDENCIES for call in _calls(route.dependant))
            if not guarded and route.endpoint not in auth.UNGUARDED:
                raise RuntimeError(
                    f"console route {sorted(route.methods or ())} {route.path} has no "
                    "require_console_role(...) dependency"
                )
            routes.append(route)
    app.router.routes.extend(routes)
    app.router.routes.extend(_not_found.routes)  # last: it matches any path
