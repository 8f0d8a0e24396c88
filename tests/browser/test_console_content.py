"""The console's content and media pages in Chromium, against a live server and worker:
an editor signs in, drops an image on the media library and waits for it to be READY,
writes a news item with it (the live preview showing it), publishes it, and the public
API serves it; two editors edit the same item, and the second sees the conflict and
keeps their text. A screenshot of each page is kept (tests/artifacts/browser)."""

from __future__ import annotations

import base64
import io
from typing import Any

import asyncpg
import httpx

from tests.browser.conftest import LiveServer, NewContext, Screenshot, page_errors, scripts_ran
from tests.factories import STRONG_PASSWORD, grant_roles, register

VIEWPORT = {"width": 1280, "height": 900}


def banner(width: int = 1200, height: int = 675) -> bytes:
    """A season banner: a dusk gradient over dunes (the screenshots show it)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / height
        draw.line(
            [(0, y), (width, y)], fill=(int(40 + 200 * t), int(30 + 90 * t), int(90 - 40 * t))
        )
    draw.ellipse([width * 0.62, height * 0.18, width * 0.78, height * 0.46], fill=(255, 214, 120))
    for i, shade in enumerate(((120, 70, 40), (160, 96, 52), (196, 128, 70))):
        top = height * (0.55 + 0.12 * i)
        draw.polygon(
            [(0, height), (0, top), (width * 0.35, top - 60), (width * 0.7, top + 20),
             (width, top - 40), (width, height)],
            fill=shade,
        )  # fmt: skip
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def editor_account(api: httpx.AsyncClient, db: asyncpg.Pool, name: str) -> dict[str, Any]:
    auth = await register(api, name=name)
    await grant_roles(db, auth["user"]["id"], "editor")
    return auth


async def sign_in(context: Any, server: LiveServer, email: str) -> Any:
    page = await context.new_page()
    await page.goto(f"{server.url}/console/login")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password").fill(STRONG_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{server.url}/console")
    return page


async def drop_file(page: Any, selector: str, name: str, data: bytes, mime: str) -> None:
    """Drags a file from the desktop onto `selector`, as a person would."""
    await scripts_ran(page)  # the drop handler is the module script's
    await page.evaluate(
        """([selector, name, b64, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            const zone = document.querySelector(selector);
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true,
                                                         dataTransfer: transfer }));
            }
        }""",
        [selector, name, base64.b64encode(data).decode(), mime],
    )


async def shot(screenshot: Screenshot, page: Any, label: str) -> None:
    # From the top: a full-page shot of a scrolled page draws the sticky top bar midway.
    await page.evaluate("window.scrollTo(0, 0)")
    await screenshot(page, label)


def nav(page: Any, name: str) -> Any:
    return page.get_by_role("navigation", name="Console pages").get_by_role("link", name=name)


def real_errors(page: Any) -> list[str]:
    # A refused request (the 409 of a conflicting save) shows as a failed load; nothing
    # else may appear: no uncaught exception, no CSP violation.
    return [e for e in page_errors(page) if "Failed to load resource" not in e]


async def test_an_editor_publishes_a_news_item_with_an_uploaded_image(
    live_server: LiveServer,
    queue_worker: None,
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    new_context: NewContext,
    screenshot: Screenshot,
) -> None:
    editor = await editor_account(api, db, "Ada Editor")
    context = await new_context(viewport=VIEWPORT)
    page = await sign_in(context, live_server, editor["user"]["email"])

    await nav(page, "Media library").click()
    await page.get_by_role("heading", name="Media library").wait_for()
    await drop_file(page, "[data-dropzone]", "season-3.png", banner(), "image/png")
    row = page.locator("#media-rows tr", has_text="season-3.png")
    await row.wait_for()
    # Processing is followed by the row itself until the worker is done.
    await row.locator(".badge-ready").wait_for(timeout=30_000)
    await row.locator("img.thumb").wait_for()
    assert await row.locator("img.thumb").evaluate("img => img.naturalWidth") > 0
    await shot(screenshot, page, "media-library")

    await row.get_by_role("link", name="season-3.png").click()
    await page.get_by_role("heading", name="Renditions").wait_for()
    assert await page.locator("img.media-preview").evaluate("img => img.naturalWidth") > 0
    await shot(screenshot, page, "media-detail")

    await nav(page, "Content").click()
    await page.get_by_role("link", name="New item").click()
    await page.wait_for_url(f"{live_server.url}/console/content/new")
    await scripts_ran(page)  # the live preview is htmx's
    await page.get_by_label("Title").fill("Season 3 is live")
    await page.get_by_label("Type").select_option("NEWS")
    text = page.get_by_label("Text", exact=True)
    await text.fill(
        "Season 3 brings new maps, **new rewards** and a ranked ladder.\n\n"
        "## What's new\n\n- Three desert maps\n- Weekly ranked seasons\n"
        "- Cosmetics for the top 100\n\n"
    )
    await page.locator("[data-preview-html] strong", has_text="new rewards").wait_for()
    tile = page.locator(".media-tile", has_text="season-3.png")
    await tile.get_by_role("button", name="Insert season-3.png into the text").click()
    assert await tile.get_by_role("checkbox").is_checked()
    assert "![season-3](/api/v1/media/" in await text.input_value()
    preview_image = page.locator("[data-preview-html] img")
    await preview_image.wait_for()
    assert await preview_image.evaluate("img => img.naturalWidth") == 1200
    await shot(screenshot, page, "editor-new")

    await page.get_by_role("button", name="Create draft").click()
    await page.get_by_text("Draft “Season 3 is live” created.").wait_for()
    await page.get_by_role("button", name="Publish now").click()
    await page.get_by_text("Published.", exact=True).wait_for()
    await shot(screenshot, page, "editor-published")

    public = await api.get("/api/v1/content/news/season-3-is-live")
    assert public.status_code == 200, public.text
    item = public.json()
    assert "<strong>new rewards</strong>" in item["html"]
    media_id = item["media"][0]
    image_url = f"{live_server.url}/api/v1/media/{media_id}/file"
    assert f'src="{image_url}"' in item["html"]
    served = await api.get(image_url)
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"

    await nav(page, "Content").click()
    await page.locator("a.item-title", has_text="Season 3 is live").wait_for()
    await shot(screenshot, page, "content-list")

    # On a tablet: one column, nothing wider than the screen.
    await page.set_viewport_size({"width": 768, "height": 1024})
    for label, link in (("content-list-tablet", None), ("editor-tablet", "Season 3 is live")):
        if link:
            await page.locator("a.item-title", has_text=link).click()
            await page.get_by_role("heading", name="Preview").wait_for()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 768, label
        await shot(screenshot, page, label)
    await nav(page, "Media library").click()
    await page.locator("#media-rows tr").first.wait_for()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 768
    await shot(screenshot, page, "media-library-tablet")
    assert real_errors(page) == []


async def test_two_editors_save_the_same_item_and_the_second_keeps_their_text(
    live_server: LiveServer,
    api: httpx.AsyncClient,
    db: asyncpg.Pool,
    new_context: NewContext,
    screenshot: Screenshot,
) -> None:
    ada = await editor_account(api, db, "Ada Editor")
    bob = await editor_account(api, db, "Bob Writer")
    created = await api.post(
        "/api/v1/content",
        json={"type": "NEWS", "title": "Patch 2.0", "content": "Intro\nOld line\nOutro"},
        headers={"Authorization": f"Bearer {ada['accessToken']}"},
    )
    assert created.status_code == 201, created.text
    path = f"{live_server.url}/console/content/{created.json()['id']}"
    ada_page = await sign_in(
        await new_context(viewport=VIEWPORT), live_server, ada["user"]["email"]
    )
    bob_page = await sign_in(
        await new_context(viewport=VIEWPORT), live_server, bob["user"]["email"]
    )
    await ada_page.goto(path)
    await bob_page.goto(path)

    await ada_page.get_by_label("Text", exact=True).fill("Intro\nAda's line\nOutro")
    await ada_page.get_by_role("button", name="Save", exact=True).click()
    await ada_page.get_by_text("Saved as version 2.").wait_for()

    bobs = "Intro\nBob's careful line\nOutro"
    await bob_page.get_by_label("Text", exact=True).fill(bobs)
    await bob_page.get_by_role("button", name="Save", exact=True).click()
    alert = bob_page.get_by_role("alert").filter(has_text="someone else saved this item first")
    await alert.wait_for()
    assert "Ada Editor" in await alert.inner_text()
    assert await bob_page.get_by_label("Text", exact=True).input_value() == bobs
    assert await bob_page.get_by_label("Their text (version 2)").input_value() == (
        "Intro\nAda's line\nOutro"
    )
    await bob_page.locator(".diff-add", has_text="Bob's careful line").wait_for()
    await bob_page.locator(".diff-del", has_text="Ada's line").wait_for()
    await shot(screenshot, bob_page, "conflict")

    await bob_page.get_by_role("button", name="Save mine (replaces theirs)").click()
    await bob_page.get_by_text("Saved as version 3.").wait_for()
    stored = await api.get(
        created.headers["location"], headers={"Authorization": f"Bearer {bob['accessToken']}"}
    )
    assert stored.json()["content"] == bobs

    await bob_page.get_by_role("link", name="Revisions").click()
    await bob_page.get_by_role("link", name="View changes of revision 2").click()
    await bob_page.locator(".diff-add", has_text="Ada's line").wait_for()
    await shot(screenshot, bob_page, "revision")
    assert real_errors(ada_page) == [] and real_errors(bob_page) == []
