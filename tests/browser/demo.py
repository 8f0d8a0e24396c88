"""The player demo (gameportal/web/static/play) driven as a player would: a copy served
from the second origin, as a publisher serves it from their own site, and the steps a
player takes on it."""

from __future__ import annotations

from typing import Any

from gameportal.web.play import PLAY_DIR
from tests.browser.site import StaticSite
from tests.factories import STRONG_PASSWORD, unique_email

API_META = b'<meta name="gameportal-api" content="">'


def serve_demo(site: StaticSite, api_url: str) -> str:
    """The demo's files at `site`/play/, its meta naming the API, under the CSP a
    publisher would send with it; returns the page's URL."""
    marker = API_META.replace(b'content=""', f'content="{api_url}/"'.encode())

    def configured(name: str, data: bytes) -> bytes:
        if name != "index.html":
            return data
        assert API_META in data, "the demo's index.html lost its API meta tag"
        return data.replace(API_META, marker)

    csp = (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: {api_url}; connect-src 'self' {api_url}; worker-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    site.add_folder(
        "/play",
        PLAY_DIR,
        configured,
        headers={"Content-Security-Policy": csp, "Referrer-Policy": "same-origin"},
    )
    return f"{site.url}/play/"


async def open_demo(context: Any, url: str) -> Any:
    page = await context.new_page()
    await page.goto(url)
    await page.locator("#signed-out:not([hidden]), #signed-in:not([hidden])").wait_for()
    return page


async def register_in(
    page: Any,
    *,
    email: str | None = None,
    password: str = STRONG_PASSWORD,
    name: str = "Ada",
    language: str = "en",
) -> str:
    """Fills and sends the registration form; returns the address, once signed in."""
    email = email or unique_email("browser")
    await page.fill("#register-name", name)
    await page.fill("#register-email", email)
    await page.fill("#register-password", password)
    await page.select_option("#register-language", language)
    await page.click("#register-form button[type=submit]")
    await signed_in(page, email)
    return email


async def log_in_in(page: Any, email: str, password: str = STRONG_PASSWORD) -> None:
    await page.fill("#login-email", email)
    await page.fill("#login-password", password)
    await page.click("#login-form button[type=submit]")


async def signed_in(page: Any, email: str) -> None:
    await page.locator("#who", has_text=email).wait_for()
    await page.locator("#stream-status", has_text="live").wait_for()


async def signed_out(page: Any) -> None:
    await page.locator("#signed-out").wait_for()
    await page.locator("#who").wait_for(state="hidden")
