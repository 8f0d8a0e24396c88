"""The pages the links in account mail open: confirm an address, choose a new password,
unsubscribe. Each GET only shows a form with a button (mail scanners open links, so
opening one must change nothing); the form's POST acts, through the same services as the
API routes, and answers with a page saying what happened. No page needs JavaScript.

The token in the form is what authorises the POST (a form on another site would have to
know it); a POST whose Origin names another site is refused all the same."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from gameportal.db import Database, DbPool, DbReadSession
from gameportal.errors import InvalidField, problem_responses
from gameportal.identity import service as identity_service
from gameportal.identity.deps import IdentityDep
from gameportal.identity.service import InvalidResetToken, InvalidVerificationToken
from gameportal.kit.openapi import headers
from gameportal.notifications import service as notification_service
from gameportal.notifications.service import InvalidUnsubscribeLink
from gameportal.web import links
from gameportal.web.pages import Pages, from_this_site, wanted_languages
from gameportal.web.service import (
    MAX_TOKEN_LENGTH,
    AccountLink,
    account_link,
    unsubscribe_link,
)

account_pages_router = APIRouter(include_in_schema=False)

# Unconstrained here: a page, not a problem+json answer, says that a token is not one of ours.
Token = Annotated[str, Query()]

# The reset form's fields, by the names the password service reports them under.
_FIELD_IDS = {"newPassword": "new-password", "confirmPassword": "confirm-password"}


def _pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


def _languages(request: Request, stored: str | None = None) -> list[str]:
    return wanted_languages(stored, request.headers.get("accept-language"))


async def _form(request: Request) -> FormData:
    """The posted form; an empty one for a body that is not a form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return FormData()
    return await request.form(max_files=0, max_fields=8)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _foreign_post(request: Request) -> Response | None:
    """The refusal page for a POST from another site's page, else None."""
    settings = request.app.state.settings
    if from_this_site(request, [settings.public_base_url, *settings.cors_origins]):
        return None
    return _pages(request).render(
        "account/refused.html", _languages(request), status_code=status.HTTP_403_FORBIDDEN
    )


async def _link_of(db: Database, token: str, purpose: str) -> AccountLink:
    async with db.sessionmaker() as session:
        return await account_link(session, token, purpose=purpose)


def _link_failed(request: Request, template: str, language: str | None) -> Response:
    return _pages(request).render(
        template, _languages(request, language), status_code=status.HTTP_400_BAD_REQUEST
    )


# --- verify email --------------------------------------------------------------------------


@account_pages_router.get(links.VERIFY_EMAIL_PAGE)
async def verify_email_page(request: Request, session: DbReadSession, token: Token = "") -> Any:
    link = await account_link(session, token, purpose="verify_email")
    if not link.live:
        return _link_failed(request, "account/verify_email_failed.html", link.language)
    return _pages(request).render(
        "account/verify_email.html", _languages(request, link.language), {"token": token}
    )


@account_pages_router.post(links.VERIFY_EMAIL_PAGE)
async def verify_email_submit(request: Request, db: DbPool) -> Any:
    refused = _foreign_post(request)
    if refused is not None:
        return refused
    token = _text(await _form(request), "token")
    try:
        async with db.sessionmaker() as session, session.begin():
            user = await identity_service.verify_email(session, token=token)
    except InvalidVerificationToken:
        link = await _link_of(db, token, "verify_email")
        return _link_failed(request, "account/verify_email_failed.html", link.language)
    stored = (user.preferences or {}).get("language")
    return _pages(request).render(
        "account/verify_email_done.html",
        _languages(request, stored if isinstance(stored, str) else None),
    )


# --- reset password ------------------------------------------------------------------------


def _reset_form(
    request: Request,
    token: str,
    link: AccountLink,
    errors: dict[str, dict[str, str]] | None = None,
) -> Response:
    settings = request.app.state.settings
    return _pages(request).render(
        "account/reset_password.html",
        _languages(request, link.language),
        {
            "token": token,
            "email": link.email or "",
            "errors": errors or {},
            "min_length": settings.password_min_length,
            "max_length": settings.password_max_length,
        },
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT if errors else status.HTTP_200_OK,
    )


