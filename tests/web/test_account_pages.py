"""The pages the links in account mail open (verify-email, reset-password, unsubscribe),
driven over HTTP as a browser without JavaScript would: GET shows a form, its POST acts
through the same services as the API, and the answer is a page."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from gameportal.identity.tokens import hash_refresh_token
from gameportal.notifications.unsubscribe import Unsubscribe, sign
from tests.conftest import make_settings
from tests.factories import STRONG_PASSWORD, bearer, register
from tests.notifications.support import queued_link
from tests.web.html import assert_no_inline_code, csp, parse

SECRET_KEY = make_settings("postgresql://unused/x").secret_key
NEW_PASSWORD = "amber-falcon-orchard-51"


def _path(link: str) -> str:
    """The path and query of a mailed link, to open with the test client."""
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def _assert_page(response: httpx.Response, status: int = 200) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert_no_inline_code(response)
    policy = csp(response)
    assert policy["default-src"] == ["'none'"]
    assert "script-src" not in policy  # so default-src: no script at all
    assert policy["form-action"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    page = parse(response)
    assert page.find("main", id="main"), "a main landmark"
    assert page.find("header"), "a banner landmark"
    assert page.one("html").attrs["lang"]


def _form(response: httpx.Response, form_id: str) -> tuple[str, dict[str, str]]:
    """A form's action and hidden fields, checked for what a person needs to use it."""
    page = parse(response)
    form = page.one("form", id=form_id)
    assert form.attrs["method"] == "post"
    hidden = {e.attrs["name"]: e.attrs["value"] for e in page.find("input", type="hidden")}
    assert page.find("button", type="submit"), "a button to press"
    for field in page.find("input"):
        if field.attrs.get("type") != "hidden" and "hidden" not in field.attrs:
            assert page.find("label", for_=field.attrs["id"]), f"no label for {field}"
    return form.attrs["action"], hidden


async def _submit(
    client: httpx.AsyncClient, page_path: str, action: str, fields: dict[str, str], **headers: str
) -> httpx.Response:
    target = urlsplit(str(httpx.URL("http://testserver" + page_path).join(action))).path
    return await client.post(target, data=fields, headers=headers)


async def _stored_token(db: asyncpg.Pool, user_id: str, purpose: str, *, expired: bool) -> str:
    token = secrets.token_urlsafe(32)
    await db.execute(
        "INSERT INTO account_tokens (token_hash, purpose, user_id, expires_at) "
        "VALUES ($1, $2, $3, now() + $4 * interval '1 minute')",
        hash_refresh_token(token),
        purpose,
        uuid.UUID(user_id),
        -1 if expired else 30,
    )
    return token


# --- verify email --------------------------------------------------------------------------


