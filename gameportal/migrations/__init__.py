"""Alembic, driven from code: the CLI, the app's readiness check and the tests use these."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from gameportal.db import async_url

HERE = Path(__file__).parent


def alembic_config(database_url: str, *, stdout: TextIO | None = None) -> Config:
    cfg = Config(stdout=stdout) if stdout is not None else Config()
    cfg.set_main_option("script_location", str(HERE))
    # ConfigParser interpolates '%'; escape it so passwords with '%' survive.
    cfg.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, *, sql: bool = False) -> None:
    command.upgrade(alembic_config(database_url), "head", sql=sql)


def head_revision() -> str | None:
    return ScriptDirectory(str(HERE)).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
