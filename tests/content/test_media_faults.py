"""Media when storage fails: a processing job that gives up leaves the asset FAILED with
its reason and tells the uploader; an upload the storage cannot take is a 503 (507 when
the disk is full), never a 500."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.content.conftest import content_worker_running
from tests.content.images import png
from tests.factories import bearer, user_with_roles
from tests.net import free_port
from tests.notifications.support import wait_for

URL = "/api/v1/media"


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, object]:
    return {"media_dir": tmp_path / "media"}


@pytest.fixture
async def editor(client: httpx.AsyncClient, db: asyncpg.Pool) -> dict[str, Any]:
    return await user_with_roles(client, db, "editor")


async def _upload(
    client: httpx.AsyncClient, editor: dict[str, Any], data: bytes | None = None
) -> httpx.Response:
    return await client.post(
        URL, files={"file": ("cover.png", data or png(), "image/png")}, headers=bearer(editor)
    )


async def _status(
    client: httpx.AsyncClient, editor: dict[str, Any], media_id: str, wanted: str
) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    async def reached() -> bool:
        found[:] = [(await client.get(f"{URL}/{media_id}", headers=bearer(editor))).json()]
        return bool(found[0]["status"] == wanted)

    await wait_for(reached, within=30)
    return found[0]


async def _notice(client: httpx.AsyncClient, editor: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    async def arrived() -> bool:
        page = await client.get("/api/v1/me/notifications", headers=bearer(editor))
        found[:] = [i for i in page.json()["items"] if "could not be processed" in i["subject"]]
        return bool(found)

    await wait_for(arrived, within=30)
    return found[0]


async def test_a_job_that_cannot_write_its_storage_ends_failed_and_tells_the_uploader(
    app: FastAPI,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    database_url: str,
    editor: dict[str, Any],
    tmp_path: Path,
) -> None:
    uploaded = await _upload(client, editor)
    assert uploaded.status_code == 201, uploaded.text
    media_id = uploaded.json()["id"]
    # The worker cannot write what it made: a folder stands where its temporary file goes
    # (as root, a read-only folder would not stop it).
    (tmp_path / "media" / "media" / media_id / "original.part").mkdir()

    async with content_worker_running(app, database_url):
        item = await _status(client, editor, media_id, "FAILED")
        notice = await _notice(client, editor)

    reason = item["rejectReason"]
    assert reason.startswith("processing failed: the media storage cannot be written: Is a dir")
    assert str(tmp_path) not in reason  # no server path reaches the uploader
    assert notice["subject"] == "cover.png could not be processed"
    assert notice["body"] == reason
    job = await db.fetchrow(
        "SELECT status, retry_count, max_attempts FROM messages WHERE type = 'MEDIA_PROCESSING'"
    )
    assert job["status"] == "FAILED" and job["retry_count"] == job["max_attempts"]
    # Not public, and the editor sees why.
    assert (await client.get(f"{URL}/{media_id}")).status_code == 404


async def test_a_job_whose_last_lease_ran_out_ends_failed_too(
    app: FastAPI,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    database_url: str,
    editor: dict[str, Any],
) -> None:
    uploaded = await _upload(client, editor)
    media_id = uploaded.json()["id"]
    # Its last attempt was taken by a worker that died with it.
    await db.execute(
        "UPDATE messages SET status = 'PROCESSING', lease_owner = 'gone:1:dead', "
        "lease_expires_at = now() - interval '1 second', retry_count = max_attempts - 1 "
        "WHERE type = 'MEDIA_PROCESSING'"
    )
    async with content_worker_running(app, database_url):
        item = await _status(client, editor, media_id, "FAILED")
        notice = await _notice(client, editor)
    assert item["rejectReason"] == (
        "processing failed: the worker processing it stopped each time; "
        "upload the file again to retry"
    )
    assert notice["body"] == item["rejectReason"]


def _problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:gameportal:problem:{slug}"
    return body


async def test_an_upload_the_local_folder_cannot_take_is_a_503(
    client: httpx.AsyncClient, db: asyncpg.Pool, editor: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "media").write_text("a file where the media folder should be")
    response = await _upload(client, editor)
    body = _problem(response, 503, "storage-unavailable")
    assert body["detail"] == "the media storage cannot be written: Not a directory"
    assert response.headers["retry-after"] == "30"
    assert await db.fetchval("SELECT count(*) FROM media_assets") == 0


@contextlib.contextmanager
def _tiny_filesystem(path: Path) -> Iterator[None]:
    """A 64 KiB tmpfs at `path`, or the test is skipped where mounting is not allowed."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)  # noqa: S607


async def test_an_upload_that_fills_the_disk_is_a_507_and_leaves_nothing(
    client: httpx.AsyncClient, db: asyncpg.Pool, editor: dict[str, Any], tmp_path: Path
) -> None:
    with _tiny_filesystem(tmp_path / "media"):
        big = png(64, 64) + os.urandom(200 * 1024)  # a PNG with junk after it: 200 KiB
        response = await _upload(client, editor, big)
        body = _problem(response, 507, "insufficient-storage")
        assert body["detail"] == "the media storage cannot be written: No space left on device"
        assert not any(p.is_file() for p in (tmp_path / "media").rglob("*"))
    assert await db.fetchval("SELECT count(*) FROM media_assets") == 0


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "media_storage": "s3",
            "s3_bucket": "media",
            "s3_endpoint_url": f"http://127.0.0.1:{free_port()}",  # nothing listens
            "s3_access_key_id": "key",
            "s3_secret_access_key": "secret",
        }
    ],
)
async def test_an_upload_while_s3_is_unreachable_is_a_503(
    client: httpx.AsyncClient, db: asyncpg.Pool, editor: dict[str, Any]
) -> None:
    response = await _upload(client, editor)
    body = _problem(response, 503, "storage-unavailable")
    assert body["detail"] == "the media storage cannot be written: EndpointConnectionError"
    assert await db.fetchval("SELECT count(*) FROM media_assets") == 0
    # The same for completing a presigned upload, which reads what arrived.
    ticket = await client.post(
        f"{URL}/uploads",
        json={"fileName": "cover.png", "mimeType": "image/png", "sizeBytes": 100},
        headers=bearer(editor),
    )
    assert ticket.status_code == 201, ticket.text
    media_id = uuid.UUID(ticket.json()["media"]["id"])
    completed = await client.post(f"{URL}/{media_id}/complete", headers=bearer(editor))
    _problem(completed, 503, "storage-unavailable")
