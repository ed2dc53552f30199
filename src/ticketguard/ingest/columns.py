"""The columns `ticketguard import` accepts: their names, what each must hold, and where it lands.

Lengths come from the table definitions, so a value that validates here also fits its column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import String, Table

from ticketguard import tables

Kind = Literal[
    "text",
    "wallet",
    "ip",
    "country",
    "price",
    "face_value",
    "bool",
    "timestamp",
    "latitude",
    "longitude",
    "capacity",
]
Target = Literal["transaction", "label", "event"]

# Prices are stored as NUMERIC(18, 8) but travel through float64 frames: below 10^7 with at most 8
# decimals a value has at most 15 significant digits, which a double round-trips exactly.
MAX_AMOUNT_EXCLUSIVE = 10_000_000
MAX_DECIMALS = 8
MAX_CAPACITY = 2_147_483_647  # INTEGER column


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: Kind
    target: Target
    field: str  # column name in the History frame of `target`
    required: bool = False
    max_length: int | None = None
    description: str = ""


def _length(table: Table, column: str) -> int:
    column_type = table.c[column].type
    assert isinstance(column_type, String)
    assert column_type.length is not None
    return int(column_type.length)


def _tx(name: str, kind: Kind, *, required: bool = False, description: str = "") -> ColumnSpec:
    length = _length(tables.transactions, name) if kind == "text" else None
    return ColumnSpec(name, kind, "transaction", name, required, length, description)


def _event(name: str, field: str, kind: Kind, description: str) -> ColumnSpec:
    length = _length(tables.events, field) if kind == "text" else None
    return ColumnSpec(name, kind, "event", field, False, length, description)


COLUMNS: tuple[ColumnSpec, ...] = (
    _tx("transaction_id", "text", required=True, description="unique id of the purchase or resale"),
    _tx("wallet_address", "wallet", required=True, description="buyer wallet, 0x + 1-40 hex digits"),
    _tx("event_id", "text", required=True, description="the event the ticket is for"),
    _tx("price_paid", "price", required=True, description="decimal >= 0 (0: free ticket), 8 decimals"),
    _tx("timestamp", "timestamp", required=True, description="ISO 8601 time of the transaction"),
    _tx("ticket_id", "text", description="the ticket (NFT token) id"),
    _tx("payment_method", "text", description="card, crypto, apple_pay, …"),
    _tx("is_resale", "bool", description="true for a resale (default false)"),
    _tx("status", "text", description="e.g. completed"),
    _tx("seller_address", "wallet", description="seller wallet of a resale"),
    _tx("ip_address", "ip", description="IPv4 or IPv6 address of the buyer"),
    _tx("country", "country", description="ISO 3166-1 alpha-2 code of the buyer"),
    _tx("latitude", "latitude", description="buyer latitude, -90..90"),
    _tx("longitude", "longitude", description="buyer longitude, -180..180"),
    ColumnSpec("is_fraud", "bool", "label", "is_fraud", True, None, "the label: true (fraud) or false"),
    ColumnSpec(
        "pattern",
        "text",
        "label",
        "pattern",
        False,
        _length(tables.fraud_labels, "pattern"),
        "fraud pattern or legit look-alike tag",
    ),
    ColumnSpec(
        "labelled_at",
        "timestamp",
        "label",
        "labelled_at",
        False,
        None,
        "when the label became known (default: timestamp + label delay)",
    ),
    _event("event_name", "name", "text", "event name"),
    _event("event_organizer_id", "organizer_id", "text", "organiser id"),
    _event("event_venue", "venue", "text", "venue"),
    _event("event_city", "city", "text", "city of the event"),
    _event("event_capacity", "capacity", "capacity", "number of tickets, integer > 0"),
    _event("event_face_value", "face_value", "face_value", "primary price, decimal >= 0"),
    _event("event_on_sale_at", "on_sale_at", "timestamp", "when tickets went on sale"),
    _event("event_starts_at", "starts_at", "timestamp", "when the event starts"),
)

BY_NAME: dict[str, ColumnSpec] = {spec.name: spec for spec in COLUMNS}
REQUIRED: tuple[str, ...] = tuple(spec.name for spec in COLUMNS if spec.required)
OPTIONAL: tuple[str, ...] = tuple(spec.name for spec in COLUMNS if not spec.required)
EVENT_SPECS: tuple[ColumnSpec, ...] = tuple(spec for spec in COLUMNS if spec.target == "event")

# An events file (`--events`) uses the events table's own names, as `ticketguard simulate -o` writes them.
EVENT_FILE_COLUMNS: dict[str, str] = {
    "event_id": "event_id",
    **{spec.field: spec.name for spec in EVENT_SPECS},
}
