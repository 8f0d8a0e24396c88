"""The web pages' part of the app: static files under /static, the account pages, the
API documentation pages, and the player demo under /play/."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.routing import Mount

from gameportal.config import Settings
from gameportal.web.account import account_pages_router, unsubscribe_redirect_router
from gameportal.web.assets import STATIC_PREFIX, Assets, StaticAssets
from gameportal.web.docs import docs_router
from gameportal.web.pages import Pages
from gameportal.web.play import play_routes


def install_web(app: FastAPI, settings: Settings) -> None:
    """Add the pages to `app` (made with docs_url=None and redoc_url=None: these replace
    FastAPI's CDN-loading documentation pages)."""
    # The pages link their files on the public base URL's path: behind a proxy that
    # serves the app under a prefix (and strips it), `/static` is at `<prefix>/static`.
    base_path = urlsplit(settings.public_base_url).path.rstrip("/")
    assets = Assets(prefix=base_path + STATIC_PREFIX)
    app.state.pages = Pages(assets)
    app.state.docs_openapi_url = base_path + (app.openapi_url or "")
    # Routes added flat, as app.py does for the API's routers (see _add_routes there).
    app.router.routes.extend(
        [*account_pages_router.routes, *unsubscribe_redirect_router.routes, *docs_router.routes]
    )
    app.router.routes.append(Mount(STATIC_PREFIX, app=StaticAssets(assets), name="static"))
    app.router.routes.extend(play_routes(settings, base_path))  # the player demo, /play/
