"""The media library: uploads (a plain form, or a script's request answered with the new
item's fragment), the status fragment each item polls until a real worker has processed
it, renditions, where a file is used, delete and its refusal explained; who may use it."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.console.conftest import ConsoleClients
from tests.console.support import ORIGIN, csrf_of, post_form, signed_in, text_of
from tests.content.conftest import content_worker_running
from tests.content.images import pixel_bomb, png
from tests.factories import bearer
from tests.notifications.support import wait_for
from tests.web.html import assert_no_inline_code, csp, parse


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, object]:
    return {"media_dir": tmp_path / "media", "media_extra_types": ["application/pdf"]}


@pytest.fixture
async def worker(app: FastAPI, database_url: str) -> AsyncIterator[None]:
    async with content_worker_running(app, database_url):
        yield


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def upload(
    browser: httpx.AsyncClient,
    token: str,
    data: bytes,
    name: str,
    mime: str,
    *,
    script: bool = False,
    **fields: str,
) -> httpx.Response:
    headers = {"Origin": ORIGIN}
    if script:  # as editorial.js sends it: the token in a header, asking for a fragment
        headers.update({"HX-Request": "true", "X-CSRF-Token": token})
    else:
        fields["csrf_token"] = token
    return await browser.post(
        "/console/media/upload", files={"file": (name, data, mime)}, data=fields, headers=headers
    )


def polls(fragment: httpx.Response) -> str | None:
    """The address a fragment asks for itself again at, if it is still processing."""
    found = re.search(r'hx-get="([^"]+/status\?view=[a-z]+)"', fragment.text)
    return found.group(1).replace("&amp;", "&") if found else None


def words(response: httpx.Response) -> str:
    """A page's or a fragment's visible text, whitespace folded."""
    if "<body" in response.text:
        return text_of(response)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.text)).split())


async def settled(browser: httpx.AsyncClient, url: str, **params: Any) -> httpx.Response:
    """Polls the status fragment, as htmx would, until it stops asking for itself."""
    last: list[httpx.Response] = []

    async def done() -> bool:
        last[:] = [await browser.get(url, params=params or None)]
        assert last[0].status_code == 200, last[0].text
        return polls(last[0]) is None

    await wait_for(done, within=20)
    return last[0]


async def test_a_plain_form_upload_is_followed_until_ready_with_its_renditions(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool, worker: None
) -> None:
    await signed_in(browser, client, db, "editor")
    library = await browser.get("/console/media")
    assert library.status_code == 200
    assert_no_inline_code(library)
    page = parse(library)
    form = next(f for f in page.find("form") if f.attrs.get("action") == "/console/media/upload")
    assert form.attrs["enctype"] == "multipart/form-data" and "data-upload" in form.attrs
    assert page.one("label", for_="file").text == "Files"
    assert "No media yet" in text_of(library)

    sent = await upload(browser, csrf_of(library), png(800, 600), "cover.png", "image/png")
    assert sent.status_code == 303, sent.text
    detail_url = sent.headers["location"]
    media_id = detail_url.rsplit("/", 1)[1]
    detail = await browser.get(detail_url)
    assert detail.status_code == 200
    assert_no_inline_code(detail)
    status_url = polls(detail)
    assert status_url == f"/console/media/{media_id}/status?view=panel"
    ready = await settled(browser, status_url)
    text = words(ready)
    assert "Ready" in text and "800 × 600 px" in text
    renditions = [r.text for r in parse(ready).find("td") if r.attrs.get("class") == "mono"]
    assert "w320" in renditions and "image/webp" in renditions
    # Images shown from where media are served, which the CSP allows.
    image = parse(ready).find("img")[0].attrs["src"]
    assert image == f"http://127.0.0.1:8000/api/v1/media/{media_id}/renditions/w320"
    assert "http://127.0.0.1:8000" in csp(ready)["img-src"]

    listed = await browser.get("/console/media")
    rows = [r for r in parse(listed).find("tr") if r.attrs.get("id") == f"media-row-{media_id}"]
    assert rows and "hx-get" not in rows[0].attrs  # processed: no more polling
    assert "cover.png" in text_of(listed) and "Ready" in text_of(listed)


async def test_a_script_upload_gets_the_new_row_which_polls_its_status(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool, worker: None
) -> None:
    editor = await signed_in(browser, client, db, "editor")
    token = csrf_of(await browser.get("/console/media"))
    sent = await upload(
        browser, token, png(640, 480), "hero.png", "image/png", script=True, view="row"
    )
    assert sent.status_code == 201, sent.text
    row = parse(sent).elements[0]
    assert row.tag == "tr" and row.attrs["hx-trigger"] == "load delay:1s"
    media_id = row.attrs["id"].removeprefix("media-row-")
    assert polls(sent) == f"/console/media/{media_id}/status?view=row"
    assert "Processing" in words(sent)
    done = await settled(browser, f"/console/media/{media_id}/status", view="row")
    assert "Ready" in done.text and "640 × 480" in done.text
    stored = await client.get(f"/api/v1/media/{media_id}", headers=bearer(editor))
    assert stored.json()["status"] == "READY"
    assert stored.json()["uploadedBy"] == editor["user"]["id"]

    # The editor's picker asks for tiles; a tile keeps its box ticked while it polls.
    tile = await upload(browser, token, png(), "icon.png", "image/png", script=True, view="tile")
    assert tile.status_code == 201
    tile_id = parse(tile).elements[0].attrs["id"].removeprefix("media-tile-")
    box = parse(tile).one("input", name="media")
    assert box.attrs["form"] == "content-form" and "checked" in box.attrs
    assert parse(tile).elements[0].attrs["hx-include"] == "find input[name='media']"
    ticked = await settled(browser, f"/console/media/{tile_id}/status", view="tile", media=tile_id)
    assert "checked" in parse(ticked).one("input", name="media").attrs
    unticked = await browser.get(f"/console/media/{tile_id}/status", params={"view": "tile"})
    assert "checked" not in parse(unticked).one("input", name="media").attrs


async def test_rejected_files_show_why(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool, worker: None
) -> None:
    await signed_in(browser, client, db, "editor")
    token = csrf_of(await browser.get("/console/media"))
    # Judged by its bytes at once: not an accepted type at all.
    refused = await upload(
        browser, token, b"#!/bin/sh\necho hi\n", "run.png", "image/png", script=True
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("text/plain")
    assert refused.text.startswith("run.png was not accepted:")
    plain = await upload(browser, token, b"#!/bin/sh\n", "run.png", "image/png")
    assert plain.status_code == 303 and plain.headers["location"] == "/console/media"
    assert "run.png was not accepted" in text_of(await browser.get("/console/media"))
    assert await db.fetchval("SELECT count(*) FROM media_assets") == 0
    empty = await browser.post(
        "/console/media/upload", data={"csrf_token": token}, headers={"Origin": ORIGIN}
    )
    assert empty.status_code == 303
    assert "Choose a file to upload." in text_of(await browser.get("/console/media"))

    # Refused by the worker: the status fragment ends REJECTED, with the worker's reason.
    bomb = await upload(browser, token, pixel_bomb(), "huge.png", "image/png", script=True)
    assert bomb.status_code == 201
    media_id = parse(bomb).elements[0].attrs["id"].removeprefix("media-row-")
    done = await settled(browser, f"/console/media/{media_id}/status", view="row")
    assert "Rejected" in words(done)
    reason = await db.fetchval(
        "SELECT reject_reason FROM media_assets WHERE id = $1", uuid.UUID(media_id)
    )
    assert reason and reason in words(done)
    panel = await browser.get(f"/console/media/{media_id}")
    assert f"Rejected: {reason}" in text_of(panel)
    assert "Rejected" in text_of(await browser.get("/console/media?status=REJECTED"))
    assert "huge.png" not in text_of(await browser.get("/console/media?status=READY"))


async def test_where_a_file_is_used_and_a_refused_delete_explained(
    app: FastAPI,
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    worker: None,
) -> None:
    editor = await signed_in(browser, client, db, "editor")
    token = csrf_of(await browser.get("/console/media"))
    sent = await upload(browser, token, png(400, 300), "map.png", "image/png")
    media_id = sent.headers["location"].rsplit("/", 1)[1]
    await settled(browser, f"/console/media/{media_id}/status", view="panel")
    shown = await client.post(
        "/api/v1/content",
        json={"type": "GAME", "title": "Star Racer", "media": [media_id]},
        headers=bearer(editor),
    )
    await client.post(f"/api/v1/content/{shown.json()['id']}/publish", headers=bearer(editor))
    draft = await client.post(
        "/api/v1/content",
        json={"type": "NEWS", "title": "Map preview", "media": [media_id]},
        headers=bearer(editor),
    )
    linked = await client.post(
        "/api/v1/content",
        json={
            "type": "FAQ",
            "title": "Where is the map",
            "content": f"![](/api/v1/media/{media_id}/file)",
        },
        headers=bearer(editor),
    )

    detail = await browser.get(f"/console/media/{media_id}")
    text = text_of(detail)
    assert "Star Racer" in text and "Map preview" in text and "Where is the map" in text
    assert "it cannot be deleted while this lasts" in text
    assert "Linked in the text but not attached" in text
    usage = [
        a.attrs["href"]
        for a in parse(detail).find("a")
        if "/console/content/" in a.attrs.get("href", "")
    ]
    assert f"/console/content/{linked.json()['id']}" in usage

    refused = await post_form(browser, f"/console/media/{media_id}/delete", token=token)
    assert refused.status_code == 409
    text = text_of(refused)
    assert "Not deleted" in text
    assert "Published content shows this file" in text
    assert "unpublish that item" in text and "Star Racer" in text
    assert "game/star-racer" in text
    assert (
        await client.get(f"/api/v1/media/{media_id}", headers=bearer(editor))
    ).status_code == 200
    assert_no_inline_code(refused)

    await client.post(f"/api/v1/content/{shown.json()['id']}/unpublish", headers=bearer(editor))
    deleted = await post_form(browser, f"/console/media/{media_id}/delete", token=token)
    assert deleted.status_code == 303 and deleted.headers["location"] == "/console/media"
    assert "Deleted map.png." in text_of(await browser.get("/console/media"))
    assert (
        await client.get(f"/api/v1/media/{media_id}", headers=bearer(editor))
    ).status_code == 404
    kept = await client.get(f"/api/v1/content/{draft.json()['id']}", headers=bearer(editor))
    assert kept.json()["media"] == []  # as through the API: drafts stop listing it
    assert (await browser.get(f"/console/media/{media_id}")).status_code == 404


async def test_the_library_filters_and_the_editor_picks_media(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    editor = await signed_in(browser, client, db, "editor")
    token = csrf_of(await browser.get("/console/media"))
    image = await upload(browser, token, png(), "banner.png", "image/png")
    pdf = await upload(browser, token, PDF, "rules.pdf", "application/pdf")
    image_id = image.headers["location"].rsplit("/", 1)[1]
    pdf_id = pdf.headers["location"].rsplit("/", 1)[1]

    def names(response: httpx.Response) -> list[str]:
        return [
            a.text
            for a in parse(response).find("a")
            if "media-name-link" in a.attrs.get("class", "")
        ]

    assert names(await browser.get("/console/media")) == ["rules.pdf", "banner.png"]
    assert names(await browser.get("/console/media?kind=image")) == ["banner.png"]
    assert names(await browser.get("/console/media?kind=other")) == ["rules.pdf"]
    assert names(await browser.get("/console/media?status=READY")) == ["rules.pdf"]  # not an image
    assert names(await browser.get("/console/media?q=BANN")) == ["banner.png"]

    # The editor's picker: every file a box of the content form, ticked when attached.
    item = await client.post(
        "/api/v1/content",
        json={"type": "NEWS", "title": "Rules", "media": [pdf_id]},
        headers=bearer(editor),
    )
    edit = await browser.get(f"/console/content/{item.json()['id']}")
    boxes = {
        b.attrs["value"]: "checked" in b.attrs for b in parse(edit).find("input", name="media")
    }
    assert boxes == {pdf_id: True, image_id: False}
    inserts = [
        b.attrs["data-insert-markdown"]
        for b in parse(edit).find("button")
        if "data-insert-markdown" in b.attrs
    ]
    assert f"[rules](/api/v1/media/{pdf_id}/file)" in inserts
    assert f"![banner](/api/v1/media/{image_id}/file)" in inserts
    fields = {"title": "Rules", "locale": "en", "format": "MARKDOWN", "content": "", "tags": "",
              "attributes": "{}", "version": "1", "media": [image_id, pdf_id]}  # fmt: skip
    saved = await post_form(browser, f"/console/content/{item.json()['id']}", fields, token=token)
    assert saved.status_code == 303
    stored = await client.get(f"/api/v1/content/{item.json()['id']}", headers=bearer(editor))
    assert stored.json()["media"] == [image_id, pdf_id]

    # A file uploaded from an item's editor is uploaded for that item.
    hidden = {
        i.attrs["name"]: i.attrs["value"]
        for i in parse(edit).find("input")
        if i.attrs.get("type") == "hidden" and i.attrs.get("name") in ("view", "related_content_id")
    }
    assert hidden == {"view": "tile", "related_content_id": item.json()["id"]}
    tile = await upload(browser, token, PDF, "annex.pdf", "application/pdf", script=True, **hidden)
    annex_id = parse(tile).elements[0].attrs["id"].removeprefix("media-tile-")
    annex = await client.get(f"/api/v1/media/{annex_id}", headers=bearer(editor))
    assert annex.json()["relatedContentId"] == item.json()["id"]
    assert "uploaded for it" in text_of(await browser.get(f"/console/media/{annex_id}"))
    gone = await upload(
        browser, token, PDF, "x.pdf", "application/pdf", script=True,
        related_content_id=str(uuid.uuid4()),
    )  # fmt: skip
    assert gone.status_code == 422 and "no content has this id" in gone.text


async def test_the_picker_shows_more_on_request(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "editor")
    token = csrf_of(await browser.get("/console/media"))
    for n in range(26):
        await upload(browser, token, PDF, f"doc-{n:02}.pdf", "application/pdf")
    new = await browser.get("/console/content/new")
    first = [b.attrs["value"] for b in parse(new).find("input", name="media")]
    assert len(first) == 24
    [more] = [a for a in parse(new).find("a") if a.text == "Show more"]
    rest = await browser.get(more.attrs["hx-get"].replace("&amp;", "&"))
    assert rest.status_code == 200
    second = [b.attrs["value"] for b in parse(rest).find("input", name="media")]
    assert len(second) == 2 and not set(first) & set(second)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/console/media"),
        ("POST", "/console/media/upload"),
        ("GET", "/console/media/{id}"),
        ("GET", "/console/media/{id}/status"),
        ("POST", "/console/media/{id}/delete"),
    ],
)
async def test_marketers_are_refused(
    method: str, path: str, browsers: ConsoleClients, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    editor = browsers()
    await signed_in(editor, client, db, "editor")
    sent = await upload(
        editor, csrf_of(await editor.get("/console/media")), PDF, "secret.pdf", "application/pdf"
    )
    media_id = sent.headers["location"].rsplit("/", 1)[1]
    marketer = browsers()
    await signed_in(marketer, client, db, "marketer")
    token = csrf_of(await marketer.get("/console"))
    url = path.replace("{id}", media_id)
    if method == "POST":
        refused = await marketer.post(
            url, files={"file": ("x.pdf", PDF, "application/pdf")}, data={"csrf_token": token},
            headers={"Origin": ORIGIN},
        )  # fmt: skip
    else:
        refused = await marketer.get(url)
    assert refused.status_code == 403
    assert "secret.pdf" not in refused.text
    assert await db.fetchval("SELECT count(*) FROM media_assets") == 1


async def test_an_upload_without_the_forms_token_is_refused(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "editor")
    refused = await browser.post(
        "/console/media/upload",
        files={"file": ("a.pdf", PDF, "application/pdf")},
        headers={"Origin": ORIGIN, "HX-Request": "true"},
    )
    assert refused.status_code == 403
    other_site = await upload(browser, csrf_of(await browser.get("/console")), PDF, "a.pdf",
                              "application/pdf", script=True)  # fmt: skip
    assert other_site.status_code == 201  # the same request from this site is fine
    assert await db.fetchval("SELECT count(*) FROM media_assets") == 1
