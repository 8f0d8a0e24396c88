"""Content through the API: editing with revisions and optimistic concurrency, publishing
and scheduling, and the public reads (cached, conditional, searchable, localised)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from gameportal.content import repository as repo
from gameportal.content.cache import cache_key
from gameportal.content.public import public_item, to_json
from gameportal.content.schemas import PublicContent
from tests.factories import bearer, register, user_with_roles
from tests.notifications.support import wait_for

URL = "/api/v1/content"


@pytest.fixture
async def editor(client: httpx.AsyncClient, db: asyncpg.Pool) -> dict[str, str]:
    return bearer(await user_with_roles(client, db, "editor"))


async def _create(
    client: httpx.AsyncClient, editor: dict[str, str], **fields: Any
) -> httpx.Response:
    body = {"type": "NEWS", "title": "Season 3 is live", "content": "New **maps**.", **fields}
    return await client.post(URL, json=body, headers=editor)


async def _published(
    client: httpx.AsyncClient, editor: dict[str, str], **fields: Any
) -> dict[str, Any]:
    created = await _create(client, editor, **fields)
    assert created.status_code == 201, created.text
    published = await client.post(f"{URL}/{created.json()['id']}/publish", headers=editor)
    assert published.status_code == 200, published.text
    item: dict[str, Any] = published.json()
    return item


async def _eventually(client: httpx.AsyncClient, url: str, check: Any, **kw: Any) -> httpx.Response:
    """Public reads are cached per process until the change's NOTIFY arrives (ms)."""
    last: list[httpx.Response] = []

    async def ok() -> bool:
        last[:] = [await client.get(url, **kw)]
        return bool(check(last[0]))

    await wait_for(ok, within=5)
    return last[0]


