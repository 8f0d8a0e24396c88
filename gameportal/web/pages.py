"""Server-rendered HTML pages: one Jinja2 environment (autoescaped), templates per
language with English as the fallback, and the headers every page is sent with.

Templates live in `templates/<language>/<name>` (`en/account/verify_email.html`); a page
is rendered from the first language that has it among those the reader wants (their
account's language, then their browser's Accept-Language), else from `en/`. Pages run no
inline script and no inline style: their CSP allows only files from this origin."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from gameportal.content.locales import candidate_locales
from gameportal.content.schemas import normalize_locale
from gameportal.web.assets import Assets

TEMPLATES_DIR = Path(__file__).parent / "templates"
FALLBACK_LANGUAGE = "en"

# Styles and images from this origin only; no script at all; forms post here only.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": PAGE_CSP,
    # Pages opened from a mail carry a token: never cached, never handed to another site.
    # `same-origin` (not the API's `no-referrer`) so that the page's own form POST keeps
    # its Origin header, which browsers replace by `null` under `no-referrer`.
    "cache-control": "no-store",
    "referrer-policy": "same-origin",
}


def wanted_languages(stored: str | None, accept_language: str | None) -> list[str]:
    """The languages to try, best first: the account's own (the one its mail came in),
    then the browser's by quality; English last."""
    wanted: list[str] = []
    if stored:
        try:
            tag = normalize_locale(stored)
        except ValueError:
            pass
        else:
            wanted.extend([tag, tag.split("-")[0]])
    wanted.extend(candidate_locales(None, accept_language))
    return list(dict.fromkeys(wanted))


class Pages:
    """Renders the templates under `templates/` into HTML responses."""

    def __init__(self, assets: Assets, directory: Path = TEMPLATES_DIR) -> None:
        self.env = Environment(
            loader=FileSystemLoader(directory),
            autoescape=True,
            undefined=StrictUndefined,  # a misspelt variable fails a test, not a page
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.globals["asset_url"] = assets.url

    def render(
        self,
        name: str,
        languages: Iterable[str],
        context: Mapping[str, Any] | None = None,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """`name` from the first of `languages` that has it (else English), with `lang`
        (the language it is in) among its variables."""
        names = [f"{language}/{name}" for language in languages if "/" not in language]
        template = self.env.select_template([*names, f"{FALLBACK_LANGUAGE}/{name}"])
        language = (template.name or FALLBACK_LANGUAGE).split("/", 1)[0]
        html = template.render({**(context or {}), "lang": language})
        return HTMLResponse(
            html,
            status_code=status_code,
            headers={**PAGE_HEADERS, "content-language": language, **(headers or {})},
        )


def from_this_site(request: Request, also: Sequence[str] = ()) -> bool:
    """Whether a form POST comes from a page of this site, by its Origin header: the
    request's own host, or one of `also` (the public base URL, the allowed CORS origins:
    the host a reverse proxy was asked for may not be the one it passes on). A POST
    without Origin (an older browser, a mail provider's one-click unsubscribe) passes:
    the token in the form is the secret that authorises it; this only stops a form on
    another site from posting a token of its own choosing."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":  # sandboxed frames, cross-site redirects: never our own page
        return False
    host = urlsplit(origin).netloc.lower()
    if host and host == request.headers.get("host", "").lower():
        return True
    return any(urlsplit(other).netloc.lower() == host for other in also if other)
