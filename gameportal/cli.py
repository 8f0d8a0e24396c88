"""The `gameportal` command."""

from __future__ import annotations

import asyncio
import gc
import getpass
import os
import signal
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from gameportal.config import SecretKeyFileError, Settings, get_settings

if TYPE_CHECKING:
    from gameportal.notifications.worker import WorkerConfig

cli = typer.Typer(
    help="gameportal: player portal and live-operations backend",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _settings(*, secret_key: bool = False) -> Settings:
    """The settings; with `secret_key`, also the key, made in the data folder if need be.
    Only the commands that sign or verify (serve, worker) ask for it, so that the others,
    run in the wrong folder, leave no data folder behind."""
    try:
        settings = get_settings() if secret_key else Settings()
    except ValidationError as exc:
        # Only the messages: pydantic's own text repeats the input, secrets included.
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            name = f"GAMEPORTAL_{where.upper()}: " if where else ""
            typer.echo(f"configuration error: {name}{error['msg']}", err=True)
        raise typer.Exit(2) from None
    except SecretKeyFileError as exc:
        typer.echo(f"configuration error: GAMEPORTAL_SECRET_KEY: {exc}", err=True)
        raise typer.Exit(2) from None
    return settings


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


_CREATE = typer.Option(
    "--create", help="Create the embedded database when the data folder has none"
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def listening_url(host: str, port: int) -> str:
    """The URL a browser on this machine reaches `serve --host --port` at: a wildcard
    address is reached on loopback; an IPv6 address goes in brackets."""
    if host in ("", "0.0.0.0"):  # noqa: S104 (a comparison, not a bind)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
    migrate: Annotated[bool, typer.Option(help="Apply pending migrations first")] = True,
    queue_worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Also run the queue worker (its own process); --no-worker where "
            "`gameportal worker` runs elsewhere",
        ),
    ] = True,
) -> None:
    """Serve the API and run the queue worker beside it, starting the embedded PostgreSQL
    when no database URL is set (its data is created on the first start)."""
    import uvicorn

    from gameportal.db import EmbeddedDatabaseError, database_url_for
    from gameportal.migrations import upgrade
    from gameportal.serving import PROTOCOL as SLOW_CLIENT_GUARD
    from gameportal.serving import connection_limit
    from gameportal.supervise import ChildProcess, metrics_folder

    if not os.environ.get("GAMEPORTAL_PUBLIC_BASE_URL"):
        # Unset: where this server listens, so that media URLs and mailed links work on a
        # laptop whatever the port; its children (API workers, queue worker) inherit it.
        # A deployment sets its public https:// address.
        os.environ["GAMEPORTAL_PUBLIC_BASE_URL"] = listening_url(host, port)
    settings = _settings(secret_key=True)
    typer.echo(f"data folder: {settings.data_dir}", err=True)
    if settings.secret_key_file is not None:
        # Its children (uvicorn workers, the queue worker) find the same file through
        # GAMEPORTAL_DATA_DIR below, so every process signs and verifies with one key.
        typer.echo(
            f"secret key: {settings.secret_key_file} (generated; GAMEPORTAL_SECRET_KEY "
            "overrides it, and production requires it)",
            err=True,
        )
    if not settings.smtp_host:
        typer.echo(
            f"no SMTP server set: mail goes to {settings.outbox_dir} (`gameportal outbox`)",
            err=True,
        )
    try:
        with database_url_for(settings, exclusive=True, create=True) as url, metrics_folder():
            if not settings.database_url:
                typer.echo(f"embedded PostgreSQL running in {settings.embedded_pgdata}", err=True)
            # The uvicorn workers and the queue worker are other processes: they read the
            # database and the data folder from the environment, resolved once here.
            os.environ["GAMEPORTAL_DATABASE_URL"] = url
            os.environ["GAMEPORTAL_DATA_DIR"] = str(settings.data_dir)
            get_settings.cache_clear()
            if migrate:
                upgrade(url)
            # uvicorn re-raises SIGTERM after its graceful shutdown; by default that kills the
            # process before the worker and the embedded PostgreSQL are stopped. Turn it into
            # an exit instead.
            signal.signal(signal.SIGTERM, _exit_on_signal)
            limit, note = connection_limit(settings)
            if note:
                typer.echo(f"note: {note}", err=True)
                os.environ["GAMEPORTAL_MAX_CONNECTIONS"] = str(limit)  # for the API processes
                get_settings.cache_clear()
            child = ChildProcess(
                "queue worker",
                [sys.executable, "-m", "gameportal.cli", "worker"],
                # The worker exits within its grace; SIGKILL only if it somehow does not.
                stop_timeout=settings.worker_shutdown_grace_seconds + 5,
            )
            if queue_worker:
                child.start()
            try:
                uvicorn.run(
                    "gameportal.app:create_app",
                    factory=True,
                    host=host,
                    port=port,
                    workers=workers,
                    access_log=False,  # our middleware logs each request with its request id
                    proxy_headers=False,  # X-Forwarded-For is judged by GAMEPORTAL_TRUSTED_PROXIES
                    loop="uvloop",
                    # httptools with header and unread-body timeouts and a connection limit
                    # (GAMEPORTAL_HEADER_TIMEOUT_SECONDS and so on; uvicorn has none).
                    http=SLOW_CLIENT_GUARD,
                    log_level=settings.log_level.lower(),
                    # Without it uvicorn waits for every open response, however long.
                    timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
                )
            finally:
                child.stop()
    except EmbeddedDatabaseError as exc:
        raise _fail(str(exc)) from None


