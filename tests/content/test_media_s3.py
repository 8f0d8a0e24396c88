"""The S3 backend against a real S3-compatible server on loopback (SeaweedFS), which
checks signatures and expiry as S3 does: uploads through the app, presigned uploads from
a plain HTTP client, tampered and expired URLs, and uploads never completed."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from gameportal.content.media.s3 import S3Storage
from gameportal.content.media.tasks import AbandonedUploads
from tests.content.images import GPS_IFD, jpeg_with_gps, png
from tests.factories import bearer, user_with_roles
from tests.notifications.support import wait_for
from tests.s3_server import S3Server, running_s3_server

URL = "/api/v1/media"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def settings_overrides(s3: S3Server) -> dict[str, object]:
    return {
        "media_storage": "s3",
        "s3_bucket": s3.bucket,
        "s3_endpoint_url": s3.endpoint_url,
        "s3_region": s3.region,
        "s3_access_key_id": s3.access_key,
        "s3_secret_access_key": s3.secret_key,
        # Set, and beside the point for S3 media: their URLs are the bucket's.
        "public_base_url": "https://api.portal.test",
    }


@pytest.fixture
async def editor(client: httpx.AsyncClient, db: asyncpg.Pool) -> dict[str, Any]:
    return await user_with_roles(client, db, "editor")


def _exists(s3: S3Server, key: str) -> bool:
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=key)
    return bool(listed.get("KeyCount"))


async def _ready(
    client: httpx.AsyncClient, editor: dict[str, Any], media_id: str
) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        found[:] = [(await client.get(f"{URL}/{media_id}", headers=bearer(editor))).json()]
        return found[0]["status"] in ("READY", "REJECTED")

    await wait_for(done, within=15)
    return found[0]


async def _ticket(
    client: httpx.AsyncClient, editor: dict[str, Any], data: bytes, mime: str = "image/png"
) -> dict[str, Any]:
    response = await client.post(
        f"{URL}/uploads",
        json={"fileName": "cover.png", "mimeType": mime, "sizeBytes": len(data)},
        headers=bearer(editor),
    )
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    assert ticket["media"]["status"] == "UPLOADING"
    return ticket


async def test_an_upload_through_the_app_is_processed_in_the_bucket(
    client: httpx.AsyncClient, editor: dict[str, Any], s3: S3Server, content_worker: None
) -> None:
    uploaded = await client.post(
        URL, files={"file": ("trip.jpg", jpeg_with_gps(), "image/jpeg")}, headers=bearer(editor)
    )
    assert uploaded.status_code == 201, uploaded.text
    item = await _ready(client, editor, uploaded.json()["id"])
    assert item["status"] == "READY", item
    key = f"media/{item['id']}/original"
    assert item["url"] == f"{s3.endpoint_url}/{s3.bucket}/{key}"
    stored = s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()
    assert GPS_IFD not in Image.open(io.BytesIO(stored)).getexif()
    assert _exists(s3, f"media/{item['id']}/w320")
    redirect = await client.get(f"{URL}/{item['id']}/file")
    assert redirect.status_code == 307
    assert redirect.headers["location"] == item["url"]
    # Content links media by the app's route, which redirects to the bucket: made
    # absolute on the public base URL.
    created = await client.post(
        "/api/v1/content",
        json={"type": "NEWS", "title": "Trip", "content": f"![t]({URL}/{item['id']}/file)"},
        headers=bearer(editor),
    )
    assert f'src="https://api.portal.test{URL}/{item["id"]}/file"' in created.json()["html"]


async def test_a_presigned_upload_from_a_plain_http_client_then_completed(
    client: httpx.AsyncClient, db: asyncpg.Pool, editor: dict[str, Any], content_worker: None
) -> None:
    data = png(640, 480)
    ticket = await _ticket(client, editor, data)
    media_id = ticket["media"]["id"]
    early = await client.post(f"{URL}/{media_id}/complete", headers=bearer(editor))
    assert early.status_code == 409  # nothing uploaded yet

    async with httpx.AsyncClient() as plain:
        put = await plain.put(ticket["uploadUrl"], content=data, headers=ticket["uploadHeaders"])
    assert put.status_code == 200, put.text
    other = await user_with_roles(client, db, "editor")
    assert (
        await client.post(f"{URL}/{media_id}/complete", headers=bearer(other))
    ).status_code == 404
    completed = await client.post(f"{URL}/{media_id}/complete", headers=bearer(editor))
    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] == "PROCESSING"
    item = await _ready(client, editor, media_id)
    assert (item["status"], item["width"], item["height"]) == ("READY", 640, 480)
    again = await client.post(f"{URL}/{media_id}/complete", headers=bearer(editor))
    assert again.status_code == 409


async def test_tampered_and_expired_upload_urls_are_refused_by_the_server(
    app: FastAPI, client: httpx.AsyncClient, editor: dict[str, Any]
) -> None:
    data = png()
    ticket = await _ticket(client, editor, data)
    url: str = ticket["uploadUrl"]
    signature = url.rsplit("X-Amz-Signature=", 1)[1][:64]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    other_key = url.replace(ticket["media"]["id"], "00000000-0000-0000-0000-000000000000")
    storage: S3Storage = app.state.storage
    expired = storage.presign_put("media/expired/original", "image/png", expires_in=1)
    await asyncio.sleep(2.5)
    async with httpx.AsyncClient() as plain:
        for bad in (url.replace(signature, flipped), other_key, expired):
            refused = await plain.put(bad, content=data, headers={"Content-Type": "image/png"})
            assert refused.status_code == 403, (bad, refused.text)
        wrong_type = await plain.put(url, content=data, headers={"Content-Type": "text/html"})
        assert wrong_type.status_code == 403  # the content type is part of the signature


async def test_completing_with_the_wrong_bytes_deletes_them_and_keeps_the_upload_open(
    client: httpx.AsyncClient, editor: dict[str, Any], s3: S3Server
) -> None:
    html = b"<html><script>alert(1)</script></html>" + b" " * 100
    ticket = await _ticket(client, editor, html)  # announced as image/png
    media_id = ticket["media"]["id"]
    async with httpx.AsyncClient() as plain:
        await plain.put(ticket["uploadUrl"], content=html, headers=ticket["uploadHeaders"])
        refused = await client.post(f"{URL}/{media_id}/complete", headers=bearer(editor))
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "file"
        assert "text/html" in refused.json()["errors"][0]["message"]
        assert not _exists(s3, f"media/{media_id}/original")

        short = await _ticket(client, editor, png() + b"extra")
        await plain.put(short["uploadUrl"], content=png(), headers=short["uploadHeaders"])
        mismatch = await client.post(
            f"{URL}/{short['media']['id']}/complete", headers=bearer(editor)
        )
        assert mismatch.status_code == 422
        assert mismatch.json()["errors"][0]["field"] == "sizeBytes"


async def test_uploads_never_completed_are_cleaned_up_after_they_expire(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool, editor: dict[str, Any], s3: S3Server
) -> None:
    data = png()
    ticket = await _ticket(client, editor, data)
    media_id = ticket["media"]["id"]
    async with httpx.AsyncClient() as plain:
        await plain.put(ticket["uploadUrl"], content=data, headers=ticket["uploadHeaders"])
    janitor = AbandonedUploads(app.state.storage)
    await janitor(db)
    assert _exists(s3, f"media/{media_id}/original")  # still within its time
    await db.execute(
        "UPDATE media_assets SET upload_expires_at = now() - interval '2 minutes' WHERE id = $1",
        uuid.UUID(media_id),
    )
    await janitor(db)
    assert not _exists(s3, f"media/{media_id}/original")
    assert (await client.get(f"{URL}/{media_id}", headers=bearer(editor))).status_code == 404
