"""Every route of the app against a table of who may call it. A new route that is missing
from the table fails this test, so nobody adds one without deciding who may call it."""

from __future__ import annotations

import re
import uuid

import asyncpg
import httpx
from fastapi import FastAPI

from tests.factories import bearer, user_with_roles

ROLES = ["anonymous", "user", "editor", "marketer", "admin"]

# (method, path template) -> the least role that may call it. Admin may call everything,
# except `game_server` routes: they take a game's API key and refuse every access token.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "anonymous",
    ("GET", "/readyz"): "anonymous",
    ("POST", "/api/v1/auth/register"): "anonymous",
    ("POST", "/api/v1/auth/login"): "anonymous",
    ("POST", "/api/v1/auth/refresh"): "anonymous",
    ("POST", "/api/v1/auth/logout"): "user",
    ("POST", "/api/v1/auth/password-reset/request"): "anonymous",
    ("POST", "/api/v1/auth/verify-email/request"): "user",
    ("POST", "/api/v1/auth/verify-email"): "anonymous",
    ("POST", "/api/v1/auth/password-reset"): "anonymous",
    ("GET", "/api/v1/me"): "user",
    ("PATCH", "/api/v1/me"): "user",
    ("DELETE", "/api/v1/me"): "user",
    ("POST", "/api/v1/me/password"): "user",
    ("GET", "/api/v1/me/sessions"): "user",
    ("DELETE", "/api/v1/me/sessions"): "user",
    ("DELETE", "/api/v1/me/sessions/{session_id}"): "user",
    ("GET", "/api/v1/me/notifications"): "user",
    ("GET", "/api/v1/me/notifications/unread-count"): "user",
    ("GET", "/api/v1/me/notifications/stream"): "user",
    ("POST", "/api/v1/me/notifications/stream-ticket"): "user",
    ("GET", "/api/v1/me/notification-preferences"): "user",
    ("PUT", "/api/v1/me/notification-preferences"): "user",
    ("GET", "/api/v1/unsubscribe"): "anonymous",
    ("POST", "/api/v1/unsubscribe"): "anonymous",
    ("GET", "/api/v1/push/vapid-public-key"): "anonymous",
    ("GET", "/api/v1/content"): "anonymous",
    ("POST", "/api/v1/content"): "editor",
    ("GET", "/api/v1/content/{content_id}"): "editor",
    ("PATCH", "/api/v1/content/{content_id}"): "editor",
    ("DELETE", "/api/v1/content/{content_id}"): "editor",
    ("POST", "/api/v1/content/{content_id}/publish"): "editor",
    ("POST", "/api/v1/content/{content_id}/unpublish"): "editor",
    ("GET", "/api/v1/content/{content_id}/revisions"): "editor",
    ("POST", "/api/v1/content/{content_id}/revisions/{number}/restore"): "editor",
    ("GET", "/api/v1/content/{content_type}/{slug}"): "anonymous",
    ("GET", "/api/v1/tags"): "anonymous",
    ("POST", "/api/v1/media"): "editor",
    ("GET", "/api/v1/media"): "editor",
    ("POST", "/api/v1/media/uploads"): "editor",
    ("POST", "/api/v1/media/{media_id}/complete"): "editor",
    ("GET", "/api/v1/media/{media_id}"): "anonymous",
    ("DELETE", "/api/v1/media/{media_id}"): "editor",
    ("GET", "/api/v1/media/{media_id}/file"): "anonymous",
    ("GET", "/api/v1/media/{media_id}/renditions/{name}"): "anonymous",
    ("GET", "/api/v1/me/push-subscriptions"): "user",
    ("POST", "/api/v1/me/push-subscriptions"): "user",
    ("DELETE", "/api/v1/me/push-subscriptions/{subscription_id}"): "user",
    ("POST", "/api/v1/me/notifications/{notification_id}/read"): "user",
    ("POST", "/api/v1/me/notifications/read-all"): "user",
    ("GET", "/api/v1/admin/users"): "admin",
    ("GET", "/api/v1/admin/users/{user_id}"): "admin",
    ("PATCH", "/api/v1/admin/users/{user_id}"): "admin",
    ("GET", "/api/v1/admin/users/{user_id}/sessions"): "admin",
    ("DELETE", "/api/v1/admin/users/{user_id}/sessions"): "admin",
    ("GET", "/api/v1/admin/users/{user_id}/security-events"): "admin",
    ("POST", "/api/v1/admin/notifications"): "admin",
    ("GET", "/api/v1/admin/notifications"): "admin",
    ("GET", "/api/v1/admin/notifications/stats"): "admin",
    ("GET", "/api/v1/admin/notifications/{message_id}"): "admin",
    ("POST", "/api/v1/admin/notifications/{message_id}/retry"): "admin",
    ("DELETE", "/api/v1/admin/notifications/{message_id}"): "admin",
    ("GET", "/api/v1/games/{game_id}/leaderboard"): "anonymous",
    ("GET", "/api/v1/games/{game_id}/leaderboard/me"): "user",
    # Game servers, with their game's API key: no access token opens these.
    ("POST", "/api/v1/games/{game_id}/players/{user_id}/progress"): "game_server",
    ("GET", "/api/v1/games/{game_id}/players/{user_id}/progress"): "game_server",
    ("POST", "/api/v1/games/{game_id}/players/{user_id}/achievements/{achievement_key}"): (
        "game_server"
    ),
    ("GET", "/api/v1/games/{game_id}/achievements"): "anonymous",
    ("GET", "/api/v1/me/progress"): "user",
    ("GET", "/api/v1/me/progress/{game_id}"): "user",
    ("GET", "/api/v1/me/achievements"): "user",
    ("POST", "/api/v1/admin/games/{game_id}/api-keys"): "admin",
    ("GET", "/api/v1/admin/games/{game_id}/api-keys"): "admin",
    ("DELETE", "/api/v1/admin/games/{game_id}/api-keys/{key_id}"): "admin",
    ("POST", "/api/v1/admin/achievements"): "editor",
    ("GET", "/api/v1/admin/achievements"): "editor",
    ("GET", "/api/v1/admin/achievements/{achievement_id}"): "editor",
    ("PATCH", "/api/v1/admin/achievements/{achievement_id}"): "editor",
    ("DELETE", "/api/v1/admin/achievements/{achievement_id}"): "editor",
    ("PUT", "/api/v1/admin/games/{game_id}/levels"): "editor",
    ("GET", "/api/v1/admin/games/{game_id}/levels"): "editor",
    ("DELETE", "/api/v1/admin/games/{game_id}/levels"): "editor",
    # Live operations, player side. Without a token, a visitor's X-Anonymous-Id is needed
    # (401 without either, as here).
    ("GET", "/api/v1/campaigns/active"): "user",
    ("POST", "/api/v1/campaigns/{campaign_id}/conversions"): "user",
    ("POST", "/api/v1/games/{game_id}/players/{user_id}/campaigns/{campaign_id}/conversions"): (
        "game_server"
    ),
    ("POST", "/api/v1/admin/campaigns/{campaign_id}/preview"): "marketer",
    ("GET", "/api/v1/admin/campaigns/{campaign_id}/results"): "marketer",
    ("GET", "/api/v1/admin/campaigns/{campaign_id}/results/daily"): "marketer",
    ("POST", "/api/v1/admin/ab-rules"): "marketer",
    ("GET", "/api/v1/admin/ab-rules"): "marketer",
    ("GET", "/api/v1/admin/ab-rules/{rule_id}"): "marketer",
    ("PATCH", "/api/v1/admin/ab-rules/{rule_id}"): "marketer",
    ("DELETE", "/api/v1/admin/ab-rules/{rule_id}"): "marketer",
    ("POST", "/api/v1/admin/ab-rules/{rule_id}/activate"): "marketer",
    ("POST", "/api/v1/admin/ab-rules/{rule_id}/deactivate"): "marketer",
    ("POST", "/api/v1/admin/campaigns"): "marketer",
    ("GET", "/api/v1/admin/campaigns"): "marketer",
    ("GET", "/api/v1/admin/campaigns/{campaign_id}"): "marketer",
    ("PATCH", "/api/v1/admin/campaigns/{campaign_id}"): "marketer",
    ("DELETE", "/api/v1/admin/campaigns/{campaign_id}"): "marketer",
    ("POST", "/api/v1/admin/campaigns/{campaign_id}/activate"): "marketer",
    ("POST", "/api/v1/admin/campaigns/{campaign_id}/deactivate"): "marketer",
}

