"""The player demo at /play/: the folder static/play (static HTML, ES modules and a service
worker, no build step) served as it is, under a CSP that allows scripts from this origin
only. It is the example a front-end developer copies to their own site, where the same
files work once its `<meta name="gameportal-api">` names the API (README, Browser apps)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gameportal.config import Settings
from gameportal.web.assets import REVALIDATE, STATIC_DIR

PLAY_DIR = STATIC_DIR / "play"
PLAY_PATH = "/play"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def play_csp(settings: Settings) -> str:
    """The demo's policy: scripts, styles and its service worker from this origin; calls
    to the API (this origin, or the public base URL where a proxy serves it under another
    name); images from there too, and from the media CDN or bucket where media live."""
    api = _origin(settings.public_base_url)
    media = [
        _origin(settings.media_public_url),
        _origin(settings.s3_endpoint_url) if settings.media_storage == "s3" else None,
    ]
    connect = " ".join(dict.fromkeys(["'self'", *filter(None, [api])]))
    images = " ".join(dict.fromkeys(["'self'", "data:", *filter(None, [api, *media])]))
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {images}",
            f"connect-src {connect}",
            "worker-src 'self'",
            "manifest-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


class PlayFiles(StaticFiles):
    """The demo's files with its CSP; revalidated on every use (`ETag`), so a change is
    seen at once (the files are small and link each other by plain relative URLs)."""

    def __init__(self, csp: str, directory: Path = PLAY_DIR) -> None:
        super().__init__(directory=directory, html=True)
        self.csp = csp

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        kind = _TYPES.get(Path(path or "index.html").suffix.lower())
        if kind and response.status_code == 200:
            response.headers["content-type"] = kind
        response.headers["content-security-policy"] = self.csp
        response.headers["cache-control"] = REVALIDATE
        # Not the API's `no-referrer`: under it a browser sends `Origin: null` with the
        # page's own POSTs, which the CSRF check of browser session mode refuses.
        response.headers["referrer-policy"] = "same-origin"
        return response


def play_routes(settings: Settings, base_path: str) -> list[BaseRoute]:
    """/play/ (the folder), and /play sent there: the page links its files relatively."""

    async def to_folder(request: Request) -> Response:
        return RedirectResponse(f"{base_path}{PLAY_PATH}/", status_code=308)

    return [
        Route(PLAY_PATH, to_folder, methods=["GET", "HEAD"], include_in_schema=False),
        Mount(PLAY_PATH, app=PlayFiles(play_csp(settings)), name="play"),
    ]
