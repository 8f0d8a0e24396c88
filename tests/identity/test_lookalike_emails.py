"""Look-alike addresses: compatibility forms are one address (NFKC), mixed-script
confusables are refused at registration, IDN domains are one domain whatever their
spelling; accounts stored before the folding still log in (migration 0010)."""

from __future__ import annotations

import asyncio
import threading
import uuid

import asyncpg
import httpx
import pytest
from alembic import command
from fastapi import FastAPI

from gameportal.app import create_app
from gameportal.identity.admin_cli import create_or_promote_admin
from gameportal.identity.passwords import Passwords
from gameportal.migrations import alembic_config
from tests.conftest import PLAYER_IP, make_settings, with_database
from tests.factories import STRONG_PASSWORD, login, register

FULLWIDTH_ALICE = "\uff41\uff4c\uff49\uff43\uff45"  # "alice" in fullwidth letters
CYRILLIC_A = "\u0430"
OTHER = "copper-meadow-lantern-74"


async def _register(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/register", json={"email": email, "password": STRONG_PASSWORD, "name": "P"}
    )


async def test_fullwidth_spelling_is_the_same_account(client: httpx.AsyncClient) -> None:
    first = await register(client, email="alice@example.com")
    again = await _register(client, f"{FULLWIDTH_ALICE}@example.com")
    assert again.status_code == 409, again.text
    domain = await _register(client, "alice@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com")
    assert domain.status_code == 409, domain.text
    ligature = await _register(client, "\ufb01le@example.com")  # the "fi" ligature
    assert ligature.json()["user"]["email"] == "file@example.com"

    # Logging in with any spelling finds the one account.
    for spelling in (f"{FULLWIDTH_ALICE}@example.com", "ALICE@example.com"):
        assert (await login(client, spelling))["user"]["id"] == first["user"]["id"]


@pytest.mark.parametrize(
    "email",
    [
        f"{CYRILLIC_A}lice@example.com",  # Cyrillic a in the local part
        f"alice@ex{CYRILLIC_A}mple.com",  # ... in the domain
        "p\u0430ypal@example.com",
        "\u03bfscar@example.com",  # Greek omicron among Latin letters
        "a\uff20b@example.com",  # a fullwidth at sign folds into a second `@`
    ],
)
async def test_lookalike_addresses_are_refused_naming_the_field(
    client: httpx.AsyncClient, email: str
) -> None:
    response = await _register(client, email)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["email"]


@pytest.mark.parametrize(
    "email",
    [
        # all Cyrillic
        "\u0438\u0432\u0430\u043d@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",
        "ivan@\u043f\u0440\u0438\u043c\u0435\u0440.com",  # a Cyrillic label beside a Latin one
        "\u4f8b\u3048@example.jp",  # Han and Hiragana: written together in Japanese
        "jo\u00e3o.m\u00fcller@example.com",
    ],
)
async def test_addresses_in_one_script_are_welcome(client: httpx.AsyncClient, email: str) -> None:
    response = await _register(client, email)
    assert response.status_code == 201, response.text


async def test_idn_domains_are_one_domain_whatever_the_spelling(
    client: httpx.AsyncClient,
) -> None:
    first = await register(client, email="ALICE@XN--BCHER-KVA.DE")
    assert first["user"]["email"] == "alice@b\u00fccher.de"
    again = await _register(client, "alice@b\u00fccher.de")
    assert again.status_code == 409, again.text
    logged_in = await login(client, "alice@xn--bcher-kva.de")
    assert logged_in["user"]["id"] == first["user"]["id"]


async def _add_user(conn: asyncpg.Connection, email: str, password_hash: str) -> uuid.UUID:
    user_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) "
        "VALUES ($1, $2, 'Old', $3, now(), now())",
        user_id,
        email,
        password_hash,
    )
    return user_id


async def test_an_old_lookalike_account_still_logs_in(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Pool
) -> None:
    # Registered before mixed scripts were refused: login does not refuse it.
    password_hash = await app.state.identity.passwords.hash(STRONG_PASSWORD)
    async with db.acquire() as conn:
        user_id = await _add_user(conn, f"{CYRILLIC_A}lice@example.com", password_hash)
    assert (await login(client, f"{CYRILLIC_A}lice@example.com"))["user"]["id"] == str(user_id)


def _migrate(url: str, revision: str) -> None:
    # Alembic runs its own event loop: in a thread of its own.
    errors: list[BaseException] = []

    def run() -> None:
        try:
            command.upgrade(alembic_config(url), revision)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


async def test_migration_folds_stored_addresses_so_their_owners_log_in(server_url: str) -> None:
    name = f"gp_mig_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    try:
        await asyncio.to_thread(_migrate, url, "0009")
        password_hash = await Passwords(make_settings(url)).hash(STRONG_PASSWORD)
        conn = await asyncpg.connect(url)
        try:
            folded = await _add_user(conn, f"{FULLWIDTH_ALICE}@example.com", password_hash)
            plain_bob = await _add_user(conn, "bob@example.com", password_hash)
            lookalike_bob = await _add_user(conn, "\uff42\uff4f\uff42@example.com", password_hash)
        finally:
            await conn.close()

        await asyncio.to_thread(_migrate, url, "head")

        conn = await asyncpg.connect(url)
        try:
            emails = dict(await conn.fetch("SELECT id, email FROM users"))
        finally:
            await conn.close()
        assert emails[folded] == "alice@example.com"
        assert emails[plain_bob] == "bob@example.com"
        # The pair is the look-alike registration itself: the plain spelling keeps it.
        assert emails[lookalike_bob] == "\uff42\uff4f\uff42@example.com"

        application = create_app(make_settings(url))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application, client=(PLAYER_IP, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for spelling in (f"{FULLWIDTH_ALICE}@example.com", "alice@example.com"):
                    assert (await login(client, spelling))["user"]["id"] == str(folded)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_create_admin_folds_and_refuses_alike(
    client: httpx.AsyncClient, database_url: str
) -> None:
    settings = make_settings(database_url)
    player = await register(client, email="alice@example.com")
    promoted = await create_or_promote_admin(
        settings, database_url, email=f"{FULLWIDTH_ALICE}@example.com", name="A", password=OTHER
    )
    assert promoted == "promoted alice@example.com to admin (password reset)"
    assert (await login(client, "alice@example.com", OTHER))["user"]["id"] == player["user"]["id"]
    with pytest.raises(ValueError, match="scripts"):
        await create_or_promote_admin(
            settings, database_url, email=f"{CYRILLIC_A}dmin@example.com", name="A", password=OTHER
        )
    with pytest.raises(ValueError, match="invalid email"):
        await create_or_promote_admin(
            settings, database_url, email="a\uff20b@example.com", name="A", password=OTHER
        )
