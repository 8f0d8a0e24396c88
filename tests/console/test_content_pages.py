"""The content pages: every item in every status with filters and paging, the editor and
its preview (the very HTML players get), publishing, two editors saving the same item,
revisions with their diffs and restore; and who may use them."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.console.conftest import ConsoleClients
from tests.console.support import csrf_of, post_form, sign_in, signed_in, staff_member, text_of
from tests.factories import bearer, register
from tests.web.html import assert_no_inline_code, csp, parse

API = "/api/v1/content"


async def api_create(
    client: httpx.AsyncClient, auth: dict[str, Any], **body: Any
) -> dict[str, Any]:
    response = await client.post(API, json=body, headers=bearer(auth))
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


async def api_get(
    client: httpx.AsyncClient, auth: dict[str, Any], content_id: str
) -> dict[str, Any]:
    response = await client.get(f"{API}/{content_id}", headers=bearer(auth))
    assert response.status_code == 200, response.text
    item: dict[str, Any] = response.json()
    return item


def titles(response: httpx.Response) -> list[str]:
    return [a.text for a in parse(response).find("a") if "item-title" in a.attrs.get("class", "")]


def form_fields(response: httpx.Response, form_id: str = "content-form") -> dict[str, Any]:
    """What the browser would post from the editor's form as the page stands."""
    page = parse(response)
    fields: dict[str, Any] = {}
    inside = False
    for element in page.elements:
        if element.tag == "form":
            inside = element.attrs.get("id") == form_id
            continue
        owner = element.attrs.get("form")
        if not (inside or owner == form_id) or "name" not in element.attrs:
            continue
        name = element.attrs["name"]
        if element.tag == "input" and element.attrs.get("type") == "checkbox":
            if "checked" in element.attrs:
                fields.setdefault(name, []).append(element.attrs["value"])
        elif element.tag == "textarea":
            fields[name] = element.text.removeprefix("\n")
        elif element.tag == "select":
            fields[name] = None  # filled from its selected option below
        elif element.tag == "input":
            fields[name] = element.attrs.get("value", "")
    for select in page.find("select"):
        if select.attrs.get("name") in fields:
            chosen = _selected_option(response, select.attrs["id"])
            fields[select.attrs["name"]] = chosen
    return fields


def _selected_option(response: httpx.Response, select_id: str) -> str:
    block = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', response.text, re.S)
    assert block, select_id
    chosen = re.search(r'<option value="([^"]*)" selected>', block.group(1))
    first = re.search(r'<option value="([^"]*)"', block.group(1))
    assert first
    return (chosen or first).group(1)


