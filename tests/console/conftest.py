from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import PLAYER_IP

ConsoleClients = Callable[[], httpx.AsyncClient]


@pytest.fixture
async def browsers(app: FastAPI) -> AsyncIterator[ConsoleClients]:
    """Makes console clients: each its own browser (cookie jar), over https so that the
    session cookie's `Secure` holds as in production."""
    made: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(PLAYER_IP, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="https://testserver")
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
def browser(browsers: ConsoleClients) -> httpx.AsyncClient:
    return browsers()
