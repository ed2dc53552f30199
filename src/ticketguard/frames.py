"""Transaction history as data frames: the one shape shared by the simulator, imports, ETL and training.

Pure (pandas only); reading and writing them to the database lives in `ticketguard.history`.

Three frames, each with fixed columns:

- events: one row per event (capacity, face value, on-sale and start times, organiser).
- transactions: one row per primary sale or resale, in the columns of the `transactions` table.
- labels: one row per labelled transaction (`is_fraud`, `pattern`, `source`, `labelled_at`).

Timestamps are pandas ``datetime64[us, UTC]``; money is float64 in frames (rounded to the cent by its
producers) and written to the database as exact 8-decimal text, so storage stays Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

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
    # True when an import derived capacity/face value/start from the sales: features treat them as unknown.
    "facts_derived": "bool",
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
            series = series.astype(kind)  # type: ignore[call-overload]
        out[name] = series
    return out.reset_index(drop=True)
