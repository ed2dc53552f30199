"""Programmatic Alembic: the CLI's `db` commands and the tests build databases through here only."""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError

from ticketguard.kit.db import make_engine, redact_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config(stdout=io.StringIO())
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option(
        "file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d-%%(rev)s_%%(slug)s"
    )
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """The database's revision, or None when it has never been migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head() -> str:
    head_rev = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head_rev is not None
    return head_rev


def is_up_to_date(url: str) -> bool:
    return current(url) == head()


class DatabaseNotReady(RuntimeError):
    """The database cannot be reached or is not at the code's migration head."""


def check_ready(url: str) -> None:
    """Raise DatabaseNotReady, with what to do, unless the database answers and is at head."""
    try:
        at = current(url)
    except OperationalError as exc:
        raise DatabaseNotReady(f"cannot reach the database {redact_url(url)}: {exc.orig}") from None
    wanted = head()
    if at != wanted:
        raise DatabaseNotReady(
            f"the database {redact_url(url)} is at revision {at or 'base'}, the code needs {wanted}: "
            "run `ticketguard db upgrade` first"
        )
