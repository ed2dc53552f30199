"""Programmatic Alembic: the CLI's `db` commands and the tests build databases through here only."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
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


def wait_until_ready(
    url: str,
    timeout_s: float,
    *,
    on_wait: Callable[[DatabaseNotReady], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """`check_ready`, retried for up to ``timeout_s`` (containers that start together: the database may come
    up, or be migrated, a few seconds after us). Raises the last DatabaseNotReady when the time is up;
    ``on_wait`` hears about the first failure, so the operator knows what is being waited for."""
    deadline = clock() + timeout_s
    told = False
    while True:
        try:
            check_ready(url)
            return
        except DatabaseNotReady as exc:
            if clock() >= deadline:
                raise
            if not told and on_wait is not None:
                on_wait(exc)
                told = True
        sleep(min(1.0, max(0.0, deadline - clock())))
