"""Media on the local backend, end to end: uploads judged by their bytes, processing by
a real worker (EXIF stripped, renditions, bombs and broken files rejected), serving."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from tests.content.images import GPS_IFD, jpeg_with_gps, pixel_bomb, png, truncated_jpeg
from tests.factories import bearer, user_with_roles
from tests.notifications.support import wait_for

URL = "/api/v1/media"


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, object]:
    return {"media_dir": tmp_path / "media", "media_extra_types": ["application/pdf"]}


@pytest.fixture
async def editor(client: httpx.AsyncClient, db: asyncpg.Pool) -> dict[str, Any]:
    return await user_with_roles(client, db, "editor")


async def _upload(
    client: httpx.AsyncClient,
    editor: dict[str, Any],
    data: bytes,
    name: str = "shot.jpg",
    mime: str = "image/jpeg",
    **form: str,
) -> httpx.Response:
    return await client.post(
        URL, files={"file": (name, data, mime)}, data=form, headers=bearer(editor)
    )


async def _settled(
    client: httpx.AsyncClient, editor: dict[str, Any], media_id: str
) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        item = (await client.get(f"{URL}/{media_id}", headers=bearer(editor))).json()
        found[:] = [item]
        return item["status"] in ("READY", "REJECTED")

    await wait_for(done, within=15)
    return found[0]


def _files(app: FastAPI) -> list[Path]:
    root: Path = app.state.settings.media_folder
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_an_image_is_stripped_of_gps_turned_upright_and_given_renditions(
    app: FastAPI,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    editor: dict[str, Any],
    content_worker: None,
) -> None:
    uploaded = await _upload(client, editor, jpeg_with_gps(800, 400))
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["status"] == "PROCESSING"
    assert uploaded.json()["mimeType"] == "image/jpeg"
    item = await _settled(client, editor, uploaded.json()["id"])
    assert item["status"] == "READY", item
    assert (item["width"], item["height"]) == (400, 800)  # the EXIF orientation applied
    assert [(r["name"], r["width"], r["mimeType"]) for r in item["renditions"]] == [
        ("w320", 320, "image/webp")
    ]

    original = await client.get(item["url"])
    assert original.status_code == 200
    assert original.headers["content-type"] == "image/jpeg"
    assert original.headers["x-content-type-options"] == "nosniff"
    kept = Image.open(io.BytesIO(original.content))
    assert GPS_IFD not in kept.getexif()  # no position leaves the server
    assert kept.size == (400, 800)
    rendition = await client.get(item["renditions"][0]["url"])
    assert rendition.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(rendition.content)).size == (320, 640)

    async def told() -> bool:
        subject = await db.fetchval(
            "SELECT payload->>'subject' FROM messages WHERE type = 'IN_APP' "
            "AND recipient_user_id = $1",
            uuid.UUID(editor["user"]["id"]),
        )
        return subject == "shot.jpg is ready"

    await wait_for(told, within=5)


async def test_bombs_and_broken_images_are_rejected_and_the_worker_carries_on(
    app: FastAPI, client: httpx.AsyncClient, editor: dict[str, Any], content_worker: None
) -> None:
    bomb = await _upload(client, editor, pixel_bomb(10_000), name="bomb.png", mime="image/png")
    huge = await _upload(client, editor, pixel_bomb(50_000), name="huge.png", mime="image/png")
    broken = await _upload(client, editor, truncated_jpeg(), name="half.jpg")
    fine = await _upload(client, editor, png(), name="fine.png", mime="image/png")
    for response in (bomb, huge, broken, fine):
        assert response.status_code == 201, response.text
    rejected_bomb = await _settled(client, editor, bomb.json()["id"])
    assert rejected_bomb["status"] == "REJECTED"
    assert "over the limit of 40,000,000 px" in rejected_bomb["rejectReason"]
    rejected_huge = await _settled(client, editor, huge.json()["id"])
    assert "decompression bomb" in rejected_huge["rejectReason"]
    rejected_broken = await _settled(client, editor, broken.json()["id"])
    assert rejected_broken["status"] == "REJECTED"
    assert (
        "truncated" in rejected_broken["rejectReason"]
        or "damaged" in rejected_broken["rejectReason"]
    )
    assert (await _settled(client, editor, fine.json()["id"]))["status"] == "READY"
    # Rejected files are not kept; the good one is.
    kept = {p.parent.name for p in _files(app)}
    assert kept == {fine.json()["id"]}
    anonymous = await client.get(f"{URL}/{bomb.json()['id']}")
    assert anonymous.status_code == 404  # not READY: only editors see it


async def test_a_file_is_judged_by_its_bytes_not_its_name(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, editor: dict[str, Any]
) -> None:
    html = b"<!DOCTYPE html><html><script>alert(1)</script></html>"
    cases = [
        (html, "cat.png", "image/png", "text/html"),
        (png(), "photo.jpg", "image/jpeg", "says it is image/jpeg"),
        (b"just some words", "notes.png", "image/png", "not a recognisable type"),
        (b"", "empty.png", "image/png", "empty"),
    ]
    for data, name, mime, reason in cases:
        response = await _upload(client, editor, data, name=name, mime=mime)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        [error] = response.json()["errors"]
        assert error["field"] == "file"
        assert reason in error["message"]
    assert await db.fetchval("SELECT count(*) FROM media_assets") == 0
    assert _files(app) == []  # nothing half-written


async def test_file_names_never_become_paths(
    app: FastAPI, client: httpx.AsyncClient, editor: dict[str, Any]
) -> None:
    response = await _upload(
        client, editor, png(), name="../../../etc/cron.d/x\u202egnp.png", mime="image/png"
    )
    assert response.status_code == 201, response.text
    assert response.json()["fileName"] == "xgnp.png"  # no bidi override either
    [stored] = _files(app)
    root = app.state.settings.media_folder.resolve()
    assert stored.resolve().relative_to(root).parts == ("media", response.json()["id"], "original")


@pytest.mark.parametrize("settings_overrides", [{"media_max_bytes": 4096}], ids=["4KiB-limit"])
async def test_an_oversized_upload_gets_413_and_leaves_nothing(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, editor: dict[str, Any]
) -> None:
    response = await _upload(
        client, editor, png(400, 400) + b"\0" * 100_000, name="big.png", mime="image/png"
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert await db.fetchval("SELECT count(*) FROM media_assets") == 0


async def test_allowed_documents_are_ready_at_once_and_downloaded_not_shown(
    client: httpx.AsyncClient, editor: dict[str, Any]
) -> None:
    response = await _upload(
        client, editor, b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n", name="rules.pdf", mime="application/pdf"
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "READY"
    served = await client.get(response.json()["url"])
    assert served.headers["content-disposition"] == "attachment; filename*=UTF-8''rules.pdf"
    assert served.headers["content-type"] == "application/pdf"


async def test_media_shown_by_published_content_cannot_be_deleted(
    app: FastAPI, client: httpx.AsyncClient, editor: dict[str, Any], content_worker: None
) -> None:
    media = (await _upload(client, editor, png(), name="cover.png", mime="image/png")).json()
    await _settled(client, editor, media["id"])
    content = await client.post(
        "/api/v1/content",
        json={"type": "GAME", "title": "Star Racer", "media": [media["id"]]},
        headers=bearer(editor),
    )
    assert content.status_code == 201, content.text
    await client.post(f"/api/v1/content/{content.json()['id']}/publish", headers=bearer(editor))
    draft = await client.post(
        "/api/v1/content",
        json={"type": "NEWS", "title": "Coming soon", "media": [media["id"]]},
        headers=bearer(editor),
    )
    refused = await client.delete(f"{URL}/{media['id']}", headers=bearer(editor))
    assert refused.status_code == 409
    assert "game/star-racer" in refused.json()["detail"].lower()
    await client.post(f"/api/v1/content/{content.json()['id']}/unpublish", headers=bearer(editor))
    assert (await client.delete(f"{URL}/{media['id']}", headers=bearer(editor))).status_code == 204
    assert _files(app) == []
    assert (await client.get(f"{URL}/{media['id']}", headers=bearer(editor))).status_code == 404
    listed = await client.get(f"/api/v1/content/{draft.json()['id']}", headers=bearer(editor))
    assert listed.json()["media"] == []  # content never lists media that do not exist


async def test_listing_filters_and_the_local_backend_has_no_presigned_uploads(
    client: httpx.AsyncClient, editor: dict[str, Any], db: asyncpg.Pool
) -> None:
    other = await user_with_roles(client, db, "editor")
    await _upload(client, editor, png(), name="a.png", mime="image/png")
    await _upload(client, other, b"%PDF-1.4\n", name="b.pdf", mime="application/pdf")
    images = (await client.get(f"{URL}?type=image", headers=bearer(editor))).json()["items"]
    assert [i["fileName"] for i in images] == ["a.png"]
    mine = (
        await client.get(f"{URL}?uploader={other['user']['id']}", headers=bearer(editor))
    ).json()
    assert [i["fileName"] for i in mine["items"]] == ["b.pdf"]
    presigned = await client.post(
        f"{URL}/uploads",
        json={"fileName": "x.png", "mimeType": "image/png", "sizeBytes": 10},
        headers=bearer(editor),
    )
    assert presigned.status_code == 503