@cli.command()
def migrate(
    sql: Annotated[bool, typer.Option("--sql", help="Print the SQL instead of running it")] = False,
    create: Annotated[bool, _CREATE] = False,
) -> None:
    """Upgrade the database schema to the latest migration."""
    from gameportal.db import EmbeddedDatabaseError, database_url_for
    from gameportal.migrations import upgrade

    settings = _settings()
    if sql and not settings.database_url:
        upgrade("postgresql://offline/gameportal", sql=True)  # offline: never connects
        return
    try:
        with database_url_for(settings, create=create) as url:
            upgrade(url, sql=sql)
    except EmbeddedDatabaseError as exc:
        raise _fail(str(exc)) from None


@cli.command("db-url")
def db_url() -> None:
    """Print the URL of the database in use: GAMEPORTAL_DATABASE_URL, or the embedded
    server a running `gameportal serve` keeps."""
    from gameportal.db import EmbeddedDatabaseError, database_url_for

    try:
        with database_url_for(_settings(), running=True) as url:
            typer.echo(url)
    except EmbeddedDatabaseError as exc:
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
    create: Annotated[bool, _CREATE] = False,
) -> None:
    """Create an administrator (or promote an existing account). The password is read from
    a prompt, or from standard input when it is not a terminal."""
    from gameportal.db import EmbeddedDatabaseError, database_url_for
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
        with database_url_for(settings, create=create) as url:
            upgrade(url)
            message = asyncio.run(
                create_or_promote_admin(settings, url, email=email, name=name, password=password)
            )
    except EmbeddedDatabaseError as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    typer.echo(message)


