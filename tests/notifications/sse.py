"""A Server-Sent-Events client for tests: reads a live stream in the background, keeping
every event, `retry:` hint and how the stream ended, as a game client would see them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

STREAM = "/api/v1/me/notifications/stream"


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """`app` (its lifespan already running) on a real loopback port: streams need one."""
    import uvicorn

    from tests.net import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(250):  # bounded: 5 s
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@dataclass
class SseStream:
    """One open stream: `events` fill in as they arrive; `ended` is set when the server
    ends the response, `clean` says whether it ended as HTTP allows (a complete body)."""

    response: httpx.Response
    events: list[dict[str, str]] = field(default_factory=list)
    retries: list[int] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    clean: bool | None = None
    error: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ids(self) -> list[str]:
        return [e["id"] for e in self.events if e.get("event") == "notification"]

    @property
    def subjects(self) -> list[str]:
        return [
            json.loads(e["data"])["subject"]
            for e in self.events
            if e.get("event") == "notification"
        ]

    async def _read(self) -> None:
        event: dict[str, str] = {}
        try:
            async for line in self.response.aiter_lines():
                if not line:
                    if "data" in event:
                        self.events.append(event)
                    event = {}
                    self.changed.set()
                    continue
                if line.startswith(":"):
                    continue
                key, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if key == "retry":
                    self.retries.append(int(value))
                else:
                    event[key] = value
            self.clean = True
        except httpx.HTTPError as exc:  # cut off mid-body: what a 500 in a stream looks like
            self.clean = False
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ended.set()
            self.changed.set()

    async def wait(self, condition: Callable[[SseStream], bool], within: float = 5.0) -> None:
        async def until() -> None:
            while not condition(self):
                self.changed.clear()
                if condition(self):
                    return
                if self.ended.is_set():
                    raise AssertionError(f"stream ended first ({self.error or 'cleanly'})")
                await self.changed.wait()

        await asyncio.wait_for(until(), within)

    async def wait_ended(self, within: float = 5.0) -> float:
        """Seconds until the server ended the stream."""
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(self.ended.wait(), within)
        return asyncio.get_running_loop().time() - started


@asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    expect: int = 200,
    params: dict[str, str] | None = None,
) -> AsyncIterator[SseStream]:
    """The stream, read in the background; closed by the client when the block ends.
    `params`: the query, as a browser's EventSource sends a stream ticket."""
    request = http.build_request("GET", STREAM, headers=headers, params=params)
    response = await http.send(request, stream=True)
    stream = SseStream(response)
    reader: asyncio.Task[None] | None = None
    try:
        assert response.status_code == expect, (response.status_code, await response.aread())
        reader = asyncio.create_task(stream._read())
        yield stream
    finally:
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await response.aclose()
