"""The SQL of retention: batched moves to the archive, archive purges, session clean-up.

Each function runs in the caller's transaction and does one batch; the service commits each batch on
its own, so an interrupted run loses nothing and duplicates nothing, and the next run carries on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Connection, Table, bindparam, func, or_, select, text

from ticketguard import tables
from ticketguard.kit.types import UTCDateTime
from ticketguard.retention.policy import ArchiveRule

# Table and column names in these statements come from the policy and the schema metadata, never from input;
# values are always bound parameters (hence the S608 waivers).


# A fault-injection seam: called inside a batch's transaction at each named step — "archived" (the batch's
# rows are in the archive; on SQLite not yet deleted from the live table) and "deleted" (they are gone from
# the live table; the transaction is not yet committed). Production passes none; tests raise from it to show
# that a failure at either step rolls the whole batch back (docs/testing.md).
Checkpoint = Callable[[str], None]


def _reached(checkpoint: Checkpoint | None, step: str) -> None:
    if checkpoint is not None:
        checkpoint(step)


class RetentionIntegrityError(RuntimeError):
    """A batch would have archived a different number of rows than it deleted; it was rolled back."""


def _table(name: str) -> Table:
    return tables.metadata.tables[name]


def _quoted_columns(table: Table) -> str:
    return ", ".join(f'"{column.name}"' for column in table.columns)


def _params(cutoff: datetime, limit: int, now: datetime | None = None) -> list[BindParameter[Any]]:
    params: list[BindParameter[Any]] = [
        bindparam("cutoff", cutoff, type_=UTCDateTime()),
        bindparam("limit", limit),
    ]
    if now is not None:
        params.append(bindparam("now", now, type_=UTCDateTime()))
    return params


def move_batch(
    conn: Connection,
    rule: ArchiveRule,
    cutoff: datetime,
    limit: int,
    now: datetime,
    *,
    checkpoint: Checkpoint | None = None,
) -> int:
    """Move up to ``limit`` of the oldest rows older than ``cutoff`` into the archive; returns how many.

    Archive INSERT and live DELETE are in the caller's one transaction (PostgreSQL: in one statement), so a
    failure anywhere before its commit leaves every row where it was."""
    live = _table(rule.table)
    columns = _quoted_columns(live)
    ts = f'"{rule.timestamp_column}"'
    key = f'"{rule.key}"'
    if conn.dialect.name == "postgresql":
        # One statement: the rows deleted are exactly the rows inserted, or neither happens.
        # SKIP LOCKED: rows a concurrent writer holds are left for the next run instead of waiting.
        statement = text(
            f"""
            WITH batch AS (
                SELECT {key} FROM "{rule.table}" WHERE {ts} < :cutoff
                ORDER BY {ts} LIMIT :limit FOR UPDATE SKIP LOCKED
            ), moved AS (
                DELETE FROM "{rule.table}" AS live USING batch
                WHERE live.{key} = batch.{key}
                RETURNING {", ".join(f"live.{c}" for c in columns.split(", "))}
            )
            INSERT INTO "{rule.archive_table}" ({columns}, "archived_at")
            SELECT {columns}, :now FROM moved
            """  # noqa: S608
        ).bindparams(*_params(cutoff, limit, now))
        moved = int(conn.execute(statement).rowcount)
        if moved:
            _reached(checkpoint, "archived")
            _reached(checkpoint, "deleted")
        return moved
    # SQLite: the batch's rowids are pinned in a temp table so the INSERT and the DELETE act on exactly the
    # same rows; the first write takes the database's write lock, so nothing else changes them in between.
    conn.execute(text("CREATE TEMP TABLE IF NOT EXISTS retention_batch (rid INTEGER PRIMARY KEY)"))
    conn.execute(text("DELETE FROM temp.retention_batch"))
    conn.execute(
        text(
            f'INSERT INTO temp.retention_batch (rid) SELECT rowid FROM "{rule.table}" '  # noqa: S608
            f"WHERE {ts} < :cutoff ORDER BY {ts} LIMIT :limit"
        ).bindparams(*_params(cutoff, limit))
    )
    inserted = conn.execute(
        text(
            f'INSERT INTO "{rule.archive_table}" ({columns}, "archived_at") '  # noqa: S608
            f'SELECT {columns}, :now FROM "{rule.table}" '
            "WHERE rowid IN (SELECT rid FROM temp.retention_batch)"
        ).bindparams(bindparam("now", now, type_=UTCDateTime()))
    ).rowcount
    if inserted:
        _reached(checkpoint, "archived")
    deleted = conn.execute(
        text(f'DELETE FROM "{rule.table}" WHERE rowid IN (SELECT rid FROM temp.retention_batch)')  # noqa: S608
    ).rowcount
    if deleted:
        _reached(checkpoint, "deleted")
    if inserted != deleted:
        raise RetentionIntegrityError(
            f"{rule.table}: archived {inserted} rows but deleted {deleted}; batch rolled back"
        )
    return int(inserted)


def purge_archive_batch(conn: Connection, rule: ArchiveRule, horizon: datetime, limit: int) -> int:
    """Delete up to ``limit`` archived rows older than the archive horizon; returns how many."""
    ts = f'"{rule.timestamp_column}"'
    row_key = f'"{rule.key}"' if conn.dialect.name == "postgresql" else "rowid"
    statement = text(
        f'DELETE FROM "{rule.archive_table}" WHERE {row_key} IN '  # noqa: S608
        f'(SELECT {row_key} FROM "{rule.archive_table}" WHERE {ts} < :cutoff ORDER BY {ts} LIMIT :limit)'
    ).bindparams(*_params(horizon, limit))
    return int(conn.execute(statement).rowcount)


def count_older(conn: Connection, table_name: str, timestamp_column: str, cutoff: datetime) -> int:
    table = _table(table_name)
    return int(
        conn.execute(
            select(func.count()).select_from(table).where(table.c[timestamp_column] < cutoff)
        ).scalar_one()
    )


def _ended_sessions(cutoff: datetime) -> ColumnElement[bool]:
    sessions = tables.admin_sessions
    return or_(sessions.c.expires_at < cutoff, sessions.c.revoked_at < cutoff)


def delete_ended_sessions_batch(conn: Connection, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` admin sessions that expired or were revoked before ``cutoff``."""
    sessions = tables.admin_sessions
    batch = select(sessions.c.id).where(_ended_sessions(cutoff)).limit(limit)
    return int(conn.execute(sessions.delete().where(sessions.c.id.in_(batch))).rowcount)


def count_ended_sessions(conn: Connection, cutoff: datetime) -> int:
    sessions = tables.admin_sessions
    return int(
        conn.execute(select(func.count()).select_from(sessions).where(_ended_sessions(cutoff))).scalar_one()
    )