@account_pages_router.get(links.RESET_PASSWORD_PAGE)
async def reset_password_page(request: Request, session: DbReadSession, token: Token = "") -> Any:
    link = await account_link(session, token, purpose="password_reset")
    if not link.live:
        return _link_failed(request, "account/reset_password_failed.html", link.language)
    return _reset_form(request, token, link)


@account_pages_router.post(links.RESET_PASSWORD_PAGE)
async def reset_password_submit(request: Request, db: DbPool, identity: IdentityDep) -> Any:
    refused = _foreign_post(request)
    if refused is not None:
        return refused
    form = await _form(request)
    token, password = _text(form, "token"), _text(form, "new_password")
    link = await _link_of(db, token, "password_reset")
    if password != _text(form, "confirm_password"):
        # Checked before the service: a typo must not use up the link.
        return _reset_form(
            request,
            token,
            link,
            {"confirm-password": {"code": "password_mismatch", "message": "does not match"}},
        )
    try:
        async with db.sessionmaker() as session, session.begin():
            # The service's own rules (length, strength): a refusal rolls back, so the
            # link still works for the next try.
            await identity_service.reset_password(
                session, identity, token=token, new_password=password
            )
    except InvalidResetToken:
        return _link_failed(request, "account/reset_password_failed.html", link.language)
    except InvalidField as refusal:
        errors = {
            _FIELD_IDS.get(problem.field, "new-password"): {
                "code": problem.code,
                "message": problem.message,
            }
            for problem in refusal.errors or []
        }
        return _reset_form(request, token, link, errors)
    return _pages(request).render(
        "account/reset_password_done.html", _languages(request, link.language)
    )


# --- unsubscribe ---------------------------------------------------------------------------


@account_pages_router.get(links.UNSUBSCRIBE_PAGE)
async def unsubscribe_page(
    request: Request, session: DbReadSession, identity: IdentityDep, token: Token = ""
) -> Any:
    link = await unsubscribe_link(session, identity.settings.secret_key, token)
    if link.target is None:
        return _link_failed(request, "account/unsubscribe_failed.html", None)
    return _pages(request).render(
        "account/unsubscribe.html",
        _languages(request, link.language),
        {"token": token, "category": link.target.category},
    )


@account_pages_router.post(links.UNSUBSCRIBE_PAGE)
async def unsubscribe_submit(request: Request, db: DbPool, identity: IdentityDep) -> Any:
    """The page's button, and also RFC 8058's one-click POST (`List-Unsubscribe=One-Click`,
    the token in the URL) for a publisher who puts this page in `List-Unsubscribe`."""
    refused = _foreign_post(request)
    if refused is not None:
        return refused
    token = _text(await _form(request), "token") or request.query_params.get("token", "")
    if len(token) > MAX_TOKEN_LENGTH:
        return _link_failed(request, "account/unsubscribe_failed.html", None)
    secret_key = identity.settings.secret_key
    try:
        async with db.sessionmaker() as session, session.begin():
            await notification_service.unsubscribe(session, secret_key, token)
            link = await unsubscribe_link(session, secret_key, token)
    except InvalidUnsubscribeLink:
        return _link_failed(request, "account/unsubscribe_failed.html", None)
    assert link.target is not None  # the service accepted it
    return _pages(request).render(
        "account/unsubscribe_done.html",
        _languages(request, link.language),
        {"category": link.target.category},
    )


# In the API's document, unlike the pages: see below.
unsubscribe_redirect_router = APIRouter()


@unsubscribe_redirect_router.get(
    "/api/v1/unsubscribe",
    # In the API's document, beside the one-click POST on the same URL: a method a
    # resource answers is one its `Allow` header names, so it is documented too.
    operation_id="unsubscribe_link_open",
    tags=["notifications"],
    summary="The List-Unsubscribe link opened in a browser: on to the unsubscribe page",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    responses={
        303: {
            "description": "The unsubscribe page, which asks for the click",
            "headers": headers("Location"),
        },
        **problem_responses(422, 500),
    },
)
async def unsubscribe_link_opened(request: Request, token: Token = "") -> Response:
    """The `List-Unsubscribe` URL opened in a browser (a mail program that does not POST
    it itself): on to the page that asks for the click."""
    return RedirectResponse(
        links.unsubscribe_url(request.app.state.settings, token),
        status_code=status.HTTP_303_SEE_OTHER,
    )