@cli.command()
def prune() -> None:
    """Delete ended sessions past GAMEPORTAL_SESSION_RETENTION_DAYS and stale login-throttle
    counters. Safe to run at any time, e.g. daily from cron."""
    from gameportal.db import EmbeddedDatabaseError, database_url_for
    from gameportal.identity.admin_cli import prune_identity

    settings = _settings()
    try:
        with database_url_for(settings) as url:
            pruned = asyncio.run(prune_identity(settings, url))
    except EmbeddedDatabaseError as exc:
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
    from gameportal.db import EmbeddedDatabaseError, database_url_for
    from gameportal.liveops.offers import register_liveops_tasks
    from gameportal.models import MESSAGE_TYPES
    from gameportal.notifications.channels import register_builtin_handlers
    from gameportal.notifications.outage import CONFIGURATION_ERRORS
    from gameportal.notifications.registry import handler_for, registered_types
    from gameportal.notifications.worker import WorkerConfig
    from gameportal.progress.tasks import register_progress_tasks

    settings = _settings(secret_key=True)  # its mail carries signed unsubscribe links
    register_builtin_handlers(settings)
    register_content_tasks(settings)
    register_progress_tasks(settings)
    register_liveops_tasks(settings)
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
                        shutdown_grace=settings.worker_shutdown_grace_seconds,
                    ),
                )
            )
    except EmbeddedDatabaseError as exc:
        raise _fail(str(exc)) from None
    except CONFIGURATION_ERRORS as exc:
        raise _fail(f"the database refuses this worker: {exc}") from None


async def _run_worker(settings: Settings, url: str, config: WorkerConfig) -> None:
    from gameportal.db import Database, plain_url
    from gameportal.notifications.outage import (
        DATABASE_ERRORS,
        quiet_pool_reconnects,
        wait_for_database,
    )
    from gameportal.notifications.registry import close_handlers
    from gameportal.notifications.worker import Worker
    from gameportal.observability import configure_logging

    configure_logging(settings.log_level, settings.log_json)
    quiet_pool_reconnects()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Started while PostgreSQL is away (a deploy, a failover): wait for it, not exit.
    db = None
    while db is None:
        if not await wait_for_database(plain_url(url), stop):
            return  # stopped while waiting
        try:
            db = await Database.connect(settings.model_copy(update={"database_url": url}))
        except DATABASE_ERRORS:
            continue  # gone again meanwhile
    # What is loaded now lives as long as the process: keep it out of the collector's scans
    # (measured: building a batch of 1,000 messages 2.3 -> 1.0 ms).
    gc.freeze()
    try:
        await Worker(db.pool, plain_url(url), config).run(stop)
    finally:
        await close_handlers()
        try:  # bounded: the grace period is spent, and a connection may be stuck
            await asyncio.wait_for(db.close(), 1)
        except DATABASE_ERRORS:  # TimeoutError among them
            db.pool.terminate()


@cli.command()
def outbox(
    mail_id: Annotated[
        str | None, typer.Argument(help="Show this mail (an id, a unique prefix, or `latest`)")
    ] = None,
    to: Annotated[str | None, typer.Option(help="Only mails to addresses containing this")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many to list")] = 20,
    links: Annotated[bool, typer.Option("--links", help="Print only the mail's links")] = False,
) -> None:
    """List the mails written to the development outbox (newest first), or show one, with
    the verification and reset links it carries. Mail goes there while no SMTP server is
    set (GAMEPORTAL_SMTP_HOST)."""
    from gameportal.notifications import outbox as box

    settings = _settings()
    folder = settings.outbox_dir
    if settings.smtp_host:
        typer.echo(
            f"note: mail goes to {settings.smtp_host}; the outbox only holds mail sent "
            "while no SMTP server was set",
            err=True,
        )
    if mail_id is None:
        mails = box.list_mails(folder, to=to, limit=limit)
        if not mails:
            typer.echo(f"no mail in {folder}", err=True)
        for mail in mails:
            when = mail.date.strftime("%Y-%m-%d %H:%M:%S") if mail.date else "?"
            typer.echo(f"{mail.id}  {when}  {mail.to}  {mail.subject}")
        return
    found = box.find(folder, mail_id)
    if found is None:
        raise _fail(f"no single mail in {folder} matches {mail_id!r}")
    if links:
        for link in found.links:
            typer.echo(link)
        return
    for header in ("Date", "From", "To", "Subject"):
        typer.echo(f"{header}: {found.mail[header] or ''}")
    typer.echo(f"File: {found.path}\n")
    typer.echo(found.text)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
