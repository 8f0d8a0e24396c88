"""Reading the pages the way a browser without JavaScript would: their elements and
attributes, parsed with the standard library's HTML parser."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

import httpx


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.elements.append(element)
        if tag not in {"input", "meta", "link", "br", "img"}:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def find(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag and all(e.attrs.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]

    def one(self, tag: str, **attrs: str) -> Element:
        found = self.find(tag, **attrs)
        assert len(found) == 1, (tag, attrs, found)
        return found[0]


def parse(response: httpx.Response) -> Page:
    page = Page()
    page.feed(response.text)
    page.close()
    return page


def csp(response: httpx.Response) -> dict[str, list[str]]:
    [header] = response.headers.get_list("content-security-policy")
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_no_inline_code(response: httpx.Response) -> None:
    """No script or style the page's CSP would have to allow inline: every script has a
    src, no element has an event handler or a style attribute, no <style> element."""
    page = parse(response)
    for script in page.find("script"):
        assert script.attrs.get("src"), f"inline script: {script.text[:80]!r}"
    assert not page.find("style")
    for element in page.elements:
        assert "style" not in element.attrs, element
        assert not [a for a in element.attrs if a.startswith("on")], element
    policy = csp(response)
    for directive in ("script-src", "style-src", "default-src"):
        assert "'unsafe-inline'" not in policy.get(directive, [])
        assert "'unsafe-eval'" not in policy.get(directive, [])
