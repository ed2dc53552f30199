"""Reading and writing transaction history frames (`ticketguard.frames`) to and from the database."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection, delete, select

from ticketguard import tables
from ticketguard.frames import (
    EVENT_COLUMNS,
    LABEL_COLUMNS,
    MONEY_COLUMNS,
    TRANSACTION_COLUMNS,
    History,
    conform,
    empty_frame,
)
from ticketguard.kit.db import bulk_insert

__all__ = [
    "EVENT_COLUMNS",
    "LABEL_COLUMNS",
    "TRANSACTION_COLUMNS",
    "History",
    "conform",
    "delete_by_source",
    "empty_frame",
    "read_history",
    "write_history",
]


def _money_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for name in MONEY_COLUMNS & set(out.columns):
        values = out[name].to_numpy(dtype=float)
        text = np.char.mod("%.8f", np.nan_to_num(values)).astype(object)
        text[np.isnan(values)] = None
        out[name] = text
    return out


def write_history(conn: Connection, history: History) -> dict[str, int]:
    """Append a history to the database in the caller's transaction; returns rows written per table."""
    return {
        "events": bulk_insert(conn, tables.events, _money_as_text(conform(history.events, EVENT_COLUMNS))),
        "transactions": bulk_insert(
            conn, tables.transactions, _money_as_text(conform(history.transactions, TRANSACTION_COLUMNS))
        ),
        "fraud_labels": bulk_insert(conn, tables.fraud_labels, conform(history.labels, LABEL_COLUMNS)),
    }


def delete_by_source(conn: Connection, source: str) -> dict[str, int]:
    """Remove every transaction (and its label) that came from one source, e.g. an earlier simulation —
    live and archived alike (retention may have moved part of it to `transactions_archive`, which keeps the
    same ids). Returns rows deleted per table."""
    deleted: dict[str, int] = {}
    for table in (tables.transactions, tables.transactions_archive):
        ids = select(table.c.transaction_id).where(table.c.source == source)
        labels = conn.execute(
            delete(tables.fraud_labels).where(tables.fraud_labels.c.transaction_id.in_(ids))
        )
        deleted["fraud_labels"] = deleted.get("fraud_labels", 0) + int(labels.rowcount)
        deleted[table.name] = int(conn.execute(delete(table).where(table.c.source == source)).rowcount)
    if source == "simulator":
        # Labels the simulator wrote whose transactions retention already purged from the archive.
        orphans = conn.execute(delete(tables.fraud_labels).where(tables.fraud_labels.c.source == "simulator"))
        deleted["fraud_labels"] += int(orphans.rowcount)
        events = conn.execute(delete(tables.events).where(tables.events.c.event_id.like("sim-%")))
        deleted["events"] = int(events.rowcount)
    return deleted


def read_history(conn: Connection) -> History:
    """The whole history from the database, in the frame shapes above, transactions in time order."""

    def frame(sql: str, columns: dict[str, str]) -> pd.DataFrame:
        result = conn.exec_driver_sql(sql)
        data = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        return conform(data, columns)

    # column names are the module's own constants, never input
    events = frame(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events", EVENT_COLUMNS)  # noqa: S608
    txn_cols = ", ".join(f'"{c}"' for c in TRANSACTION_COLUMNS)
    transactions = frame(
        f'SELECT {txn_cols} FROM transactions ORDER BY "timestamp", transaction_id',  # noqa: S608
        TRANSACTION_COLUMNS,
    )
    labels = frame(f"SELECT {', '.join(LABEL_COLUMNS)} FROM fraud_labels", LABEL_COLUMNS)  # noqa: S608
    return History(events=events, transactions=transactions, labels=labels)
