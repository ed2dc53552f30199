"""Transaction history as data frames: the one shape shared by the simulator, imports, ETL and training.

Three frames, each with fixed columns:

- events: one row per event (capacity, face value, on-sale and start times, organiser).
- transactions: one row per primary sale or resale, in the columns of the `transactions` table.
- labels: one row per labelled transaction (`is_fraud`, `pattern`, `source`, `labelled_at`).

Timestamps are pandas ``datetime64[us, UTC]``; money is float64 in frames (rounded to the cent by its
producers) and written to the database as exact 8-decimal text, so storage stays Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection, delete, select

from ticketguard import tables
from ticketguard.kit.db import bulk_insert

EVENT_COLUMNS: dict[str, str] = {
    "event_id": "string",
    "name": "string",
    "organizer_id": "string",
    "venue": "string",
    "city": "string",
    "capacity": "int64",
    "face_value": "float64",
    "on_sale_at": "datetime",
    "starts_at": "datetime",
}

TRANSACTION_COLUMNS: dict[str, str] = {
    "transaction_id": "string",
    "wallet_address": "string",
    "event_id": "string",
    "ticket_id": "string",
    "price_paid": "float64",
    "payment_method": "string",
    "is_resale": "bool",
    "status": "string",
    "timestamp": "datetime",
    "seller_address": "string",
    "ip_address": "string",
    "country": "string",
    "latitude": "float64",
    "longitude": "float64",
    "source": "string",
}

LABEL_COLUMNS: dict[str, str] = {
    "transaction_id": "string",
    "is_fraud": "bool",
    "pattern": "string",
    "source": "string",
    "labelled_at": "datetime",
}

MONEY_COLUMNS = {"price_paid", "face_value"}


@dataclass
class History:
    events: pd.DataFrame
    transactions: pd.DataFrame
    labels: pd.DataFrame

    def __len__(self) -> int:
        return len(self.transactions)


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    return conform(pd.DataFrame({name: [] for name in columns}), columns)


def conform(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Select and cast a frame to one of the shapes above (missing optional columns become null)."""
    out = pd.DataFrame(index=frame.index)
    for name, kind in columns.items():
        series = frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        if kind == "datetime":
            series = pd.to_datetime(series, utc=True).astype("datetime64[us, UTC]")
        elif kind == "string":
            series = series.astype("object").where(series.notna(), None)
        elif kind == "bool":
            series = series.fillna(False).astype(bool)
        else:
            series = series.astype(kind)
        out[name] = series
    return out.reset_index(drop=True)


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


def delete_by_source(conn: Connection, source: str) -> None:
    """Remove every transaction (and its label) that came from one source, e.g. an earlier simulation."""
    ids = select(tables.transactions.c.transaction_id).where(tables.transactions.c.source == source)
    conn.execute(delete(tables.fraud_labels).where(tables.fraud_labels.c.transaction_id.in_(ids)))
    conn.execute(delete(tables.transactions).where(tables.transactions.c.source == source))
    if source == "simulator":
        conn.execute(delete(tables.events).where(tables.events.c.event_id.like("sim-%")))


def read_history(conn: Connection) -> History:
    """The whole history from the database, in the frame shapes above, transactions in time order."""
    def frame(sql: str, columns: dict[str, str]) -> pd.DataFrame:
        result = conn.exec_driver_sql(sql)
        data = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        return conform(data, columns)

    events = frame(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events", EVENT_COLUMNS)
    txn_cols = ", ".join(f'"{c}"' for c in TRANSACTION_COLUMNS)
    transactions = frame(
        f"SELECT {txn_cols} FROM transactions ORDER BY \"timestamp\", transaction_id", TRANSACTION_COLUMNS
    )
    labels = frame(f"SELECT {', '.join(LABEL_COLUMNS)} FROM fraud_labels", LABEL_COLUMNS)
    return History(events=events, transactions=transactions, labels=labels)