# Routes whose success would spoil the caller for the next check (logout ends the session),
# or never end (a live stream; tested over a real server in its own test).
_DESTRUCTIVE = {
    ("POST", "/api/v1/auth/logout"),
    ("DELETE", "/api/v1/me"),
    ("GET", "/api/v1/me/notifications/stream"),
}


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    # The OpenAPI document is the public, flattened list of routes (FastAPI keeps included
    # routers nested in app.routes).
    app.openapi_schema = None
    spec = app.openapi()
    return [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
    ]


def _allowed(least: str, role: str) -> bool:
    if least == "game_server":
        return False
    if least == "anonymous":
        return True
    if role == "anonymous":
        return False
    if role == "admin" or least == "user":
        return True
    return role == least


async def test_every_route_is_in_the_access_table(app: FastAPI) -> None:
    missing = [r for r in _routes(app) if r not in ACCESS]
    assert not missing, f"add these routes to ACCESS in {__file__}: {missing}"
    stale = [r for r in ACCESS if r not in _routes(app)]
    assert not stale, f"routes in ACCESS that no longer exist: {stale}"


async def test_each_role_gets_exactly_what_the_table_says(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    for role in ROLES[1:]:
        auth = await user_with_roles(client, db, *([] if role == "user" else [role]))
        headers[role] = bearer(auth)
    for method, path in _routes(app):
        least = ACCESS[(method, path)]
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        for role in ROLES:
            if (method, path) in _DESTRUCTIVE and _allowed(least, role):
                continue  # covered by their own tests; here only the refusals matter
            # An empty JSON body: allowed callers get past auth and fail validation or
            # lookup instead, which is all this test needs to see.
            response = await client.request(method, url, json={}, headers=headers[role])
            if _allowed(least, role):
                assert response.status_code not in (401, 403), (method, path, role, response.text)
            else:
                expected = 401 if role == "anonymous" else 403
                assert response.status_code == expected, (method, path, role, response.text)


# --- the console's pages -------------------------------------------------------------------
#
# HTML pages under /console, kept out of the OpenAPI document: their own table. "staff" is
# any of editor, marketer, admin; "signed-in" any console session. Refusals are pages, not
# problem+json: anonymous visitors are sent to the sign-in page (303), a signed-in account
# without the role gets 403.

CONSOLE_ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/console/login"): "anonymous",
    ("POST", "/console/login"): "anonymous",
    ("POST", "/console/logout"): "signed-in",  # any console session, with a role or not
    ("GET", "/console"): "staff",
    ("GET", "/console/{rest:path}"): "staff",  # any other address: a 404 page
    ("GET", "/console/security-events"): "admin",
    ("GET", "/console/players"): "admin",
    ("GET", "/console/players/{user_id}"): "admin",
    ("POST", "/console/players/{user_id}/roles"): "admin",
    ("POST", "/console/players/{user_id}/block"): "admin",
    ("POST", "/console/players/{user_id}/unblock"): "admin",
    ("POST", "/console/players/{user_id}/sessions/end-all"): "admin",
    ("POST", "/console/players/{user_id}/sessions/{session_id}/end"): "admin",
    ("GET", "/console/content"): "editor",
    ("GET", "/console/content/new"): "editor",
    ("POST", "/console/content/new"): "editor",
    ("POST", "/console/content/preview"): "editor",
    ("GET", "/console/content/media-picker"): "editor",
    ("GET", "/console/content/{content_id:uuid}"): "editor",
    ("POST", "/console/content/{content_id:uuid}"): "editor",
    ("POST", "/console/content/{content_id:uuid}/publish"): "editor",
    ("POST", "/console/content/{content_id:uuid}/unpublish"): "editor",
    ("POST", "/console/content/{content_id:uuid}/archive"): "editor",
    ("GET", "/console/content/{content_id:uuid}/revisions"): "editor",
    ("GET", "/console/content/{content_id:uuid}/revisions/{number}"): "editor",
    ("POST", "/console/content/{content_id:uuid}/revisions/{number}/restore"): "editor",
    ("GET", "/console/media"): "editor",
    ("POST", "/console/media/upload"): "editor",
    ("GET", "/console/media/{media_id:uuid}"): "editor",
    ("GET", "/console/media/{media_id:uuid}/status"): "editor",
    ("POST", "/console/media/{media_id:uuid}/delete"): "editor",
    ("GET", "/console/messages"): "admin",
    ("POST", "/console/messages"): "admin",
    ("GET", "/console/messages/new"): "admin",
    ("POST", "/console/messages/preview"): "admin",
    ("GET", "/console/messages/stats"): "admin",
    ("GET", "/console/messages/stats/per-minute"): "admin",
    ("GET", "/console/messages/{message_id:uuid}"): "admin",
    ("POST", "/console/messages/{message_id:uuid}/retry"): "admin",
    ("POST", "/console/messages/{message_id:uuid}/cancel"): "admin",
    ("GET", "/console/games"): "editor",
    ("GET", "/console/games/{game_id:uuid}"): "editor",
    ("GET", "/console/games/{game_id:uuid}/achievements/new"): "editor",
    ("POST", "/console/games/{game_id:uuid}/achievements"): "editor",
    ("GET", "/console/games/{game_id:uuid}/achievements/{achievement_id:uuid}"): "editor",
    ("POST", "/console/games/{game_id:uuid}/achievements/{achievement_id:uuid}"): "editor",
    ("POST", "/console/games/{game_id:uuid}/achievements/{achievement_id:uuid}/delete"): "editor",
    ("GET", "/console/games/{game_id:uuid}/leaderboard"): "editor",
    ("GET", "/console/games/{game_id:uuid}/api-keys"): "admin",
    ("POST", "/console/games/{game_id:uuid}/api-keys"): "admin",
    ("POST", "/console/games/{game_id:uuid}/api-keys/{key_id:uuid}/revoke"): "admin",
    ("GET", "/console/liveops"): "marketer",
    ("GET", "/console/liveops/campaigns/new"): "marketer",
    ("POST", "/console/liveops/campaigns"): "marketer",
    ("GET", "/console/liveops/campaigns/{campaign_id:uuid}"): "marketer",
    ("POST", "/console/liveops/campaigns/{campaign_id:uuid}"): "marketer",
    ("GET", "/console/liveops/campaigns/{campaign_id:uuid}/edit"): "marketer",
    ("POST", "/console/liveops/campaigns/{campaign_id:uuid}/preview"): "marketer",
    ("POST", "/console/liveops/campaigns/{campaign_id:uuid}/activate"): "marketer",
    ("POST", "/console/liveops/campaigns/{campaign_id:uuid}/deactivate"): "marketer",
    ("GET", "/console/liveops/campaigns/{campaign_id:uuid}/results"): "marketer",
    ("GET", "/console/liveops/rules"): "marketer",
    ("GET", "/console/liveops/rules/new"): "marketer",
    ("POST", "/console/liveops/rules"): "marketer",
    ("GET", "/console/liveops/rules/{rule_id:uuid}"): "marketer",
    ("POST", "/console/liveops/rules/{rule_id:uuid}"): "marketer",
    ("POST", "/console/liveops/rules/{rule_id:uuid}/activate"): "marketer",
    ("POST", "/console/liveops/rules/{rule_id:uuid}/deactivate"): "marketer",
    ("POST", "/console/liveops/rules/{rule_id:uuid}/delete"): "marketer",
}
_CONSOLE_DESTRUCTIVE = {("POST", "/console/logout")}


