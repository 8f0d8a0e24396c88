"""What a hostile or careless client found in content and media, each now a test: no
500s, no stale or leaked drafts, no unbounded cache, no stuck states."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.content.cache import Cached, PublicCache
from gameportal.kit.pagination import encode_cursor
from tests.content.images import png
from tests.factories import bearer, user_with_roles

URL = "/api/v1/content"


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, object]:
    return {"media_dir": tmp_path / "media"}


@pytest.fixture
async def editor(client: httpx.AsyncClient, db: asyncpg.Pool) -> dict[str, str]:
    return bearer(await user_with_roles(client, db, "editor"))


async def _create(
    client: httpx.AsyncClient, editor: dict[str, str], **fields: Any
) -> httpx.Response:
    body = {"type": "NEWS", "title": "Hostile", "content": "text", **fields}
    return await client.post(URL, json=body, headers=editor)


async def _published(
    client: httpx.AsyncClient, editor: dict[str, str], **fields: Any
) -> dict[str, Any]:
    created = await _create(client, editor, **fields)
    assert created.status_code == 201, created.text
    response = await client.post(f"{URL}/{created.json()['id']}/publish", headers=editor)
    item: dict[str, Any] = response.json()
    return item


async def test_values_postgres_cannot_store_are_field_errors_not_500s(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    for raw, field in (
        ('{"type":"NEWS","title":"x","attributes":{"x":NaN}}', "attributes"),
        ('{"type":"NEWS","title":"x","attributes":{"x":Infinity}}', "attributes"),
        ('{"type":"NEWS","title":"x","attributes":{"x":1e400}}', "attributes"),
        ('{"type":"NEWS","title":"x","attributes":{"x":' + "9" * 30 + "}}", "attributes"),
        ('{"type":"NEWS","title":"x","publishAt":"0001-01-01T00:00:00+01:00"}', "publishAt"),
        ('{"type":"NEWS","title":"x","publishAt":"9999-12-31T23:59:59-01:00"}', "publishAt"),
    ):
        response = await client.post(
            URL, content=raw, headers={**editor, "Content-Type": "application/json"}
        )
        assert response.status_code == 422, (raw, response.text)
        assert field in [e["field"] for e in response.json()["errors"]], response.text
    created = await _create(client, editor)
    etag = created.headers["etag"]
    null_slug = await client.patch(
        f"{URL}/{created.json()['id']}", json={"slug": None}, headers={**editor, "If-Match": etag}
    )
    assert null_slug.status_code == 422
    assert null_slug.json()["errors"][0]["field"] == "slug"


async def test_two_editors_taking_the_same_new_slug_at_once_get_200_and_409(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    for round_ in range(3):
        a = await _create(client, editor, title=f"A {round_}")
        b = await _create(client, editor, title=f"B {round_}")
        results = await asyncio.gather(
            *(
                client.patch(
                    f"{URL}/{item.json()['id']}",
                    json={"slug": f"taken-{round_}"},
                    headers={**editor, "If-Match": item.headers["etag"]},
                )
                for item in (a, b)
            )
        )
        assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]


async def test_restoring_a_scheduled_item_to_a_dateless_revision_unschedules_it(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    item = (await _create(client, editor)).json()
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await client.post(f"{URL}/{item['id']}/publish", json={"publishAt": tomorrow}, headers=editor)
    restored = await client.post(f"{URL}/{item['id']}/revisions/1/restore", headers=editor)
    assert restored.status_code == 200
    assert (restored.json()["status"], restored.json()["publishAt"]) == ("DRAFT", None)


async def test_a_live_item_is_not_taken_offline_by_publishing_it_later(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    item = await _published(client, editor, slug="live")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    again = await client.post(
        f"{URL}/{item['id']}/publish", json={"publishAt": tomorrow}, headers=editor
    )
    assert again.status_code == 409
    assert (await client.get(f"{URL}/news/live")).status_code == 200


async def test_a_cursor_naming_a_draft_reveals_nothing_about_it(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    # The published item ranks low (a body match), the draft high (a title match): a
    # cursor on the draft would page to the published item only if the draft matches.
    await _published(client, editor, title="Crossing", content="a zebra")
    matching = (await _create(client, editor, title="Zebra zebra", content="zebra")).json()
    other = (await _create(client, editor, title="Other", content="lion")).json()
    pages = [
        (await client.get(URL, params={"q": "zebra", "cursor": encode_cursor(uuid.UUID(d["id"]))}))
        for d in (matching, other)
    ]
    assert [p.status_code for p in pages] == [200, 200]
    assert pages[0].json() == pages[1].json() == {"items": [], "nextCursor": None}


async def test_ready_media_show_the_public_nothing_about_their_uploader(
    client: httpx.AsyncClient, editor: dict[str, str], content_worker: None
) -> None:
    content = (await _create(client, editor)).json()
    uploaded = await client.post(
        "/api/v1/media",
        files={"file": ("a.png", png(), "IMAGE/PNG; charset=binary")},  # case and parameters
        data={"relatedContentId": content["id"]},
        headers=editor,
    )
    assert uploaded.status_code == 201, uploaded.text
    media_id = uploaded.json()["id"]
    for _ in range(100):
        public = await client.get(f"/api/v1/media/{media_id}")
        if public.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert public.status_code == 200
    assert not {"uploadedBy", "relatedContentId", "sha256", "status"} & public.json().keys()
    assert (await client.get(f"/api/v1/media/{media_id}", headers=editor)).json()[
        "relatedContentId"
    ] == content["id"]


async def test_content_never_keeps_a_media_id_deleted_at_the_same_moment(
    client: httpx.AsyncClient, editor: dict[str, str], db: asyncpg.Pool
) -> None:
    for n in range(5):
        media_id = (
            await client.post(
                "/api/v1/media", files={"file": ("a.png", png(), "image/png")}, headers=editor
            )
        ).json()["id"]
        await asyncio.gather(
            client.delete(f"/api/v1/media/{media_id}", headers=editor),
            _create(client, editor, title=f"ref {n}", media=[media_id]),
        )
    dangling = await db.fetchval(
        "SELECT count(*) FROM content c, unnest(c.media) m "
        "WHERE NOT EXISTS (SELECT 1 FROM media_assets a WHERE a.id = m)"
    )
    assert dangling == 0


async def test_rendering_a_pathological_body_does_not_stall_other_requests(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    async def probe() -> float:
        started = time.perf_counter()  # before the sleep: a blocked loop delays it too
        await asyncio.sleep(0.3)
        assert (await client.get("/healthz")).status_code == 200
        return time.perf_counter() - started - 0.3

    created, waited = await asyncio.gather(
        _create(client, editor, format="HTML", content="<div>" * 40_000), probe()
    )
    assert created.status_code == 201
    assert waited < 1.5, f"/healthz waited {waited:.1f} s behind the rendering"


async def test_junk_parameters_and_headers_share_one_cache_entry(
    app: FastAPI, client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    assert await app.state.inbox_hub.wait_connected(within=5)
    await _published(client, editor, slug="once")
    cache: PublicCache = app.state.content_cache
    for n in range(30):
        item = await client.get(f"{URL}/news/once?junk={n}", headers={"Accept-Language": f"x{n}"})
        assert item.status_code == 200
        assert (await client.get(f"{URL}?junk={n}&type=NEWS")).status_code == 200
    # One entry for the item in English, one for the list: not sixty.
    assert len(cache._entries) == 2


def test_the_cache_keeps_to_its_byte_budget() -> None:
    cache = PublicCache(max_entries=1000, max_bytes=8000, cache_control="public")
    cache._listening(True)
    for n in range(100):
        cache.put(f"k{n}", Cached(etag=f'"{n}"', body=b"x" * 500, vary=False), cache.generation)
    assert cache.size_bytes <= 8000
    assert cache.get("k99") is not None and cache.get("k0") is None
    cache.put("huge", Cached(etag='"h"', body=b"x" * 5000, vary=False), cache.generation)
    assert cache.get("huge") is None  # over an eighth of the budget: not kept


async def test_public_reads_behind_a_path_prefix_and_other_edges(
    app: FastAPI, client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    await _published(client, editor, title="Revisions", slug="revisions")
    await _published(client, editor, title="Willkommen", slug="hallo", locale="de")
    transport = httpx.ASGITransport(app=app, root_path="/portal")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as prefixed:
        for path in ("/portal/api/v1/content", "/portal/api/v1/tags"):
            assert (await prefixed.get(path)).status_code == 200, path
    # A published slug that looks like an editor route reads the same either way.
    for suffix in ("", "?x=1"):
        assert (await client.get(f"{URL}/news/revisions{suffix}")).status_code == 200
    austrian = await client.get(f"{URL}/news/hallo", params={"locale": "de-AT"})
    assert austrian.json()["title"] == "Willkommen"
    any_version = await client.get(f"{URL}/news/hallo?locale=de", headers={"If-None-Match": "*"})
    assert any_version.status_code == 304
    bad_locale = await client.get(URL, params={"locale": "not a locale!"})
    assert bad_locale.json()["errors"][0]["location"] == "query"


@pytest.mark.parametrize("settings_overrides", [{"media_max_bytes": 4096}], ids=["4KiB"])
async def test_a_file_over_the_limit_inside_the_envelope_leaves_no_folder(
    app: FastAPI, client: httpx.AsyncClient, editor: dict[str, str], tmp_path: Path
) -> None:
    # Small enough for the request limit (the limit plus the multipart envelope), too big
    # for the file limit: refused while streaming to storage.
    response = await client.post(
        "/api/v1/media",
        files={"file": ("big.png", png(120, 120) + b"\0" * 10_000, "image/png")},
        headers=editor,
    )
    assert response.status_code == 413
    assert _leftovers(app.state.settings.media_folder) == []


def _leftovers(root: Path) -> list[Path]:
    """Anything under the media folder but the folder of keys itself."""
    return [p for p in root.rglob("*") if p != root / "media"] if root.exists() else []


async def test_a_failing_database_in_the_fast_path_gets_the_apps_problem_answer(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object) -> None:
        raise ConnectionResetError("the database went away")

    monkeypatch.setattr("gameportal.content.fastpath.read_item", broken)
    monkeypatch.setattr("gameportal.content.router.read_item", broken)
    response = await client.get(f"{URL}/news/anything")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"]
