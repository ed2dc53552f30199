"""The SQL an import needs: which of its ids the database already holds."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, Connection, String, Table, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY

from ticketguard import tables

# SQLite: an IN list below its 32,766 bound-parameter limit. PostgreSQL: one array parameter per chunk
# (`= ANY(:ids)`), about six times faster than 10,000-item IN lists on a million ids.
SQLITE_ID_CHUNK = 10_000
POSTGRES_ID_CHUNK = 100_000

# A transaction id is taken once it is live, archived, or labelled (a label may arrive before its row).
TRANSACTION_ID_TABLES: tuple[Table, ...] = (
    tables.transactions,
    tables.transactions_archive,
    tables.fraud_labels,
)


def _present(conn: Connection, column: Column[str], ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    if conn.dialect.name == "postgresql":
        by_array = select(column).where(column == any_(bindparam("ids", type_=ARRAY(String))))
        for start in range(0, len(ids), POSTGRES_ID_CHUNK):
            found.update(
                conn.execute(by_array, {"ids": list(ids[start : start + POSTGRES_ID_CHUNK])}).scalars()
            )
        return found
    for start in range(0, len(ids), SQLITE_ID_CHUNK):
        chunk = list(ids[start : start + SQLITE_ID_CHUNK])
        found.update(conn.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def existing_transaction_ids(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    """Id → name of the first table that already holds it, for the ids given."""
    taken: dict[str, str] = {}
    for table in TRANSACTION_ID_TABLES:
        for found in _present(conn, table.c.transaction_id, ids):
            taken.setdefault(found, table.name)
    return taken


def existing_event_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    return _present(conn, tables.events.c.event_id, ids)


def allow_long_statements(conn: Connection) -> None:
    """Lift the per-statement timeout (set for the request path) for this transaction only: a COPY of a
    million rows legitimately takes longer than a scoring query may."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
