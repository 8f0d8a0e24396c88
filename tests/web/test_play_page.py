"""The player demo's files at /play/, over HTTP (tests/browser/ runs the page itself):
static files, each under the demo's CSP, no inline script or style, every file the page
or a module names served from the folder, and the API's public URL (and a media CDN)
allowed where the page calls it or loads images."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from gameportal.app import create_app
from gameportal.web.play import PLAY_DIR
from tests.conftest import make_settings
from tests.web.html import assert_no_inline_code, csp, parse

_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}


async def test_play_is_the_demo_folder_under_its_csp(client: httpx.AsyncClient) -> None:
    moved = await client.get("/play")
    assert moved.status_code == 308 and moved.headers["location"] == "/play/"
    page = await client.get("/play/")
    assert page.status_code == 200
    assert page.headers["content-type"] == _TYPES["html"]
    assert page.headers["referrer-policy"] == "same-origin"  # keeps Origin on its POSTs
    assert page.headers["cache-control"] == "no-cache"
    assert_no_inline_code(page)
    policy = csp(page)
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'none'"] and policy["worker-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]

    parsed = parse(page)
    linked = [e.attrs["src"] for e in parsed.find("script")]
    linked += [e.attrs["href"] for e in parsed.find("link")]
    # Modules and the service worker, named by the page's scripts.
    for module in PLAY_DIR.glob("*.js"):
        linked += re.findall(r'from "\./([\w.-]+)"', module.read_text())
        linked += re.findall(r'new URL\("([\w.-]+)", import\.meta\.url\)', module.read_text())
    assert {"app.js", "api.js", "stream.js", "push.js", "sw.js", "play.css"} <= set(linked)
    for name in set(linked):
        served = await client.get(f"/play/{name}")
        assert served.status_code == 200, name
        assert served.headers["content-type"] == _TYPES[name.rsplit(".", 1)[-1]], name
        # The service worker runs under the policy its script is served with.
        assert served.headers["content-security-policy"] == page.headers["content-security-policy"]
    assert (await client.get("/play/nothing.js")).status_code == 404
    assert (await client.get("/play/../config.py")).status_code == 404


async def test_the_csp_allows_the_public_api_url_and_the_media_cdn(database_url: str) -> None:
    app: FastAPI = create_app(
        make_settings(
            database_url,
            public_base_url="https://api.portal.test/base/",
            media_public_url="https://cdn.portal.test/media/",
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as client:
        page = await client.get("/play/")
        moved = await client.get("/play")
    policy = csp(page)
    assert policy["connect-src"] == ["'self'", "https://api.portal.test"]
    assert policy["img-src"] == [
        "'self'",
        "data:",
        "https://api.portal.test",
        "https://cdn.portal.test",
    ]
    # Behind a proxy serving the app under /base, the page's own address is there.
    assert moved.headers["location"] == "/base/play/"


@pytest.mark.parametrize("name", ["index.html", "app.js", "sw.js"])
def test_the_demo_files_name_no_other_origin(name: str) -> None:
    """Nothing from a CDN: a copy of the folder works wherever it is put."""
    text = (PLAY_DIR / name).read_text()
    assert not re.search(r"https?://", text.replace("https://api.example.com/", "")), name
