"""Real `gameportal worker` processes for fault tests, an SMTP server on loopback that
counts what it receives per queue message, and mail queued straight into a database."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import asyncpg
from aiosmtpd.controller import Controller

from gameportal.notifications.service import enqueue_on
from tests.net import free_port

ROOT = Path(__file__).parent.parent.parent
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class CountingSmtp:
    """Counts the mails it accepts per queue message (the id is in each Message-ID), taking
    `delay` seconds over each; with `hang`, it never answers the end of a message."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.hang = False
        self.received: collections.Counter[str] = collections.Counter()
        self.conversations = 0  # MAIL FROM commands seen
        self.last_mail_at = 0.0  # time.monotonic() of the latest MAIL FROM
        self._lock = threading.Lock()

    async def handle_MAIL(
        self, server: object, session: object, envelope: Any, address: str, options: object
    ) -> str:
        with self._lock:
            self.conversations += 1
            self.last_mail_at = time.monotonic()
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        if self.hang:
            await asyncio.sleep(3600)
        await asyncio.sleep(self.delay)
        header = envelope.content.split(b"Message-ID:", 1)[1][:200]
        found = _UUID.search(header)
        assert found is not None
        with self._lock:
            self.received[found.group(0).decode()] += 1
        return "250 OK"

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.received.values())


@contextmanager
def counting_smtp(*, delay: float = 0.0) -> Iterator[tuple[CountingSmtp, int]]:
    handler = CountingSmtp(delay=delay)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        handler.hang = False
        controller.stop()


async def queue_mail(url: str, count: int) -> list[uuid.UUID]:
    """`count` players, and an EMAIL to each, queued as the portal queues them (workers
    are woken at commit)."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            users = [uuid.uuid4() for _ in range(count)]
            await conn.executemany(
                "INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, 'P', 'x')",
                [(u, f"p-{u.hex[:12]}@example.com") for u in users],
            )
            for n, user in enumerate(users):
                await enqueue_on(
                    conn,
                    message_type="EMAIL",
                    payload={"subject": f"hello {n}", "body": "hi"},
                    recipient_user_id=user,
                )
        rows = await conn.fetch("SELECT id FROM messages WHERE type = 'EMAIL'")
        return [r["id"] for r in rows]
    finally:
        await conn.close()


def start_worker(
    url: str,
    log: Path,
    *args: str,
    smtp_port: int | None = None,
    command: str = "worker",
    **env: str,
) -> subprocess.Popen[bytes]:
    """`gameportal worker` (or `command`) on `url`, its JSON log lines (WARNING and up)
    going to `log`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GAMEPORTAL_")}
    environ.update(
        {
            "GAMEPORTAL_DATABASE_URL": url,
            "GAMEPORTAL_LOG_LEVEL": "WARNING",
            "GAMEPORTAL_LOG_JSON": "true",
            "PYTHONPATH": str(ROOT),
        }
    )
    if smtp_port is not None:
        environ.update(
            {"GAMEPORTAL_SMTP_HOST": "127.0.0.1", "GAMEPORTAL_SMTP_PORT": str(smtp_port)}
        )
    environ.update(env)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gameportal.cli", command, *args],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )


def children(pid: int) -> dict[int, str]:
    """The child processes of `pid`, with their command lines."""
    found: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with suppress(FileNotFoundError):
                found[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes().decode()
    return found


def log_events(log: Path) -> list[dict[str, Any]]:
    """The JSON lines of a worker's log; anything else (a traceback) as {"raw": line}."""
    events = []
    for line in log.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"raw": line})
    return events


def named(log: Path, event: str) -> list[dict[str, Any]]:
    return [e for e in log_events(log) if e.get("event") == event]


async def statuses(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM messages GROUP BY status")
        return {r["status"]: r["n"] for r in rows}
    finally:
        await conn.close()


async def until(condition: Any, within: float, every: float = 0.05) -> None:
    """Poll `condition()` (sync or async) until true, or fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)
