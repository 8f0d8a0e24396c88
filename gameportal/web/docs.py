"""/docs (Swagger UI) and /redoc (ReDoc), from the copies of their releases under
static/vendor (gameportal.web.vendor): they work without internet, under a CSP that
allows this origin only.

Neither page has an inline script: Swagger UI is started by static/docs/swagger-init.js,
ReDoc by its own `<redoc spec-url>` element. ReDoc styles itself by adding `<style>`
elements (styled-components); those carry the page's nonce (read from its `csp-nonce`
meta tag), so `style-src` needs no 'unsafe-inline'."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import HTMLResponse

docs_router = APIRouter(include_in_schema=False)


def docs_csp(nonce: str) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            f"style-src 'self' 'nonce-{nonce}'",
            "img-src 'self' data:",  # Swagger UI's icons are data: URIs in its CSS
            "font-src 'self' data:",  # ReDoc's icon font is a data: URI
            "connect-src 'self'",  # the OpenAPI document, and "Try it out"
            "worker-src 'self' blob:",  # ReDoc searches in a worker it makes from a blob
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


def _page(request: Request, template: str) -> HTMLResponse:
    app: FastAPI = request.app
    nonce = secrets.token_urlsafe(18)
    html = request.app.state.pages.env.get_template(template).render(
        title=app.title, openapi_url=app.state.docs_openapi_url, nonce=nonce, lang="en"
    )
    # No cache-control here: the default, no-store, keeps a nonce from being reused.
    return HTMLResponse(html, headers={"content-security-policy": docs_csp(nonce)})


@docs_router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return _page(request, "docs/swagger.html")


@docs_router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return _page(request, "docs/redoc.html")