async def test_the_verification_link_confirms_the_address_with_a_button(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    player = await register(client)
    link = await queued_link(db, SECRET_KEY, "verify_email")
    assert link.startswith("http://127.0.0.1:8000/verify-email?token=")  # the default page

    shown = await client.get(_path(link))
    _assert_page(shown)
    action, fields = _form(shown, "verify-email-form")
    assert parse(shown).one("button", id="verify-email-submit")
    # Opening the link changed nothing (mail scanners open links).
    me = await client.get("/api/v1/me", headers=bearer(player))
    assert me.json()["emailVerifiedAt"] is None

    done = await _submit(client, _path(link), action, fields)
    _assert_page(done)
    assert parse(done).one("h1", id="result").text == "Email address confirmed"
    me = await client.get("/api/v1/me", headers=bearer(player))
    assert me.json()["emailVerifiedAt"] is not None

    # The link is spent: both the page and its form now say so.
    _assert_page(await client.get(_path(link)), 400)
    again = await _submit(client, _path(link), action, fields)
    _assert_page(again, 400)
    assert "does not work" in parse(again).one("h1", id="result").text


async def test_expired_and_unknown_verification_links_show_an_error_page(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    player = await register(client)
    expired = await _stored_token(db, player["user"]["id"], "verify_email", expired=True)
    for token in (expired, "not-a-token", "", "x" * 2000):
        response = await client.get("/verify-email", params={"token": token})
        _assert_page(response, 400)
        assert parse(response).one("h1", id="result").text == "This link does not work"
        assert not parse(response).find("form")
    posted = await client.post("/verify-email", data={"token": expired})
    _assert_page(posted, 400)
    nothing = await client.post("/verify-email")  # no form at all
    _assert_page(nothing, 400)


# --- reset password ------------------------------------------------------------------------


async def _reset_link(client: httpx.AsyncClient, db: asyncpg.Pool, email: str) -> str:
    asked = await client.post("/api/v1/auth/password-reset/request", json={"email": email})
    assert asked.status_code == 202
    for _ in range(100):  # the mail is queued just after the answer (see the service)
        count = await db.fetchval(
            "SELECT count(*) FROM messages WHERE payload->>'template' = 'password_reset'"
        )
        if count:
            break
        await asyncio.sleep(0.05)
    return await queued_link(db, SECRET_KEY, "password_reset")


async def _login(client: httpx.AsyncClient, email: str, password: str) -> int:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    return response.status_code


async def test_the_reset_link_sets_a_new_password_and_the_old_one_stops_working(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    player = await register(client)
    email = player["user"]["email"]
    link = await _reset_link(client, db, email)
    assert link.startswith("http://127.0.0.1:8000/reset-password?token=")

    shown = await client.get(_path(link))
    _assert_page(shown)
    action, fields = _form(shown, "reset-password-form")
    page = parse(shown)
    for field_id in ("new-password", "confirm-password"):
        field = page.one("input", id=field_id)
        assert field.attrs["type"] == "password"
        assert field.attrs["autocomplete"] == "new-password"
    assert page.one("label", for_="new-password").text == "New password"
    assert page.one("button", id="reset-password-submit")
    assert page.one("input", autocomplete="username").attrs["value"] == email

    done = await _submit(
        client,
        _path(link),
        action,
        {**fields, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
    )
    _assert_page(done)
    assert parse(done).one("h1", id="result").text == "Password changed"
    assert await _login(client, email, STRONG_PASSWORD) == 401
    assert await _login(client, email, NEW_PASSWORD) == 200
    # Every session ended, as with the API's reset.
    assert (await client.get("/api/v1/me", headers=bearer(player))).status_code == 401
    # Used up.
    _assert_page(await client.get(_path(link)), 400)


@pytest.mark.parametrize(
    ("new", "confirm", "field_id", "words"),
    [
        ("short1", "short1", "new-password", "at least 8 characters"),
        ("password123", "password123", "new-password", "common"),
        (NEW_PASSWORD, NEW_PASSWORD + "x", "confirm-password", "not the same"),
        ("y" * 200, "y" * 200, "new-password", "at most 128 characters"),
    ],
)
async def test_a_refused_password_is_shown_at_its_field_and_keeps_the_link(
    client: httpx.AsyncClient, db: asyncpg.Pool, new: str, confirm: str, field_id: str, words: str
) -> None:
    player = await register(client)
    token = await _stored_token(db, player["user"]["id"], "password_reset", expired=False)
    refused = await client.post(
        "/reset-password",
        data={"token": token, "new_password": new, "confirm_password": confirm},
    )
    _assert_page(refused, 422)
    page = parse(refused)
    field = page.one("input", id=field_id)
    assert field.attrs["aria-invalid"] == "true"
    error = page.one("p", id=f"{field_id}-error")
    assert words in error.text.lower()
    assert f"{field_id}-error" in field.attrs["aria-describedby"].split()
    summary = page.one("div", id="error-summary")
    assert "autofocus" in summary.attrs and summary.attrs["role"] == "alert"
    assert page.find("a", href=f"#{field_id}")
    assert page.one("input", name="token").attrs["value"] == token  # try again on this page
    # Nothing changed and the link still works.
    assert await _login(client, player["user"]["email"], STRONG_PASSWORD) == 200
    ok = await client.post(
        "/reset-password",
        data={"token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
    )
    _assert_page(ok)


async def test_expired_and_unknown_reset_links_show_an_error_page(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    player = await register(client)
    expired = await _stored_token(db, player["user"]["id"], "password_reset", expired=True)
    for token in (expired, "not-a-token"):
        _assert_page(await client.get("/reset-password", params={"token": token}), 400)
        posted = await client.post(
            "/reset-password",
            data={"token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
        )
        _assert_page(posted, 400)
        assert parse(posted).one("h1", id="result").text == "This link does not work"
    assert await _login(client, player["user"]["email"], STRONG_PASSWORD) == 200


async def test_a_form_posted_from_another_site_is_refused(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    player = await register(client)
    token = await _stored_token(db, player["user"]["id"], "password_reset", expired=False)
    fields = {"token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    for origin in ("https://evil.example", "null"):
        refused = await client.post("/reset-password", data=fields, headers={"Origin": origin})
        _assert_page(refused, 403)
    assert await _login(client, player["user"]["email"], STRONG_PASSWORD) == 200
    # The page's own origin (as the browser names it) and the public base URL's pass.
    ok = await client.post("/reset-password", data=fields, headers={"Origin": "http://testserver"})
    _assert_page(ok)
    verify = await _stored_token(db, player["user"]["id"], "verify_email", expired=False)
    ok = await client.post(
        "/verify-email", data={"token": verify}, headers={"Origin": "http://127.0.0.1:8000"}
    )
    _assert_page(ok)


# --- unsubscribe ---------------------------------------------------------------------------


def _unsubscribe_token(user_id: str, category: str = "marketing") -> str:
    return sign(SECRET_KEY, Unsubscribe(uuid.UUID(user_id), "EMAIL", category))


async def _opt_outs(client: httpx.AsyncClient, player: dict[str, Any]) -> dict[str, Any]:
    response = await client.get("/api/v1/me/notification-preferences", headers=bearer(player))
    assert response.status_code == 200
    email: dict[str, Any] = response.json()["email"]
    return email


async def test_the_unsubscribe_page_turns_the_category_off(client: httpx.AsyncClient) -> None:
    player = await register(client)
    token = _unsubscribe_token(player["user"]["id"])
    shown = await client.get("/unsubscribe", params={"token": token})
    _assert_page(shown)
    action, fields = _form(shown, "unsubscribe-form")
    assert "news and offers" in parse(shown).one("main").text
    assert (await _opt_outs(client, player))["marketing"] is True

    done = await _submit(client, f"/unsubscribe?token={token}", action, fields)
    _assert_page(done)
    assert parse(done).one("h1", id="result").text == "Unsubscribed"
    assert (await _opt_outs(client, player))["marketing"] is False


async def test_rfc_8058_one_click_still_works_and_the_header_link_opens_the_page(
    client: httpx.AsyncClient,
) -> None:
    player = await register(client)
    token = _unsubscribe_token(player["user"]["id"])
    # What a mail provider does with List-Unsubscribe + List-Unsubscribe-Post.
    one_click = await client.post(
        "/api/v1/unsubscribe",
        params={"token": token},
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 204
    assert (await _opt_outs(client, player))["marketing"] is False

    # The same URL opened in a browser was a 405: now it leads to the page.
    opened = await client.get("/api/v1/unsubscribe", params={"token": token})
    assert opened.status_code == 303
    assert opened.headers["location"] == f"http://127.0.0.1:8000/unsubscribe?token={token}"
    _assert_page(await client.get(_path(opened.headers["location"])))

    # One-click to the page's own URL works too (for a publisher who puts it in the header).
    other = await register(client)
    page_token = _unsubscribe_token(other["user"]["id"])
    posted = await client.post(
        "/unsubscribe",
        params={"token": page_token},
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _assert_page(posted)
    assert (await _opt_outs(client, other))["marketing"] is False


async def test_a_changed_unsubscribe_link_shows_an_error_page(client: httpx.AsyncClient) -> None:
    player = await register(client)
    token = _unsubscribe_token(player["user"]["id"])
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (forged, "", _unsubscribe_token(player["user"]["id"], "account")):
        _assert_page(await client.get("/unsubscribe", params={"token": bad}), 400)
        _assert_page(await client.post("/unsubscribe", data={"token": bad}), 400)
    assert (await _opt_outs(client, player))["marketing"] is True


# --- languages -----------------------------------------------------------------------------


async def test_pages_speak_the_accounts_language_then_the_browsers_then_english(
    client: httpx.AsyncClient,
) -> None:
    german = await register(client, preferences={"language": "de"})
    token = _unsubscribe_token(german["user"]["id"])
    page = await client.get(
        "/unsubscribe", params={"token": token}, headers={"Accept-Language": "fr"}
    )
    _assert_page(page)
    assert parse(page).one("html").attrs["lang"] == "de"
    assert page.headers["content-language"] == "de"
    assert parse(page).one("button", id="unsubscribe-submit").text == "Abbestellen"

    nobody = await register(client)
    token = _unsubscribe_token(nobody["user"]["id"])
    by_browser = await client.get(
        "/unsubscribe", params={"token": token}, headers={"Accept-Language": "de-AT, en;q=0.5"}
    )
    assert parse(by_browser).one("html").attrs["lang"] == "de"
    fallback = await client.get(
        "/unsubscribe", params={"token": token}, headers={"Accept-Language": "ja, fr;q=0.8"}
    )
    assert parse(fallback).one("html").attrs["lang"] == "en"
    assert parse(fallback).one("button", id="unsubscribe-submit").text == "Unsubscribe"


async def test_a_german_reset_page_names_its_errors_in_german(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    player = await register(client, preferences={"language": "de"})
    token = await _stored_token(db, player["user"]["id"], "password_reset", expired=False)
    refused = await client.post(
        "/reset-password",
        data={"token": token, "new_password": "kurz", "confirm_password": "kurz"},
    )
    _assert_page(refused, 422)
    page = parse(refused)
    assert page.one("html").attrs["lang"] == "de"
    assert "mindestens 8 Zeichen" in page.one("p", id="new-password-error").text


# --- static files --------------------------------------------------------------------------


async def test_the_stylesheet_is_served_with_its_hash_and_cached_for_good(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/unsubscribe", params={"token": "x"})
    href = parse(page).one("link", rel="stylesheet").attrs["href"]
    assert href.startswith("/static/site.css?v=")
    css = await client.get(href)
    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert css.headers["x-content-type-options"] == "nosniff"
    # Without the current hash: cacheable only with revalidation, by its ETag.
    plain = await client.get("/static/site.css?v=old")
    assert plain.headers["cache-control"] == "no-cache"
    again = await client.get("/static/site.css", headers={"If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304
    assert (await client.get("/static/../config.py")).status_code == 404
    assert (await client.get("/static/nothing.css")).status_code == 404


# --- links in mail -------------------------------------------------------------------------


async def test_mailed_links_follow_the_templates_in_settings(database_url: str) -> None:
    from gameportal.app import create_app

    settings = make_settings(
        database_url,
        verify_email_url_template="https://play.example.com/account/verify?t={token}&x=1",
        reset_password_url_template="https://play.example.com/reset/{token}",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("8.8.8.8", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            db: asyncpg.Pool = app.state.db.pool
            player = await register(c)
            verify = await queued_link(db, SECRET_KEY, "verify_email")
            assert verify.startswith("https://play.example.com/account/verify?t=")
            assert verify.endswith("&x=1")
            reset = await _reset_link(c, db, player["user"]["email"])
            assert reset.startswith("https://play.example.com/reset/")
            # The publisher's site hands the token to the API.
            token = reset.rsplit("/", 1)[1]
            done = await c.post(
                "/api/v1/auth/password-reset", json={"token": token, "newPassword": NEW_PASSWORD}
            )
            assert done.status_code == 200, done.text


def test_a_link_template_must_hold_the_token_once() -> None:
    from pydantic import ValidationError

    for bad in ("https://x.example/verify", "ftp://x.example/{token}", "{token}{token}"):
        with pytest.raises(ValidationError):
            make_settings("postgresql://unused/x", verify_email_url_template=bad)
