from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import PLAYER_IP

ConsoleClients = Callable[[], httpx.AsyncClient]
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@pytest.fixture
async def browsers(app: FastAPI) -> AsyncIterator[ConsoleClients]:
    """Makes console clients: each its own browser (cookie jar), over https so that the
    session cookie's `Secure` holds as in production."""
    made: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(PLAYER_IP, 40000))
        client = httpx.AsyncClient(
            transport=transport, base_url="https://testserver", headers={"User-Agent": CHROME}
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
def browser(browsers: ConsoleClients) -> httpx.AsyncClient:
    return browsers()