async def test_every_status_is_listed_and_filtered(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    editor = await signed_in(browser, client, db, "editor")
    await api_create(
        client,
        editor,
        type="NEWS",
        title="Patch notes 1.2",
        tags=["Patch"],
        content="Faster loading.",
    )
    game = await api_create(
        client, editor, type="GAME", title="Star Racer", locale="de", content="Schnelle Autos."
    )
    await client.post(f"{API}/{game['id']}/publish", headers=bearer(editor))
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    soon = await api_create(client, editor, type="NEWS", title="Season 4 teaser")
    await client.post(
        f"{API}/{soon['id']}/publish", json={"publishAt": later}, headers=bearer(editor)
    )
    faq = await api_create(client, editor, type="FAQ", title="How do refunds work")
    await client.delete(f"{API}/{faq['id']}", headers=bearer(editor))

    everything = await browser.get("/console/content")
    assert everything.status_code == 200
    assert titles(everything) == [
        "How do refunds work", "Season 4 teaser", "Star Racer", "Patch notes 1.2",
    ]  # fmt: skip
    text = text_of(everything)
    for status in ("Draft", "Published", "Scheduled", "Archived"):
        assert status in text
    assert_no_inline_code(everything)

    async def listed(query: str) -> list[str]:
        return titles(await browser.get(f"/console/content?{query}"))

    assert await listed("type=GAME") == ["Star Racer"]
    assert await listed("status=SCHEDULED") == ["Season 4 teaser"]
    assert await listed("status=draft") == ["Patch notes 1.2"]
    assert await listed("locale=de") == ["Star Racer"]
    assert await listed("tag=patch") == ["Patch notes 1.2"]
    assert await listed("q=racer") == ["Star Racer"]  # in the title
    assert await listed("q=loading") == ["Patch notes 1.2"]  # in the text (stemmed)
    assert await listed("q=nothing+like+this") == []
    bad = await browser.get("/console/content?locale=not_a_locale!")
    assert bad.status_code == 200
    assert "language tag" in text_of(bad)
    page = parse(await browser.get("/console/content?type=GAME&status=PUBLISHED"))
    assert page.one("option", value="GAME").attrs.get("selected") is not None
    for field in ("q", "type", "status", "locale", "tag"):
        assert page.one("label", for_=field)


async def test_the_list_pages_by_cursor_without_repeats(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "editor")
    # One statement: every row changed at the same instant, so the id breaks the ties.
    await db.execute(
        "INSERT INTO content (id, type, title, slug, format, content) "
        "SELECT gen_random_uuid(), 'NEWS', 'Bulk ' || i, 'bulk-' || i, 'MARKDOWN', '' "
        "FROM generate_series(1, 57) i"
    )
    first = await browser.get("/console/content?q=bulk")
    assert len(titles(first)) == 50
    [more] = [a for a in parse(first).find("a") if a.text == "Next page"]
    assert "q=bulk" in more.attrs["href"]
    second = await browser.get(more.attrs["href"])
    assert len(titles(second)) == 7
    assert len(set(titles(first)) | set(titles(second))) == 57
    assert not [a for a in parse(second).find("a") if a.text == "Next page"]


async def test_an_item_is_created_and_edited_with_errors_shown_in_place(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    editor = await signed_in(browser, client, db, "editor")
    blank = await browser.get("/console/content/new?type=GAME")
    assert blank.status_code == 200
    assert_no_inline_code(blank)
    page = parse(blank)
    for field in (
        "title",
        "type",
        "locale",
        "format",
        "slug",
        "content-body",
        "tags",
        "attributes",
    ):
        assert page.one("label", for_=field)
    assert page.one("option", value="GAME").attrs.get("selected") is not None

    token = csrf_of(blank)
    refused = await post_form(
        browser,
        "/console/content/new",
        {"type": "NEWS", "title": "", "content": "My **draft**\r\nline two", "attributes": "[1]"},
        token=token,
    )
    assert refused.status_code == 422
    again = parse(refused)
    assert again.one("textarea", name="content").text.strip() == "My **draft**\nline two"
    assert again.one("input", name="title").attrs.get("aria-invalid") == "true"
    assert "Must be a JSON object" in text_of(refused)
    assert await db.fetchval("SELECT count(*) FROM content") == 0

    created = await post_form(
        browser,
        "/console/content/new",
        {
            "type": "NEWS",
            "title": "Season 3 is live",
            "locale": "en",
            "format": "MARKDOWN",
            "content": "New maps,\r\n**new rewards**.",
            "tags": "Season 3, patch notes, season 3",
            "attributes": '{"heroImageAlt": "Desert map"}',
        },
        token=token,
    )
    assert created.status_code == 303, created.text
    location = created.headers["location"]
    content_id = location.rsplit("/", 1)[1]
    item = await api_get(client, editor, content_id)
    assert item["status"] == "DRAFT" and item["slug"] == "season-3-is-live"
    assert item["content"] == "New maps,\n**new rewards**."
    assert item["tags"] == ["season 3", "patch notes"]
    assert item["attributes"] == {"heroImageAlt": "Desert map"}
    assert item["html"] == "<p>New maps,\n<strong>new rewards</strong>.</p>\n"
    edit = await browser.get(location)
    assert edit.status_code == 200
    assert "Draft “Season 3 is live” created." in text_of(edit)

    # The same slug again: refused on the slug field, everything typed kept.
    taken = await post_form(
        browser,
        "/console/content/new",
        {"type": "NEWS", "title": "Another", "slug": "season-3-is-live", "content": "Mine"},
        token=token,
    )
    assert taken.status_code == 422
    assert parse(taken).one("input", name="slug").attrs.get("aria-invalid") == "true"
    assert "already has the slug" in text_of(taken)
    assert parse(taken).one("textarea", name="content").text.strip() == "Mine"

    # Editing: only what changed is sent, as a PATCH with If-Match would.
    fields = form_fields(edit)
    assert fields["version"] == "1"
    fields["title"] = "Season 3 is live: ranked play"
    saved = await post_form(browser, location, fields, token=token)
    assert saved.status_code == 303, saved.text
    item = await api_get(client, editor, content_id)
    assert (item["title"], item["version"]) == ("Season 3 is live: ranked play", 2)
    assert item["slug"] == "season-3-is-live"  # a slug never follows a title by itself
    unchanged = await post_form(
        browser, location, form_fields(await browser.get(location)), token=token
    )
    assert unchanged.status_code == 303
    assert "Nothing changed." in text_of(await browser.get(location))
    assert (await api_get(client, editor, content_id))["version"] == 2
    assert await db.fetchval("SELECT count(*) FROM content_revisions") == 2


async def test_a_refused_save_leaves_nothing_half_saved(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    """A title changed together with media that does not exist: the service refuses the
    media after setting the title on its object; the page must not commit that title."""
    editor = await signed_in(browser, client, db, "editor")
    item = await api_create(client, editor, type="NEWS", title="Kept title")
    path = f"/console/content/{item['id']}"
    page = await browser.get(path)
    fields = form_fields(page)
    fields["title"] = "Half saved?"
    fields["media"] = [str(uuid.uuid4())]
    refused = await post_form(browser, path, fields, token=csrf_of(page))
    assert refused.status_code == 422
    assert "No media asset has id" in text_of(refused)
    assert parse(refused).one("input", name="title").attrs["value"] == "Half saved?"
    stored = await api_get(client, editor, item["id"])
    assert (stored["title"], stored["version"]) == ("Kept title", 1)


HOSTILE = (
    "# Patch notes\n\nRead **this**: [site](https://example.com) and "
    "[bad](javascript:alert(1))\n\n<script>alert(1)</script>\n"
    '<img src="x" onerror="alert(1)">\n\n'
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
)


async def test_the_preview_is_exactly_what_the_public_read_serves(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await signed_in(browser, client, db, "editor")
    media_id = uuid.uuid4()
    source = HOSTILE + f"![cover](/api/v1/media/{media_id}/file)\n"
    new = await browser.get("/console/content/new")
    token = csrf_of(new)
    preview = await browser.post(
        "/console/content/preview",
        data={"format": "MARKDOWN", "content": source},
        headers={"HX-Request": "true", "X-CSRF-Token": token, "Origin": "https://testserver"},
    )
    assert preview.status_code == 200, preview.text
    assert "<script" not in preview.text and "onerror" not in preview.text
    assert 'href="javascript' not in preview.text
    # Media links made absolute on the public base URL, as saving does.
    assert f'src="http://127.0.0.1:8000/api/v1/media/{media_id}/file"' in preview.text
    # ... which the page's CSP lets it show.
    assert "http://127.0.0.1:8000" in csp(preview)["img-src"]

    created = await post_form(
        browser,
        "/console/content/new",
        {"type": "NEWS", "title": "Patch notes", "format": "MARKDOWN", "content": source},
        token=token,
    )
    content_id = created.headers["location"].rsplit("/", 1)[1]
    published = await post_form(
        browser, f"/console/content/{content_id}/publish", {"version": "1"}, token=token
    )
    assert published.status_code == 303
    public = await client.get(f"{API}/news/patch-notes")
    assert public.status_code == 200
    html = public.json()["html"]
    assert html and "<table>" in html
    fragment = re.search(r"<div class=\"prose\" data-preview-html>(.*)</div>", preview.text, re.S)
    assert fragment and fragment.group(1) == html

    # The editor page itself shows the same preview, and the HTML format is cleaned alike.
    edit = await browser.get(f"/console/content/{content_id}")
    assert html in edit.text
    as_html = await browser.post(
        "/console/content/preview",
        data={"format": "HTML", "content": '<p onclick="x()">Hi<style>p{}</style></p>'},
        headers={"HX-Request": "true", "X-CSRF-Token": token, "Origin": "https://testserver"},
    )
    assert "<p>Hi</p>" in as_html.text
    broken = await browser.post(
        "/console/content/preview",
        data={"format": "JSON", "content": "{nope"},
        headers={"HX-Request": "true", "X-CSRF-Token": token, "Origin": "https://testserver"},
    )
    assert "Not valid JSON" in text_of(broken)


async def test_the_preview_button_works_without_javascript(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    editor = await signed_in(browser, client, db, "editor")
    item = await api_create(client, editor, type="FAQ", title="Refunds", content="Old")
    edit = await browser.get(f"/console/content/{item['id']}")
    page = parse(edit)
    [button] = [b for b in page.find("button") if b.attrs.get("formaction")]
    assert button.attrs["formaction"] == "/console/content/preview"
    # The live preview: an htmx POST of the text and format whenever they change.
    preview = page.one("div", id="preview")
    assert preview.attrs["hx-post"] == "/console/content/preview"
    assert preview.attrs["hx-include"] == "#content-body, #format"
    fields = form_fields(edit)
    fields["content"] = "*Unsaved* words"
    shown = await post_form(browser, "/console/content/preview", fields, token=csrf_of(edit))
    assert shown.status_code == 200
    assert "<em>Unsaved</em> words" in shown.text
    again = parse(shown)
    assert again.one("textarea", name="content").text.strip() == "*Unsaved* words"
    assert form_fields(shown)["version"] == "1"
    assert (await api_get(client, editor, item["id"]))["content"] == "Old"


async def test_publish_schedule_unpublish_and_archive(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    editor = await signed_in(browser, client, db, "editor")
    item = await api_create(client, editor, type="NEWS", title="Launch day", content="Go!")
    path = f"/console/content/{item['id']}"
    token = csrf_of(await browser.get(path))

    async def status() -> tuple[str, int]:
        found = await api_get(client, editor, item["id"])
        return found["status"], found["version"]

    when = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
    past = await post_form(
        browser, f"{path}/publish", {"version": "1", "publish_at": "2001-01-01T10:00"}, token=token
    )
    assert past.status_code == 303
    assert "in the future" in text_of(await browser.get(path))
    scheduled = await post_form(
        browser,
        f"{path}/publish",
        {"version": "1", "publish_at": when.strftime("%Y-%m-%dT%H:%M")},
        token=token,
    )
    assert scheduled.status_code == 303
    assert await status() == ("SCHEDULED", 2)
    page = await browser.get(path)
    assert f"Will be published at {when:%Y-%m-%d %H:%M} UTC" in text_of(page)
    assert (await client.get(f"{API}/news/launch-day")).status_code == 404

    stale = await post_form(browser, f"{path}/publish", {"version": "1"}, token=token)
    assert stale.status_code == 303  # an old page: refused, and said why
    assert "Someone changed this item" in text_of(await browser.get(path))
    assert await status() == ("SCHEDULED", 2)

    await post_form(browser, f"{path}/publish", {"version": "2"}, token=token)
    assert await status() == ("PUBLISHED", 3)
    assert (await client.get(f"{API}/news/launch-day")).status_code == 200
    page = await browser.get(path)
    assert "Published." in text_of(page) and "Public since" in text_of(page)
    actions = {f.attrs["action"] for f in parse(page).find("form")}
    assert f"{path}/unpublish" in actions and f"{path}/publish" not in actions

    await post_form(browser, f"{path}/unpublish", {"version": "3"}, token=token)
    assert await status() == ("DRAFT", 4)
    assert (await client.get(f"{API}/news/launch-day")).status_code == 404
    again = await post_form(browser, f"{path}/unpublish", {"version": "4"}, token=token)
    assert again.status_code == 303
    assert "Not possible: it is DRAFT" in text_of(await browser.get(path))

    await post_form(browser, f"{path}/archive", {"version": "4"}, token=token)
    assert await status() == ("ARCHIVED", 5)
    assert "Archived: not public" in text_of(await browser.get(path))
    # Publishing, a status change, is not a revision; saves are.
    assert await db.fetchval("SELECT count(*) FROM content_revisions") == 1


async def test_a_conflicting_save_keeps_the_editors_text_and_shows_whose_came_first(
    browsers: ConsoleClients, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    ada_browser, bob_browser = browsers(), browsers()
    ada = await staff_member(client, db, "editor")
    await db.execute(
        "UPDATE users SET name = 'Ada Editor' WHERE id = $1", uuid.UUID(ada["user"]["id"])
    )
    await sign_in(ada_browser, ada["user"]["email"])
    bob = await signed_in(bob_browser, client, db, "editor")
    item = await api_create(
        client, bob, type="NEWS", title="Patch 2.0", content="Intro\nOld line\nOutro"
    )
    path = f"/console/content/{item['id']}"
    ada_page, bob_page = await ada_browser.get(path), await bob_browser.get(path)

    ada_fields = form_fields(ada_page)
    ada_fields["content"] = "Intro\nAda's line\nOutro"
    assert (
        await post_form(ada_browser, path, ada_fields, token=csrf_of(ada_page))
    ).status_code == 303

    bob_fields = form_fields(bob_page)
    bob_fields["content"] = "Intro\nBob's careful line\nOutro"
    bob_fields["title"] = "Patch 2.0 notes"
    conflict = await post_form(bob_browser, path, bob_fields, token=csrf_of(bob_page))
    assert conflict.status_code == 409
    text = text_of(conflict)
    assert "someone else saved this item first" in text
    assert "Ada Editor" in text and ada["user"]["email"] in text
    assert "You started from version 1; it is now at version 2" in text
    page = parse(conflict)
    # Bob's text and title stay in the form; theirs is beside it, with the difference.
    assert page.one("textarea", name="content").text.strip() == "Intro\nBob's careful line\nOutro"
    assert page.one("input", name="title").attrs["value"] == "Patch 2.0 notes"
    assert page.one("textarea", id="their-text").text.strip() == "Intro\nAda's line\nOutro"
    removed = [r.text for r in page.find("tr") if r.attrs.get("class") == "diff-del"]
    added = [r.text for r in page.find("tr") if r.attrs.get("class") == "diff-add"]
    assert any("Ada's line" in r for r in removed) and any("Bob's careful line" in a for a in added)
    assert "Patch 2.0 notes" in text  # the title differs too, shown in the fields table
    assert form_fields(conflict)["version"] == "2"
    stored = await api_get(client, bob, item["id"])
    assert (stored["content"], stored["version"]) == ("Intro\nAda's line\nOutro", 2)
    assert_no_inline_code(conflict)

    # Saving again, having seen theirs: Bob's version wins, Ada's stays a revision.
    resaved = await post_form(bob_browser, path, form_fields(conflict), token=csrf_of(conflict))
    assert resaved.status_code == 303, resaved.text
    stored = await api_get(client, bob, item["id"])
    assert stored["content"] == "Intro\nBob's careful line\nOutro"
    assert stored["title"] == "Patch 2.0 notes" and stored["version"] == 3
    revisions = await client.get(f"{API}/{item['id']}/revisions", headers=bearer(bob))
    assert [r["snapshot"]["content"] for r in revisions.json()["items"]][1] == (
        "Intro\nAda's line\nOutro"
    )

    # "Discard mine, load theirs" is the plain editor page.
    links = [a.attrs["href"] for a in page.find("a") if a.text == "discard yours and load theirs"]
    assert links == [path]


async def test_revisions_show_their_diff_and_one_is_restored(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    editor = await signed_in(browser, client, db, "editor")
    item = await api_create(
        client, editor, type="FAQ", title="Refunds", content="one\ntwo\nthree", tags=["billing"]
    )
    path = f"/console/content/{item['id']}"
    edit = await browser.get(path)
    token = csrf_of(edit)
    fields = form_fields(edit)
    fields.update(content="one\n2 <b>bold</b>\nthree", tags="billing, refunds")
    await post_form(browser, path, fields, token=token)

    listing = await browser.get(f"{path}/revisions")
    assert listing.status_code == 200
    text = text_of(listing)
    assert "Created" in text and "Tags" in text and "+1 −1 lines" in text
    assert_no_inline_code(listing)

    second = await browser.get(f"{path}/revisions/2")
    assert second.status_code == 200
    page = parse(second)
    deleted = [
        " ".join(r.text.split()) for r in page.find("tr") if r.attrs.get("class") == "diff-del"
    ]
    added = [
        " ".join(r.text.split()) for r in page.find("tr") if r.attrs.get("class") == "diff-add"
    ]
    assert deleted == ["2 −removed: two"]  # old line 2
    assert added == ["2 +added: 2 <b>bold</b>"]  # new line 2
    # The diff shows text, never markup from it.
    assert "<b>bold</b>" not in second.text and "&lt;b&gt;bold&lt;/b&gt;" in second.text
    assert "billing, refunds" in text_of(second)
    assert_no_inline_code(second)

    against = await browser.get(f"{path}/revisions/1?against=current")
    assert "What restoring it would change" in text_of(against)
    assert "Current (version 2)" in text_of(against)

    restore = [f for f in parse(against).find("form") if f.attrs["action"].endswith("/restore")]
    assert restore and restore[0].attrs["action"] == f"{path}/revisions/1/restore"
    restored = await post_form(
        browser, f"{path}/revisions/1/restore", {"version": "2"}, token=token
    )
    assert restored.status_code == 303
    assert restored.headers["location"] == path
    stored = await api_get(client, editor, item["id"])
    assert (stored["content"], stored["tags"], stored["version"]) == (
        "one\ntwo\nthree", ["billing"], 3,
    )  # fmt: skip
    assert "Restored revision 1: saved as version 3." in text_of(await browser.get(path))
    stale = await post_form(browser, f"{path}/revisions/2/restore", {"version": "2"}, token=token)
    assert stale.status_code == 303
    assert "Someone changed this item" in text_of(await browser.get(stale.headers["location"]))
    assert (await api_get(client, editor, item["id"]))["version"] == 3
    missing = await browser.get(f"{path}/revisions/9")
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/console/content"),
        ("GET", "/console/content/new"),
        ("POST", "/console/content/new"),
        ("POST", "/console/content/preview"),
        ("GET", "/console/content/media-picker"),
        ("GET", "/console/content/{id}"),
        ("POST", "/console/content/{id}"),
        ("POST", "/console/content/{id}/publish"),
        ("POST", "/console/content/{id}/unpublish"),
        ("POST", "/console/content/{id}/archive"),
        ("GET", "/console/content/{id}/revisions"),
        ("GET", "/console/content/{id}/revisions/1"),
        ("POST", "/console/content/{id}/revisions/1/restore"),
    ],
)
async def test_marketers_are_refused_and_visitors_sent_to_sign_in(
    method: str,
    path: str,
    browsers: ConsoleClients,
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
) -> None:
    editor = await staff_member(client, db, "editor")
    item = await api_create(client, editor, type="NEWS", title="Secret draft", content="Shh")
    url = path.replace("{id}", item["id"])
    marketer = browsers()
    await signed_in(marketer, client, db, "marketer")
    token = csrf_of(await marketer.get("/console"))
    headers = {"Origin": "https://testserver", "X-CSRF-Token": token}
    refused = await marketer.request(method, url, headers=headers, data={"version": "1"})
    assert refused.status_code == 403
    assert "Secret draft" not in refused.text
    assert "Editor" in text_of(refused)
    anonymous = await browsers().request(method, url, headers={"Origin": "https://testserver"})
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/console/login")
    assert (await api_get(client, editor, item["id"]))["version"] == 1


async def test_the_sidebar_shows_content_and_media_to_editors_only(
    browsers: ConsoleClients, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    def nav(response: httpx.Response) -> list[str]:
        page = parse(response)
        return [a.text for a in page.find("a") if a.attrs.get("href", "").startswith("/console/")]

    editor, marketer, admin = browsers(), browsers(), browsers()
    await signed_in(editor, client, db, "editor")
    await signed_in(marketer, client, db, "marketer")
    await signed_in(admin, client, db, "admin")
    page = await editor.get("/console/content")
    assert "Content" in nav(page) and "Media library" in nav(page)
    assert next(a for a in parse(page).find("a") if a.attrs.get("aria-current") == "page").text == (
        "Content"
    )
    assert "Content" not in nav(await marketer.get("/console"))
    assert (await admin.get("/console/content")).status_code == 200
    # A player cannot sign in at all (tests/console/test_auth.py); here: no page either.
    player = await register(client)
    assert (await sign_in(browsers(), player["user"]["email"])).status_code != 303
