"""Pages in Chromium: the player demo as the app serves it (/play/, under its CSP), a
published news item in the player's language with its image loading on another origin,
and the API docs rendering their operations with no network beyond loopback."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.browser.conftest import LiveServer, NewContext, Screenshot, page_errors
from tests.browser.demo import open_demo, register_in, serve_demo
from tests.browser.site import StaticSite, wait_until
from tests.content.images import png
from tests.factories import bearer, user_with_roles


def _failed_loads_only(errors: list[str]) -> list[str]:
    """What a page logged besides failed loads (the 401 of a start-up refresh without a
    session): uncaught exceptions, CSP violations."""
    return [e for e in errors if "Failed to load resource" not in e]


async def test_the_demo_as_the_app_serves_it_runs_under_a_strict_csp(
    live_server: LiveServer, new_context: NewContext, screenshot: Screenshot
) -> None:
    context = await new_context()
    page = await context.new_page()
    response = await page.goto(f"{live_server.url}/play")
    assert response is not None and page.url == f"{live_server.url}/play/"
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    await page.locator("#signed-out").wait_for()
    await screenshot(page, "signed-out")
    await register_in(page, language="de")
    await screenshot(page, "signed-in")
    assert _failed_loads_only(page_errors(page)) == []


async def _news(
    api: httpx.AsyncClient, editor: dict[str, str], title: str, locale: str, source: str, media: str
) -> None:
    created = await api.post(
        "/api/v1/content",
        headers=editor,
        json={
            "type": "NEWS",
            "title": title,
            "locale": locale,
            "content": source,
            "media": [media],
        },
    )
    assert created.status_code == 201, created.text
    published = await api.post(
        f"/api/v1/content/{created.json()['id']}/publish", headers=editor, json={}
    )
    assert published.status_code == 200, published.text


async def test_news_in_the_players_language_with_its_image_on_another_origin(
    live_server: LiveServer,
    queue_worker: None,
    second_origin: StaticSite,
    new_context: NewContext,
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    screenshot: Screenshot,
) -> None:
    editor = bearer(await user_with_roles(api, db, "editor"))
    uploaded = await api.post(
        "/api/v1/media",
        headers=editor,
        files={"file": ("map.png", png(640, 320), "image/png")},
    )
    assert uploaded.status_code == 201, uploaded.text
    media = uploaded.json()["id"]

    async def ready() -> bool:
        found = await api.get(f"/api/v1/media/{media}", headers=editor)
        return bool(found.json()["status"] == "READY")

    await wait_until(ready, within=20)
    # The editor links the image by path, as the console shows it.
    image = f"![Die neue Wüstenkarte](/api/v1/media/{media}/file)"
    await _news(api, editor, "Saison 3 ist da", "de", f"Neue Karten.\n\n{image}", media)
    await _news(api, editor, "Season 3 is live", "en", "New maps.", media)

    page = await open_demo(await new_context(), serve_demo(second_origin, live_server.url))
    await register_in(page, language="de")
    article = page.locator("#news article")
    await article.first.wait_for()
    assert await article.locator("h3").all_text_contents() == ["Saison 3 ist da"]
    img = article.locator("img")
    src = await img.get_attribute("src")
    assert src == f"{live_server.url}/api/v1/media/{media}/file"
    await page.wait_for_function(
        "() => { const i = document.querySelector('#news img'); return i && i.complete }"
    )
    size = await img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert size == [640, 320]
    assert await img.get_attribute("alt") == "Die neue Wüstenkarte"
    await screenshot(page, "news")
    assert _failed_loads_only(page_errors(page)) == []


async def _offline(context: Any) -> list[str]:
    """Refuses every request beyond loopback, as a machine without internet; returns the
    list of what was refused."""
    refused: list[str] = []

    async def only_loopback(route: Any) -> None:
        host = route.request.url.split("/")[2].split(":")[0]
        if host in ("127.0.0.1", "localhost"):
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort("internetdisconnected")

    await context.route("**/*", only_loopback)
    return refused


async def test_the_api_docs_render_their_operations_offline(
    live_server: LiveServer, new_context: NewContext, api: httpx.AsyncClient, screenshot: Screenshot
) -> None:
    spec = (await api.get("/openapi.json")).json()
    operations = [
        op["operationId"]
        for path in spec["paths"].values()
        for method, op in path.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    context = await new_context(viewport={"width": 1280, "height": 900})
    refused = await _offline(context)

    page = await context.new_page()
    await page.goto(f"{live_server.url}/docs")
    await page.locator(".opblock").first.wait_for()
    assert await page.locator(".opblock").count() == len(operations)
    login = page.locator('.opblock[id$="-auth_login"]')
    assert "/api/v1/auth/login" in (await login.locator(".opblock-summary-path").inner_text())
    await login.locator(".opblock-summary").click()  # opens it: its example body shows
    await login.locator(".body-param__example, .opblock-body pre").first.wait_for()
    await screenshot(page, "swagger", full_page=False)
    assert page_errors(page) == []

    # ReDoc (3) lists each tag's operations, linked by operationId, and shows one when
    # its link is followed. (It asks a CDN for a logo, which the CSP and the missing
    # network refuse: its console is not checked.)
    auth = [
        op["operationId"]
        for path in spec["paths"].values()
        for op in path.values()
        if isinstance(op, dict) and "auth" in op.get("tags", [])
    ]
    redoc = await context.new_page()
    await redoc.goto(f"{live_server.url}/redoc")
    link = redoc.locator('a[href="#/auth/auth_login"]')
    await link.wait_for(timeout=20_000)
    assert "/api/v1/auth/login" in await link.inner_text()
    listed = await redoc.locator('a[href^="#/auth/"]').evaluate_all(
        "links => links.map(a => a.getAttribute('href').split('/').pop())"
    )
    assert sorted(set(listed)) == sorted(auth)
    await link.click()
    summary = spec["paths"]["/api/v1/auth/login"]["post"]["summary"]
    await redoc.get_by_role("heading", name=summary).first.wait_for()
    await screenshot(redoc, "redoc", full_page=False)
    assert all(not url.startswith(live_server.url) for url in refused)