def _console_routes(app: FastAPI) -> list[tuple[str, str]]:
    from fastapi.routing import APIRoute

    return [
        (method, route.path)
        for route in app.router.routes
        if isinstance(route, APIRoute) and route.path.startswith("/console")
        for method in sorted(route.methods or ())
    ]


def _console_allowed(least: str, role: str) -> bool:
    if least == "anonymous":
        return True
    if role == "anonymous":
        return False
    if least == "signed-in":
        return True
    if role == "user":
        return False
    return least == "staff" or role in ("admin", least)


async def test_every_console_route_is_in_its_access_table(app: FastAPI) -> None:
    routes = _console_routes(app)
    missing = [r for r in routes if r not in CONSOLE_ACCESS]
    assert not missing, f"add these routes to CONSOLE_ACCESS in {__file__}: {missing}"
    stale = [r for r in CONSOLE_ACCESS if r not in routes]
    assert not stale, f"routes in CONSOLE_ACCESS that no longer exist: {stale}"


async def test_each_role_gets_exactly_what_the_console_table_says(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    from tests.console.support import ORIGIN, csrf_of, signed_in
    from tests.factories import grant_roles

    browsers: dict[str, httpx.AsyncClient] = {}
    tokens: dict[str, str] = {"anonymous": ""}
    try:
        for role in ROLES:
            browsers[role] = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=ORIGIN
            )
            if role == "anonymous":
                continue
            # A player cannot sign in: "user" is a staff member who lost every staff role.
            auth = await signed_in(browsers[role], client, db, "editor" if role == "user" else role)
            tokens[role] = csrf_of(await browsers[role].get("/console"))
            if role == "user":
                await grant_roles(db, auth["user"]["id"])
        for method, path in _console_routes(app):
            if (method, path) not in CONSOLE_ACCESS:
                continue  # the test above names it
            least = CONSOLE_ACCESS[(method, path)]
            url = re.sub(r"\{rest:path\}", "no-such-page", path)
            url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), url)
            for role in ROLES:
                allowed = _console_allowed(least, role)
                if (method, path) in _CONSOLE_DESTRUCTIVE and allowed:
                    continue  # tests/console/test_auth.py
                if method == "POST":  # a form from the console's own page, with its token
                    response = await browsers[role].post(
                        url, data={"csrf_token": tokens[role]}, headers={"Origin": ORIGIN}
                    )
                else:
                    response = await browsers[role].request(method, url)
                to_sign_in = response.status_code == 303 and response.headers[
                    "location"
                ].startswith("/console/login")
                where = (method, path, role, response.status_code)
                if allowed:
                    assert response.status_code != 403 and not to_sign_in, where
                elif role == "anonymous":
                    assert to_sign_in, where
                else:
                    assert response.status_code == 403, where
    finally:
        for browser in browsers.values():
            await browser.aclose()
