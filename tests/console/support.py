"""Driving the console over HTTP as a browser would: a cookie jar per staff member,
forms posted with the page's CSRF token and the site's Origin."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx

from tests.factories import STRONG_PASSWORD, grant_roles, register
from tests.web.html import parse

ORIGIN = "https://testserver"
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def csrf_of(response: httpx.Response) -> str:
    found = _CSRF.search(response.text)
    assert found, "no csrf-token meta tag on the page"
    return found.group(1)


async def post_form(
    client: httpx.AsyncClient,
    path: str,
    data: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    origin: str | None = ORIGIN,
    csrf: bool = True,
) -> httpx.Response:
    """POST a form; the CSRF token is read from the console's front page unless given."""
    fields = dict(data or {})
    if csrf:
        if token is None:
            token = csrf_of(await client.get("/console"))
        fields["csrf_token"] = token
    headers = {"Origin": origin} if origin else {}
    return await client.post(path, data=fields, headers=headers)


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = STRONG_PASSWORD, **extra: str
) -> httpx.Response:
    return await client.post(
        "/console/login",
        data={"email": email, "password": password, **extra},
        headers={"Origin": ORIGIN},
    )


async def staff_member(api: httpx.AsyncClient, db: asyncpg.Pool, *roles: str) -> dict[str, Any]:
    """A registered account (through the API) holding `roles`."""
    auth = await register(api)
    if roles:
        await grant_roles(db, auth["user"]["id"], *roles)
    return auth


async def signed_in(
    console: httpx.AsyncClient, api: httpx.AsyncClient, db: asyncpg.Pool, *roles: str
) -> dict[str, Any]:
    """A staff member holding `roles`, signed in to the console in `console`'s cookie jar."""
    auth = await staff_member(api, db, *roles)
    response = await sign_in(console, auth["user"]["email"])
    assert response.status_code == 303, response.text
    return auth


def text_of(response: httpx.Response) -> str:
    """The page's visible text, whitespace folded (for `in` checks)."""
    page = parse(response)
    body = page.find("body")
    text = body[0].text if body else response.text
    return " ".join(text.split())
