"""The loopback servers browser tests run beside the app: a static site on a second
origin, and an SMTP server that keeps what it receives.

Both run in threads of their own, so they answer whatever the test's event loop is doing
(the browser talks to them while a test awaits Playwright)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.net import free_port

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}


@dataclass
class Resource:
    body: bytes
    content_type: str
    headers: dict[str, str]


class StaticSite:
    """A web site on 127.0.0.1:<port>, another origin than the app's: serves what the
    test gives it (`add`, `add_folder`), 404 otherwise, and records every request.

    `url` is the site as a listed CORS origin sees it (http://127.0.0.1:<port>, the same
    *site* as the app on another port: cookies with SameSite=Strict are sent from it).
    `cross_site_url` is the same server reached as http://localhost:<port>: another site
    altogether, and not a listed origin, as a page on someone else's domain would be."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cross_site_url = f"http://localhost:{self.port}"
        self.resources: dict[str, Resource] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path)
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append(("GET", self.path))
                found = site.resources.get(self.path.split("?", 1)[0])
                if found is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", found.content_type)
                self.send_header("Content-Length", str(len(found.body)))
                self.send_header("Cache-Control", "no-store")
                for name, value in found.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(found.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> StaticSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(
        self,
        path: str,
        body: str | bytes,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Serve `body` at `path`; returns its URL on this origin."""
        data = body.encode() if isinstance(body, str) else body
        kind = content_type or _TYPES.get(Path(path).suffix, "text/html; charset=utf-8")
        self.resources[path] = Resource(data, kind, dict(headers or {}))
        return self.url + path

    def add_folder(
        self,
        prefix: str,
        folder: Path,
        transform: Callable[[str, bytes], bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Every file of `folder` under `prefix` (`prefix` itself serving index.html),
        each passed through `transform(name, data)` when given."""
        prefix = prefix.rstrip("/")
        for path in sorted(folder.iterdir()):
            if not path.is_file():
                continue
            data = path.read_bytes()
            if transform is not None:
                data = transform(path.name, data)
            self.add(f"{prefix}/{path.name}", data, headers=headers)
            if path.name == "index.html":
                self.add(f"{prefix}/", data, headers=headers)


class Mailbox:
    """aiosmtpd on 127.0.0.1:`port`, keeping every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mails: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.mails.append(mail)  # type: ignore[arg-type]
        return "250 OK"

    def start(self) -> Mailbox:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def find(self, to: str, subject: str | None = None) -> list[EmailMessage]:
        with self._lock:
            return [
                m
                for m in self.mails
                if to in str(m["To"]) and (subject is None or subject in str(m["Subject"]))
            ]


def text_of(mail: EmailMessage) -> str:
    """A mail's plain-text part."""
    part = mail.get_body(("plain",))
    assert part is not None, "the mail has no text part"
    return str(part.get_content())  # type: ignore[attr-defined]


def link_in(mail: EmailMessage, path: str) -> str:
    """The first link in the mail's text whose path is `path` (e.g. /reset-password)."""
    pattern = r"https?://[^\s<>\"]+" + re.escape(path) + r"\?token=[\w.~%-]+"
    found = re.search(pattern, text_of(mail))
    assert found, f"no {path} link in:\n{text_of(mail)}"
    return found.group(0)


async def wait_until(
    condition: Callable[[], Any], within: float = 10.0, every: float = 0.05
) -> Any:
    """Polls `condition()` (its result returned once truthy); fails after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {within} s")
        await asyncio.sleep(every)