async def test_an_item_from_draft_to_archive_with_revisions_and_if_match(
    client: httpx.AsyncClient, editor: dict[str, str], db: asyncpg.Pool
) -> None:
    created = await _create(client, editor, tags=[" Patch Notes ", "patch notes", "PvP"])
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["slug"] == "season-3-is-live"
    assert item["status"] == "DRAFT"
    assert item["html"] == "<p>New <strong>maps</strong>.</p>\n"
    assert item["tags"] == ["patch notes", "pvp"]
    assert created.headers["location"] == f"{URL}/{item['id']}"
    etag = created.headers["etag"]
    public = f"{URL}/news/season-3-is-live"
    assert (await client.get(public)).status_code == 404  # drafts are not public

    no_match = await client.patch(f"{URL}/{item['id']}", json={"title": "x"}, headers=editor)
    assert no_match.status_code == 428
    changed = await client.patch(
        f"{URL}/{item['id']}",
        json={"title": "Season 3: live"},
        headers={**editor, "If-Match": etag},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2
    stale = await client.patch(
        f"{URL}/{item['id']}", json={"title": "lost update"}, headers={**editor, "If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"

    published = await client.post(f"{URL}/{item['id']}/publish", headers=editor)
    assert published.json()["status"] == "PUBLISHED"
    assert published.json()["publishedAt"] is not None
    read = await _eventually(client, public, lambda r: r.status_code == 200)
    assert read.json()["title"] == "Season 3: live"
    assert "status" not in read.json() and "authorId" not in read.json()
    assert read.headers["cache-control"].startswith("public, max-age=60")
    again = await client.get(public, headers={"If-None-Match": read.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""

    revisions = await client.get(f"{URL}/{item['id']}/revisions", headers=editor)
    assert [r["number"] for r in revisions.json()["items"]] == [2, 1]
    assert revisions.json()["items"][1]["snapshot"]["title"] == "Season 3 is live"
    restored = await client.post(f"{URL}/{item['id']}/revisions/1/restore", headers=editor)
    assert restored.status_code == 200, restored.text
    assert restored.json()["title"] == "Season 3 is live"
    await _eventually(client, public, lambda r: r.json().get("title") == "Season 3 is live")
    assert (
        await client.post(f"{URL}/{item['id']}/revisions/9/restore", headers=editor)
    ).status_code == 404

    assert (await client.delete(f"{URL}/{item['id']}", headers=editor)).status_code == 204
    await _eventually(client, public, lambda r: r.status_code == 404)
    archived = await client.get(f"{URL}/{item['id']}", headers=editor)
    assert archived.json()["status"] == "ARCHIVED"
    count = await db.fetchval("SELECT count(*) FROM content_revisions")
    assert count == 3


async def test_slugs_are_unique_per_type_and_locale(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    assert (await _create(client, editor)).status_code == 201
    clash = await _create(client, editor)  # the same generated slug
    assert clash.status_code == 409
    assert clash.json()["errors"][0]["field"] == "slug"
    assert "season-3-is-live" in clash.json()["detail"]
    explicit = await _create(client, editor, title="Other", slug="season-3-is-live")
    assert explicit.status_code == 409
    assert (await _create(client, editor, locale="de")).status_code == 201
    assert (await _create(client, editor, type="FAQ")).status_code == 201


async def test_bad_content_is_refused_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient, editor: dict[str, str], db: asyncpg.Pool
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"media": [str(uuid.uuid4())]}, "media.0"),
        ({"format": "JSON", "content": "{not json"}, "content"),
        ({"slug": "Not A Slug"}, "slug"),
        ({"locale": "not a locale!"}, "locale"),
        ({"tags": ["   "]}, "tags"),
        ({"tags": [f"t{n}" for n in range(21)]}, "tags"),
        ({"attributes": {"deep": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}}, "attributes"),
        ({"attributes": {"x": "\u0000"}}, "attributes"),
        ({"attributes": {"blob": "x" * 20_000}}, "attributes"),
        ({"title": "a\u202eb"}, "title"),
        ({"type": "BLOG"}, "type"),
    ]
    for fields, field in cases:
        response = await _create(client, editor, **fields)
        assert response.status_code == 422, (fields, response.text)
        assert field in [e["field"] for e in response.json()["errors"]], response.text
    too_long = await _create(client, editor, content="x" * 200_001)
    assert too_long.status_code == 422
    oversized = await _create(client, editor, content="x" * 1_100_000)
    assert oversized.status_code == 413
    assert oversized.headers["content-type"] == "application/problem+json"
    assert await db.fetchval("SELECT count(*) FROM content") == 0
    player = await register(client)
    assert (await _create(client, bearer(player))).status_code == 403
    assert (await client.post(URL, json={"type": "NEWS", "title": "x"})).status_code == 401


async def test_json_content_keeps_its_source_and_has_no_html(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    created = await _create(
        client,
        editor,
        type="GAME",
        format="JSON",
        content='{"maps": 12}',
        attributes={"genres": ["racing"], "platforms": ["pc"], "releaseDate": "2027-03-01"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["html"] is None
    assert created.json()["attributes"]["genres"] == ["racing"]


async def test_public_lists_filter_search_and_paginate_published_items_only(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    await _published(
        client,
        editor,
        title="Racing league opens",
        content="Cars and tracks.",
        tags=["racing", "pvp"],
    )
    await _published(
        client, editor, title="Winter event", content="Snowy racing on ice.", tags=["racing"]
    )
    await _published(client, editor, title="Patch 1.2", content="Bug fixes.", tags=["pvp"])
    await _published(
        client, editor, type="FAQ", title="How to race", content="Press go.", tags=["racing"]
    )
    await _create(client, editor, title="Secret racing draft", tags=["racing"])

    news = await _eventually(client, f"{URL}?type=NEWS", lambda r: len(r.json()["items"]) == 3)
    assert [i["title"] for i in news.json()["items"]] == [
        "Patch 1.2",
        "Winter event",
        "Racing league opens",
    ]
    both = await client.get(f"{URL}?type=NEWS&tag=racing&tag=PvP")
    assert [i["title"] for i in both.json()["items"]] == ["Racing league opens"]
    found = await client.get(URL, params={"q": "racing", "type": "NEWS"})
    # A title match outranks a match in the body; drafts never show.
    assert [i["title"] for i in found.json()["items"]] == ["Racing league opens", "Winter event"]
    stemmed = await client.get(URL, params={"q": "races", "type": "FAQ"})  # english stems
    assert [i["title"] for i in stemmed.json()["items"]] == ["How to race"]

    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(URL, params=params)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 4

    listed = await client.get(f"{URL}?type=NEWS")
    assert (
        await client.get(f"{URL}?type=NEWS", headers={"If-None-Match": listed.headers["etag"]})
    ).status_code == 304
    tags = await client.get("/api/v1/tags")
    assert tags.json()["items"][:2] == [{"tag": "racing", "count": 3}, {"tag": "pvp", "count": 2}]
    assert (await client.get(f"{URL}?cursor=garbage")).status_code == 422
    assert (await client.get(f"{URL}?type=BLOG")).status_code == 422


async def test_reads_pick_the_best_locale_and_fall_back_to_english(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    await _published(client, editor, title="Welcome", slug="welcome")
    await _published(client, editor, title="Willkommen", slug="welcome", locale="de")
    url = f"{URL}/news/welcome"
    assert (
        await _eventually(client, url, lambda r: r.status_code == 200, params={"locale": "de"})
    ).json()["title"] == "Willkommen"
    austrian = await client.get(url, headers={"Accept-Language": "de-AT,de;q=0.9,en;q=0.5"})
    assert austrian.json()["title"] == "Willkommen"
    assert austrian.headers["vary"] == "Accept-Language"
    assert (await client.get(url, headers={"Accept-Language": "fr-FR"})).json()[
        "title"
    ] == "Welcome"
    assert (await client.get(url, headers={"Accept-Language": "garbage;;;q=x"})).json()[
        "title"
    ] == "Welcome"
    assert (await client.get(f"{URL}/NEWS/welcome")).json()["title"] == "Welcome"
    assert (await client.get(f"{URL}/news/Not_A_Slug")).status_code == 404


async def test_scheduled_content_is_published_by_the_worker_when_due(
    client: httpx.AsyncClient, editor: dict[str, str], content_worker: None
) -> None:
    created = (await _create(client, editor)).json()
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    scheduled = await client.post(
        f"{URL}/{created['id']}/publish", json={"publishAt": soon}, headers=editor
    )
    assert scheduled.json()["status"] == "SCHEDULED"
    public = f"{URL}/news/{created['slug']}"
    assert (await client.get(public)).status_code == 404
    await asyncio.sleep(1)
    read = await _eventually(client, public, lambda r: r.status_code == 200)
    assert read.json()["publishedAt"] is not None
    item = (await client.get(f"{URL}/{created['id']}", headers=editor)).json()
    assert item["status"] == "PUBLISHED"


@pytest.mark.parametrize(
    "settings_overrides", [{"cors_origins": ["https://play.example.com"]}], ids=["cors"]
)
async def test_answers_from_the_cache_are_the_same_as_fresh_ones(
    app: FastAPI, client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    assert await app.state.inbox_hub.wait_connected(within=5)  # the cache needs LISTEN
    await _published(client, editor, title="Cached", slug="cached")
    url = f"{URL}/news/cached"
    origin = {"Origin": "https://play.example.com", "Accept-Language": "de"}
    # An extra parameter sends the read through the app; without, the fast path answers.
    fresh = await _eventually(
        client, f"{url}?via=app", lambda r: r.status_code == 200, headers=origin
    )
    cached = await client.get(url, headers=origin)
    key = cache_key("/api/v1/content/news/cached", b"", "de")
    assert key is not None and app.state.content_cache.get(key) is not None
    again = await client.get(url, headers=origin)
    assert again.content == cached.content
    assert cached.content == fresh.content
    for header in ("etag", "cache-control", "vary", "content-type", "access-control-allow-origin"):
        assert cached.headers[header] == fresh.headers[header], header
    assert cached.headers["x-request-id"] != fresh.headers["x-request-id"]
    not_modified = await client.get(url, headers={**origin, "If-None-Match": fresh.headers["etag"]})
    assert not_modified.status_code == 304
    assert not_modified.headers["access-control-allow-origin"] == "https://play.example.com"
    # An editor's route with the same shape is never served from it.
    assert (await client.get(f"{URL}/{uuid.uuid4()}/revisions")).status_code == 401


async def test_the_fast_json_of_an_item_is_exactly_what_the_schema_gives(
    client: httpx.AsyncClient, editor: dict[str, str], db: asyncpg.Pool
) -> None:
    media_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO media_assets (id, file_name, url, mime_type, size_bytes, status, "
        "storage_key, storage_backend) VALUES ($1, 'a.png', '/x', 'image/png', 1, 'READY', "
        "$2, 'local')",
        media_id,
        f"media/{media_id}/original",
    )
    await _published(
        client,
        editor,
        title="Ünïcode <b>",
        slug="exact",
        tags=["a b", "ç"],
        media=[str(media_id)],
        attributes={"nested": {"list": [1, 2.5, None, True, "ü"]}, "empty": {}},
    )
    row = await repo.published_by_slug(db, "NEWS", "exact", ["en"])
    assert row is not None
    schema = PublicContent.model_validate(dict(row)).model_dump_json(by_alias=True).encode()
    assert to_json(public_item(row)) == schema
