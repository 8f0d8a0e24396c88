"""/docs and /redoc work offline: every script, style and font they load is served by the
app from the vendored releases, under a CSP that allows this origin only; and each
documented error status shows an example of its own."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import httpx
from fastapi import FastAPI

from gameportal.web.vendor import RELEASES, SUMS_FILE, VENDOR_DIR, sha256_lines
from tests.web.html import assert_no_inline_code, csp, parse

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


async def _local_assets(client: httpx.AsyncClient, path: str) -> list[str]:
    """The URLs a docs page loads, each checked to be on this origin and served."""
    page = await client.get(path)
    assert page.status_code == 200
    parsed = parse(page)
    urls = [e.attrs["src"] for e in parsed.find("script")]
    urls += [e.attrs["href"] for e in parsed.find("link")]
    assert urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{path} loads {url}"
        served = await client.get(url)
        assert served.status_code == 200, url
        suffix = url.split("?")[0].rsplit(".", 1)[-1]
        assert served.headers["content-type"] == _TYPES["." + suffix], url
        assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "cdn." not in page.text and "https://" not in page.text
    return urls


async def test_swagger_ui_loads_only_its_own_files(client: httpx.AsyncClient) -> None:
    urls = await _local_assets(client, "/docs")
    names = {url.split("?")[0] for url in urls}
    assert names == {
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/vendor/swagger-ui/swagger-ui.css",
        "/static/docs/swagger.css",
        "/static/docs/swagger-init.js",
        "/static/favicon.svg",
    }
    page = await client.get("/docs")
    assert_no_inline_code(page)
    policy = csp(page)
    assert policy["script-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert parse(page).one("div", id="swagger-ui").attrs["data-openapi-url"] == "/openapi.json"
    init = await client.get(next(url for url in urls if "swagger-init" in url))
    assert "SwaggerUIBundle(" in init.text


async def test_redoc_loads_only_its_own_files_and_styles_by_nonce(
    client: httpx.AsyncClient,
) -> None:
    urls = await _local_assets(client, "/redoc")
    assert {url.split("?")[0] for url in urls} == {
        "/static/vendor/redoc/redoc.standalone.js",
        "/static/docs/redoc.css",
        "/static/favicon.svg",
    }
    first, second = await client.get("/redoc"), await client.get("/redoc")
    assert_no_inline_code(first)
    nonces = []
    for page in (first, second):
        policy = csp(page)
        assert policy["script-src"] == ["'self'"]
        [nonce] = [v for v in policy["style-src"] if v.startswith("'nonce-")]
        assert policy["style-src"] == ["'self'", nonce]
        meta = parse(page).one("meta", property="csp-nonce")
        assert f"'nonce-{meta.attrs['content']}'" == nonce
        nonces.append(nonce)
    assert nonces[0] != nonces[1]
    redoc = parse(first).one("redoc")
    assert redoc.attrs["spec-url"] == "/openapi.json"
    assert redoc.attrs["disable-telemetry"] == "true"


async def test_the_old_cdn_pages_are_gone(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs/oauth2-redirect")).status_code == 404


def test_the_vendored_files_are_the_releases_named_with_their_licences() -> None:
    assert SUMS_FILE.read_text().splitlines() == sha256_lines()
    for release in RELEASES:
        folder = VENDOR_DIR / release.folder
        assert (folder / "LICENSE").is_file(), release
        for name in release.files:
            assert (folder / name.rsplit("/", 1)[-1]).is_file()
    bundle = (VENDOR_DIR / "redoc" / "redoc.standalone.js").read_text()
    assert "Version: 3.0.1" in bundle[:400]
    swagger = (VENDOR_DIR / "swagger-ui" / "swagger-ui-bundle.js").read_bytes()
    assert hashlib.sha256(swagger).hexdigest() in SUMS_FILE.read_text()


# --- examples per status ---------------------------------------------------------------------


def _error_responses(spec: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if re.fullmatch(r"[45]\d\d", status):
                    found.append((method, path, status, response))
    return found


async def test_each_error_status_documents_an_example_of_its_own(app: FastAPI) -> None:
    spec = app.openapi()
    responses = _error_responses(spec)
    assert len(responses) > 100
    wrong = []
    for method, path, status, response in responses:
        for media_type, entry in response.get("content", {}).items():
            example = entry.get("example")
            if example is None or example.get("status") != int(status):
                wrong.append((method.upper(), path, status, media_type, example))
    assert not wrong, wrong[:10]
    me = spec["paths"]["/api/v1/me"]["get"]["responses"]
    unauthorized = me["401"]["content"]["application/problem+json"]["example"]
    internal = me["500"]["content"]["application/problem+json"]["example"]
    assert unauthorized["type"].endswith(":unauthorized") and "errors" not in unauthorized
    assert internal["type"].endswith(":internal-error") and "errors" not in internal


async def test_behind_a_path_prefix_pages_link_their_files_under_it(database_url: str) -> None:
    from gameportal.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(database_url, public_base_url="https://example.com/portal/"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            # The proxy strips /portal: the app answers on its own paths.
            docs = parse(await client.get("/docs"))
            assert (
                docs.one("div", id="swagger-ui").attrs["data-openapi-url"] == "/portal/openapi.json"
            )
            for script in docs.find("script"):
                assert script.attrs["src"].startswith("/portal/static/")
                served = await client.get(script.attrs["src"].removeprefix("/portal"))
                assert served.status_code == 200
            page = parse(await client.get("/unsubscribe", params={"token": "x"}))
            assert (
                page.one("link", rel="stylesheet")
                .attrs["href"]
                .startswith("/portal/static/site.css?v=")
            )
