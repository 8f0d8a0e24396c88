"""The `gameportal` command."""

from __future__ import annotations

import asyncio
import getpass
import os
import signal
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from gameportal.config import Settings, get_settings

if TYPE_CHECKING:
    from gameportal.notifications.worker import WorkerConfig

cli = typer.Typer(
    help="gameportal: player portal and live-operations backend",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        # Only the messages: pydantic's own text repeats the input, secrets included.
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            name = f"GAMEPORTAL_{where.upper()}: " if where else ""
            typer.echo(f"configuration error: {name}{error['msg']}", err=True)
        raise typer.Exit(2) from None


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
    migrate: Annotated[bool, typer.Option(help="Apply pending migrations first")] = True,
) -> None:
    """Serve the API (starting the embedded PostgreSQL when no database URL is set)."""
    import uvicorn

    from gameportal.db import DataDirInUse, database_url_for
    from gameportal.migrations import upgrade

    settings = _settings()
    try:
        with database_url_for(settings, exclusive=True) as url:
            if not settings.database_url:
                typer.echo(
                    f"embedded PostgreSQL running with data in {settings.embedded_pgdata}", err=True
                )
            # Workers are separate processes: they read the URL from the environment.
            os.environ["GAMEPORTAL_DATABASE_URL"] = url
            get_settings.cache_clear()
            if migrate:
                upgrade(url)
            # uvicorn re-raises SIGTERM after its graceful shutdown; by default that kills the
            # process before the embedded PostgreSQL is stopped. Turn it into an exit instead.
            signal.signal(signal.SIGTERM, _exit_on_signal)
            uvicorn.run(
                "gameportal.app:create_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                access_log=False,  # our middleware logs each request with its request id
                proxy_headers=False,  # X-Forwarded-For is judged by GAMEPORTAL_TRUSTED_PROXIES
                loop="uvloop",
                http="httptools",
                log_level=settings.log_level.lower(),
            )
    except DataDirInUse as exc:
        raise _fail(str(exc)) from None


@cli.command()
def migrate(
    sql: Annotated[bool, typer.Option("--sql", help="Print the SQL instead of running it")] = False,
) -> None:
    """Upgrade the database schema to the latest migration."""
    from gameportal.db import DataDirInUse, database_url_for
    from gameportal.migrations import upgrade

    settings = _settings()
    try:
        with database_url_for(settings) as url:
            upgrade(url, sql=sql)
    except DataDirInUse as exc:
        raise _fail(str(exc)) from None


@cli.command("db-url")
def db_url() -> None:
    """Print the URL of the database in use, embedded or not."""
    from gameportal.db import DataDirInUse, database_url_for

    try:
        with database_url_for(_settings()) as url:
            typer.echo(url)
    except DataDirInUse as exc:
        raise _fail(str(exc)) from None


@cli.command("vapid-keys")
def vapid_keys() -> None:
    """Print a new VAPID key pair for Web Push, as environment settings."""
    from gameportal.notifications.vapid import generate_keys

    keys = generate_keys()
    typer.echo(f"GAMEPORTAL_VAPID_PRIVATE_KEY={keys.private_key}")
    typer.echo(f"# public key (served at /api/v1/push/vapid-public-key): {keys.public_key}")


@cli.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="The administrator's email")],
    name: Annotated[str, typer.Option(help="Display name")] = "Administrator",
) -> None:
    """Create an administrator (or promote an existing account). The password is read from
    a prompt, or from standard input when it is not a terminal."""
    from gameportal.db import DataDirInUse, database_url_for
    from gameportal.identity.admin_cli import create_or_promote_admin
    from gameportal.migrations import upgrade

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat: ") != password:
            raise _fail("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    settings = _settings()
    try:
        with database_url_for(settings) as url:
            upgrade(url)
            message = asyncio.run(
                create_or_promote_admin(settings, url, email=email, name=name, password=password)
            )
    except DataDirInUse as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    typer.echo(message)


@cli.command()
def prune() -> None:
    """Delete ended sessions past GAMEPORTAL_SESSION_RETENTION_DAYS and stale login-throttle
    counters. Safe to run at any time, e.g. daily from cron."""
    from gameportal.db import DataDirInUse, database_url_for
    from gameportal.identity.admin_cli import prune_identity

    settings = _settings()
    try:
        with database_url_for(settings) as url:
            pruned = asyncio.run(prune_identity(settings, url))
    except DataDirInUse as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"deleted {pruned.sessions} ended sessions and {pruned.throttle_rows} stale "
        "login-throttle counters"
    )


@cli.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, max=1000, help="Messages at once")] = 8,
    types: Annotated[
        str | None, typer.Option(help="Comma-separated types; default: all with a handler")
    ] = None,
    imports: Annotated[
        list[str] | None,
        typer.Option("--import", help="A module that registers more handlers (repeatable)"),
    ] = None,
    lease_seconds: Annotated[float, typer.Option(min=1, help="Lease per claimed message")] = 30,
    batch: Annotated[
        int, typer.Option(min=1, max=10_000, help="Messages claimed and completed per query")
    ] = 100,
) -> None:
    """Deliver queued messages until SIGTERM or Ctrl-C (then finish or give back what it
    holds). Run as many as you like, on as many machines."""
    import importlib

    from gameportal.content.tasks import register_content_tasks
    from gameportal.db import DataDirInUse, database_url_for
    from gameportal.models import MESSAGE_TYPES
    from gameportal.notifications.channels import register_builtin_handlers
    from gameportal.notifications.registry import handler_for, registered_types
    from gameportal.notifications.worker import WorkerConfig

    register_builtin_handlers(_settings())
    register_content_tasks(_settings())
    for module in imports or []:
        importlib.import_module(module)
    wanted = [t.strip().upper() for t in types.split(",") if t.strip()] if types else None
    chosen = wanted if wanted is not None else registered_types()
    unknown = [t for t in chosen if t not in MESSAGE_TYPES]
    if unknown:
        raise _fail(f"unknown message types {unknown}; known: {', '.join(MESSAGE_TYPES)}")
    missing = [t for t in chosen if handler_for(t) is None]
    if missing or not chosen:
        raise _fail(
            f"no handler is installed for {missing or 'any message type'}; "
            "load one with --import MODULE (PUSH needs GAMEPORTAL_VAPID_PRIVATE_KEY)"
        )
    settings = _settings()
    try:
        with database_url_for(settings) as url:
            asyncio.run(
                _run_worker(
                    settings,
                    url,
                    WorkerConfig(
                        types=chosen,
                        concurrency=concurrency,
                        batch=max(batch, concurrency),
                        lease=timedelta(seconds=lease_seconds),
                    ),
                )
            )
    except DataDirInUse as exc:
        raise _fail(str(exc)) from None


async def _run_worker(settings: Settings, url: str, config: WorkerConfig) -> None:
    from gameportal.db import Database, plain_url
    from gameportal.notifications.registry import close_handlers
    from gameportal.notifications.worker import Worker
    from gameportal.observability import configure_logging

    configure_logging(settings.log_level, settings.log_json)
    db = await Database.connect(settings.model_copy(update={"database_url": url}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await Worker(db.pool, plain_url(url), config).run(stop)
    finally:
        await close_handlers()
        await db.close()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
