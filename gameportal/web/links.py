"""Where the links in account mail point: the URL templates in settings, or gameportal's
own pages (gameportal.web.account) on the public base URL."""

from __future__ import annotations

from urllib.parse import quote

from gameportal.config import Settings

# The pages gameportal serves for each kind of link, when no template is set.
VERIFY_EMAIL_PAGE = "/verify-email"
RESET_PASSWORD_PAGE = "/reset-password"  # noqa: S105 (a path)
UNSUBSCRIBE_PAGE = "/unsubscribe"


def _link(template: str | None, page: str, settings: Settings, token: str) -> str:
    # Tokens are URL-safe already; quoting keeps a template's query intact whatever they hold.
    quoted = quote(token, safe="")
    if template:
        return template.replace("{token}", quoted)
    return f"{settings.public_base_url.rstrip('/')}{page}?token={quoted}"


def verify_email_url(settings: Settings, token: str) -> str:
    return _link(settings.verify_email_url_template, VERIFY_EMAIL_PAGE, settings, token)


def reset_password_url(settings: Settings, token: str) -> str:
    return _link(settings.reset_password_url_template, RESET_PASSWORD_PAGE, settings, token)


def unsubscribe_url(settings: Settings, token: str) -> str:
    """The page a person opens to unsubscribe (a mail's visible link). The
    `List-Unsubscribe` header keeps the API's one-click URL (one_click_unsubscribe_url)."""
    return _link(settings.unsubscribe_url_template, UNSUBSCRIBE_PAGE, settings, token)


def one_click_unsubscribe_url(settings: Settings, token: str) -> str:
    """RFC 8058's target: mail providers POST `List-Unsubscribe=One-Click` to it; opened
    in a browser instead (GET), it sends the person on to unsubscribe_url."""
    base = settings.public_base_url.rstrip("/")
    return f"{base}/api/v1/unsubscribe?token={quote(token, safe='')}"
