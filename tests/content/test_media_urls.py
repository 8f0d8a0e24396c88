"""Media URLs are absolute wherever they appear, built from GAMEPORTAL_PUBLIC_BASE_URL (or a
CDN in front of local media), never from the request: answers and published HTML are read
on other origins (a publisher's site, a game's web view), where a path names their server."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from gameportal.migrations import alembic_config
from tests.conftest import with_database
from tests.content.images import png
from tests.factories import bearer, user_with_roles
from tests.notifications.support import wait_for

BASE = "https://api.portal.test"
MEDIA = "/api/v1/media"
CONTENT = "/api/v1/content"


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, object]:
    return {"media_dir": tmp_path / "media", "public_base_url": BASE + "/"}


async def _ready_image(client: httpx.AsyncClient, editor: dict[str, str]) -> dict[str, Any]:
    uploaded = await client.post(
        MEDIA, files={"file": ("cover.png", png(800, 400), "image/png")}, headers=editor
    )
    assert uploaded.status_code == 201, uploaded.text
    media_id = uploaded.json()["id"]
    assert uploaded.json()["url"] == f"{BASE}{MEDIA}/{media_id}/file"
    found: list[dict[str, Any]] = []

    async def ready() -> bool:
        found[:] = [(await client.get(f"{MEDIA}/{media_id}", headers=editor)).json()]
        return found[0]["status"] == "READY"

    await wait_for(ready, within=15)
    return found[0]


def _all_urls(media: dict[str, Any]) -> list[str]:
    return [media["url"], *(r["url"] for r in media["renditions"])]


async def test_media_urls_are_absolute_in_every_answer_and_in_published_html(
    client: httpx.AsyncClient, db: asyncpg.Pool, content_worker: None
) -> None:
    editor = bearer(await user_with_roles(client, db, "editor"))
    item = await _ready_image(client, editor)
    media_id = item["id"]
    assert _all_urls(item) == [
        f"{BASE}{MEDIA}/{media_id}/file",
        f"{BASE}{MEDIA}/{media_id}/renditions/w320",
    ]
    public = (await client.get(f"{MEDIA}/{media_id}")).json()  # anyone's view
    listed = (await client.get(MEDIA, headers=editor)).json()["items"]
    for media in (public, *listed):
        assert all(url.startswith(f"{BASE}{MEDIA}/") for url in _all_urls(media)), media
    served = await client.get(item["url"])  # the absolute URL is this app's own route
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"

    # An editor links the media by path, as the console shows it; published, the HTML
    # names this server in full. Other paths are the publisher's, and stay as written.
    source = (
        f"![Cover]({MEDIA}/{media_id}/file)\n\n"
        f'<a href="{MEDIA}/{media_id}/renditions/w320">small</a> '
        f'<a href="/news/season-2">last season</a> <img src="https://cdn.other.test/x.png">'
    )
    created = await client.post(
        CONTENT,
        json={"type": "NEWS", "title": "Cover", "content": source, "media": [media_id]},
        headers=editor,
    )
    assert created.status_code == 201, created.text
    content_id = created.json()["id"]
    published = await client.post(f"{CONTENT}/{content_id}/publish", headers=editor)
    assert published.status_code == 200, published.text
    read = await client.get(f"{CONTENT}/news/{created.json()['slug']}")
    listing = await client.get(f"{CONTENT}", params={"type": "NEWS"})
    for html in (created.json()["html"], read.json()["html"], listing.json()["items"][0]["html"]):
        assert f'src="{BASE}{MEDIA}/{media_id}/file"' in html, html
        assert f'href="{BASE}{MEDIA}/{media_id}/renditions/w320"' in html
        assert 'href="/news/season-2"' in html
        assert 'src="https://cdn.other.test/x.png"' in html

    # A Host the client makes up changes nothing (and poisons no cache).
    forged = await client.get(f"{MEDIA}/{media_id}", headers={"Host": "evil.test"})
    assert forged.json()["url"] == f"{BASE}{MEDIA}/{media_id}/file"

    # Edited, the HTML is rendered again, media made absolute again.
    etag = published.headers["etag"]
    edited = await client.patch(
        f"{CONTENT}/{content_id}",
        json={"content": f"New: ![c]({MEDIA}/{media_id}/file)"},
        headers={**editor, "If-Match": etag},
    )
    assert edited.status_code == 200, edited.text
    assert f'src="{BASE}{MEDIA}/{media_id}/file"' in edited.json()["html"]


@pytest.mark.parametrize(
    "settings_overrides",
    [{"public_base_url": BASE, "media_public_url": "https://cdn.portal.test"}],
)
async def test_a_cdn_in_front_of_local_media_is_where_they_point(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    editor = bearer(await user_with_roles(client, db, "editor"))
    uploaded = await client.post(
        MEDIA, files={"file": ("a.png", png(40, 40), "image/png")}, headers=editor
    )
    media_id = uploaded.json()["id"]
    assert uploaded.json()["url"] == f"https://cdn.portal.test{MEDIA}/{media_id}/file"
    created = await client.post(
        CONTENT,
        json={"type": "NEWS", "title": "C", "content": f"![a]({MEDIA}/{media_id}/file)"},
        headers=editor,
    )
    assert f'src="https://cdn.portal.test{MEDIA}/{media_id}/file"' in created.json()["html"]


def _migrate(url: str, revision: str, base: str) -> None:
    """Alembic in its own thread (it runs its own event loop), with the deployment's
    GAMEPORTAL_PUBLIC_BASE_URL in the environment, as `gameportal migrate` would have."""
    from alembic import command

    errors: list[BaseException] = []

    def run() -> None:
        try:
            command.upgrade(alembic_config(url), revision)
        except BaseException as exc:
            errors.append(exc)

    with pytest.MonkeyPatch.context() as env:
        env.setenv("GAMEPORTAL_PUBLIC_BASE_URL", base)
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    if errors:
        raise errors[0]


async def test_migration_makes_stored_media_paths_absolute(server_url: str) -> None:
    name = f"gp_mig_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    media_id, content_id, other_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        await asyncio.to_thread(_migrate, url, "0012", BASE)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO media_assets (id, file_name, url, mime_type, size_bytes, status,"
                " renditions, storage_key, storage_backend) VALUES"
                " ($1, 'a.png', $2, 'image/png', 1, 'READY', $3::jsonb, $4, 'local'),"
                " ($5, 'b.png', 'https://bucket.test/media/b', 'image/png', 1, 'READY',"
                "  '[]'::jsonb, $6, 's3')",
                media_id,
                f"{MEDIA}/{media_id}/file",
                '[{"name": "w320", "width": 320, "height": 160, "mimeType": "image/webp",'
                f' "url": "{MEDIA}/{media_id}/renditions/w320"}},'
                ' {"name": "cdn", "width": 1, "height": 1, "mimeType": "image/webp",'
                ' "url": "https://cdn.test/x"}]',
                f"media/{media_id}/original",
                other_id,
                f"media/{other_id}/original",
            )
            await conn.execute(
                "INSERT INTO content (id, type, title, slug, locale, format, content, html,"
                " status, version, search_config) VALUES ($1, 'NEWS', 't', 't', 'en',"
                " 'MARKDOWN', 'x', $2, 'PUBLISHED', 3, 'english')",
                content_id,
                f'<p><img src="{MEDIA}/{media_id}/file" alt="a"> <a href="/news/x">n</a></p>',
            )
        finally:
            await conn.close()

        await asyncio.to_thread(_migrate, url, "head", BASE + "/")

        conn = await asyncpg.connect(url)
        try:
            urls = dict(await conn.fetch("SELECT id, url FROM media_assets"))
            renditions = await conn.fetchval(
                "SELECT renditions FROM media_assets WHERE id = $1", media_id
            )
            html, version = await conn.fetchrow(
                "SELECT html, version FROM content WHERE id = $1", content_id
            )
        finally:
            await conn.close()
        assert urls == {
            media_id: f"{BASE}{MEDIA}/{media_id}/file",
            other_id: "https://bucket.test/media/b",  # S3's: already absolute, unchanged
        }
        assert '"url": "https://cdn.test/x"' in renditions
        assert f'"url": "{BASE}{MEDIA}/{media_id}/renditions/w320"' in renditions
        assert renditions.index('"w320"') < renditions.index('"cdn"')  # order kept
        assert html == (
            f'<p><img src="{BASE}{MEDIA}/{media_id}/file" alt="a"> <a href="/news/x">n</a></p>'
        )
        assert version == 4  # a new ETag: the HTML a client holds is stale
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),  # noqa: S104
        ("::", "http://[::1]:8000"),
        ("fd00::5", "http://[fd00::5]:8000"),
        ("portal.lan", "http://portal.lan:8000"),
    ],
)
def test_serve_without_a_public_base_url_uses_where_it_listens(host: str, expected: str) -> None:
    from gameportal.cli import listening_url

    assert listening_url(host, 8000) == expected
