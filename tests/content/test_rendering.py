"""Known XSS payloads, as Markdown and as HTML: nothing executable survives sanitising."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from gameportal.content.rendering import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, render, slug_from
from tests.factories import bearer, user_with_roles

XSS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<img src="javascript:alert(1)">',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="&#x6A;&#x61;vascript:alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    "[click](javascript:alert(1))",
    "[click](JAVASCRIPT:alert(1))",
    "![img](javascript:alert(1))",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<iframe src="https://evil.example"></iframe>',
    '<object data="x.swf"></object><embed src=x.swf>',
    "<body onload=alert(1)>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<style>body{background:red}</style>",
    "<link rel=stylesheet href=//evil.example/x.css>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<form action="https://evil.example"><input name=x><button>go</button></form>',
    "<details open ontoggle=alert(1)>",
    '<p onclick="alert(1)">x</p>',
    "<img src=x:alert(alt) onerror=eval(src) alt=0>",
    "<<script>script>alert(1)<</script>/script>",
    "<scr<script>ipt>alert(1)</script>",
    "<!--<script>-->alert(1)<!--</script>-->",
    '<a href=" javascript:alert(1)">x</a>',
    '<base href="javascript:/">',
    "<template><script>alert(1)</script></template>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
]


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def _assert_safe(output: str) -> None:
    parser = _Collect()
    parser.feed(output)
    for tag, attrs in parser.found:
        assert tag in ALLOWED_TAGS, (tag, output)
        for name, value in attrs:
            assert not name.startswith("on"), (name, output)
            if tag == "a" and name == "rel":
                continue
            assert name in ALLOWED_ATTRIBUTES.get(tag, set()), (tag, name, output)
            if name in ("href", "src") and value:
                scheme = urlsplit(html.unescape(value).strip()).scheme.lower()
                assert scheme in ("", "http", "https", "mailto"), (value, output)
    assert "<script" not in output.lower()


@pytest.mark.parametrize("payload", XSS)
@pytest.mark.parametrize("fmt", ["MARKDOWN", "HTML"])
def test_no_xss_payload_survives(fmt: str, payload: str) -> None:
    output = render(fmt, f"Intro\n\n{payload}\n\nOutro")
    assert output is not None
    _assert_safe(output)


def test_links_get_rel_and_safe_markup_stays() -> None:
    output = render("MARKDOWN", "[site](https://example.com) and `code` and *em*")
    assert output == (
        '<p><a href="https://example.com" rel="noopener noreferrer nofollow">site</a> and '
        "<code>code</code> and <em>em</em></p>\n"
    )


def test_slugs_from_any_title() -> None:
    assert slug_from("Ünïcode & Friends: Part 2!") == "unicode-friends-part-2"
    assert slug_from("🎮🎮") == "item"
    assert len(slug_from("word " * 100)) <= 120


async def test_the_api_stores_and_serves_only_the_safe_html(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    editor = bearer(await user_with_roles(client, db, "editor"))
    body = "\n\n".join(XSS)
    for fmt in ("MARKDOWN", "HTML"):
        created = await client.post(
            "/api/v1/content",
            json={"type": "NEWS", "title": f"xss {fmt}", "format": fmt, "content": body},
            headers=editor,
        )
        assert created.status_code == 201, created.text
        assert created.json()["content"] == body  # the source is kept as written
        _assert_safe(created.json()["html"])
