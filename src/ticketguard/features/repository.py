"""The SQL side of the features: one request's primitives, the blacklist, and the graph snapshots.

`read_primitives` is the online execution of `ticketguard.features.specs.aggregates` plus the hand-written
primitives: one SELECT of scalar sub-queries (one round trip, every look-up served by a (key, timestamp)
index), and one small query for the wallet's located transactions of the last hour when the request has a
location. Same semantics as the offline arrays: rows strictly before t, labels known before t.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    String,
    and_,
    bindparam,
    case,
    delete,
    distinct,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.sql.expression import ScalarSelect

from ticketguard import tables
from ticketguard.features.specs import Aggregate, FeatureParams, aggregates, haversine_km
from ticketguard.kit.db import bulk_insert
from ticketguard.kit.types import UTCDateTime
from ticketguard.wallets import wallet_key

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TransactionFacts:
    """The transaction being scored, as the features see it. ``timestamp`` must be timezone-aware."""

    transaction_id: str
    wallet_address: str
    event_id: str
    timestamp: datetime
    price_paid: Decimal | float
    ticket_id: str | None = None
    payment_method: str | None = None
    is_resale: bool = False
    seller_address: str | None = None
    ip_address: str | None = None
    latitude: float | None = None
    longitude: float | None = None

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            raise ValueError(f"timestamp must be timezone-aware (UTC), got naive {self.timestamp!r}")
        # Features key wallets by their one spelling (`ticketguard.wallets`); already canonical on the
        # scoring path (~0.3 µs each), and an erasure pseudonym read back from storage stays as it is.
        object.__setattr__(self, "wallet_address", wallet_key(self.wallet_address))
        if self.seller_address is not None:
            object.__setattr__(self, "seller_address", wallet_key(self.seller_address))

    @classmethod
    def from_mapping(cls, row: Any) -> TransactionFacts:
        """From a transactions-table row (mapping or pandas row); unknown keys are ignored."""

        def get(name: str) -> Any:
            value = row.get(name) if hasattr(row, "get") else row[name]
            if value is None:
                return None
            try:
                if pd.isna(value):
                    return None
            except (TypeError, ValueError):
                pass
            return value

        ts = get("timestamp")
        if isinstance(ts, pd.Timestamp):
            ts = ts.to_pydatetime()
        lat, lon = get("latitude"), get("longitude")
        return cls(
            transaction_id=str(get("transaction_id")),
            wallet_address=str(get("wallet_address")),
            event_id=str(get("event_id")),
            timestamp=ts,
            price_paid=get("price_paid") if get("price_paid") is not None else 0.0,
            ticket_id=get("ticket_id"),
            payment_method=get("payment_method"),
            is_resale=bool(get("is_resale") or False),
            seller_address=get("seller_address"),
            ip_address=get("ip_address"),
            latitude=None if lat is None else float(lat),
            longitude=None if lon is None else float(lon),
        )


def epoch_seconds(value: datetime) -> float:
    """Epoch seconds computed exactly like the offline side (µs integer / 1e6)."""
    delta = value.astimezone(UTC) - EPOCH
    return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds) / 1_000_000


def _as_float(value: Any) -> float:
    if value is None:
        return float("nan")
    if isinstance(value, datetime):
        return epoch_seconds(value)
    return float(value)


_KEY_FIELDS = ("wallet_address", "seller_address", "event_id", "ticket_id", "ip_address", "payment_method")


def _time_param(shift: timedelta) -> str:
    return "t" if shift == timedelta(0) else f"t_minus_{int(shift.total_seconds() * 1_000_000)}us"


class _Statement:
    """The one SELECT of scalar sub-queries, built once per dialect and parameters, run with bound values.

    A null key binds NULL, and ``column = NULL`` matches nothing: counts and sums read 0, times NULL — the
    same as the offline side, without a second statement shape.
    """

    def __init__(self, dialect: str, params: FeatureParams) -> None:
        self.dialect = dialect
        self.params = params
        self.tx = tables.transactions
        self.labels = tables.fraud_labels
        self.shifts: set[timedelta] = {timedelta(0)}
        self.key = {name: bindparam(f"k_{name}", type_=String()) for name in _KEY_FIELDS}
        columns: dict[str, Any] = {}
        groups: dict[tuple[tuple[str, str], ...], list[Aggregate]] = {}
        for agg in aggregates(params):
            if agg.rows == "known_fraud":
                columns[agg.name] = self.aggregate(agg)
            else:
                groups.setdefault(agg.match, []).append(agg)
        self.derived: list[Any] = []
        for i, members in enumerate(groups.values()):
            columns.update(self.grouped(members, f"g{i}"))
        columns["w_hold_n"], columns["w_hold_sum_s"] = self.hold()
        columns["pair_n"] = self.pairs()
        columns["cp_known_fraud"] = self.known_fraud_counterparty()
        columns["cp_blacklisted"] = self.blacklisted()
        columns["centrality"] = self.centrality()
        for name, column in (
            ("ev_capacity", "capacity"),
            ("ev_face_value", "face_value"),
            ("ev_starts_s", "starts_at"),
        ):
            columns[name] = self.event(column)
        statement = select(*(value.label(name) for name, value in columns.items()))
        if self.derived:
            # Each derived table is one aggregate row: joining them on TRUE keeps one row.
            source = self.derived[0]
            for table in self.derived[1:]:
                source = source.join(table, true())
            statement = statement.select_from(source)
        self.select = statement

    def time(self, shift: timedelta = timedelta(0)) -> Any:
        self.shifts.add(shift)
        return bindparam(_time_param(shift), type_=UTCDateTime())

    def values(self, txn: TransactionFacts) -> dict[str, Any]:
        out: dict[str, Any] = {f"k_{name}": getattr(txn, name) for name in _KEY_FIELDS}
        for shift in self.shifts:
            out[_time_param(shift)] = txn.timestamp - shift
        return out

    def epoch(self, column: Any) -> ColumnElement[float]:
        if self.dialect == "postgresql":
            return func.extract("epoch", column).cast(Float)
        # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds by strftime, the fraction as written.
        return func.cast(func.strftime("%s", column), Float) + func.cast(func.substr(column, 20), Float)

    def grouped(self, members: list[Aggregate], name: str) -> dict[str, Any]:
        """Aggregates over the same key in one pass over that key's rows (a hot event or IP is read once,
        not once per aggregate): the widest window filters, each aggregate keeps its rows by CASE."""
        x = self.tx.alias(f"x_{name}")
        first = members[0]
        where: list[ColumnElement[bool]] = [x.c[item] == self.key[query] for item, query in first.match]
        where.append(x.c.timestamp < self.time(min(a.offset for a in members)))
        if all(a.window is not None for a in members):
            where.append(x.c.timestamp >= self.time(max(a.offset + a.window for a in members if a.window)))
        outputs = []
        for agg in members:
            keep: list[ColumnElement[bool]] = [x.c.timestamp < self.time(agg.offset)]
            if agg.window is not None:
                keep.append(x.c.timestamp >= self.time(agg.offset + agg.window))
            if agg.rows == "primary":
                keep.append(x.c.is_resale == false())
            elif agg.rows == "resale":
                keep.append(x.c.is_resale == true())
            elif agg.rows == "located":
                keep += [x.c.latitude.is_not(None), x.c.longitude.is_not(None)]
            condition = and_(*keep)
            if agg.agg == "count":
                column: Any = func.count(case((condition, literal(1))))
            elif agg.agg == "sum":
                assert agg.value is not None
                column = func.coalesce(func.sum(case((condition, x.c[agg.value]))), 0)
            elif agg.agg == "sumsq":
                assert agg.value is not None
                value = x.c[agg.value]
                column = func.coalesce(func.sum(case((condition, value * value))), 0)
            elif agg.agg == "max":
                assert agg.value is not None
                column = func.max(case((condition, x.c[agg.value])))
            elif agg.agg == "min_time":
                column = func.min(case((condition, x.c.timestamp)))
            elif agg.agg == "max_time":
                column = func.max(case((condition, x.c.timestamp)))
            else:
                assert agg.value is not None
                column = func.count(distinct(case((condition, x.c[agg.value]))))
            outputs.append(column.label(agg.name))
        table = select(*outputs).select_from(x).where(*where).subquery(name)
        self.derived.append(table)
        return {agg.name: table.c[agg.name] for agg in members}

    def aggregate(self, agg: Aggregate) -> ScalarSelect[Any]:
        x = self.tx.alias("x")
        where: list[ColumnElement[bool]] = [x.c[item] == self.key[query] for item, query in agg.match]
        where.append(x.c.timestamp < self.time(agg.offset))
        if agg.window is not None:
            where.append(x.c.timestamp >= self.time(agg.offset + agg.window))
        source: Any = x
        if agg.rows == "primary":
            where.append(x.c.is_resale == false())
        elif agg.rows == "resale":
            where.append(x.c.is_resale == true())
        elif agg.rows == "located":
            where += [x.c.latitude.is_not(None), x.c.longitude.is_not(None)]
        elif agg.rows == "known_fraud":
            lab = self.labels.alias("l")
            source = x.join(lab, lab.c.transaction_id == x.c.transaction_id)
            where += [lab.c.is_fraud == true(), lab.c.labelled_at < self.time()]
        if agg.agg == "count":
            column: Any = func.count()
        elif agg.agg == "sum":
            assert agg.value is not None
            column = func.coalesce(func.sum(x.c[agg.value]), 0)
        elif agg.agg == "sumsq":
            assert agg.value is not None
            column = func.coalesce(func.sum(x.c[agg.value] * x.c[agg.value]), 0)
        elif agg.agg == "max":
            assert agg.value is not None
            column = func.max(x.c[agg.value])
        elif agg.agg == "min_time":
            column = func.min(x.c.timestamp)
        elif agg.agg == "max_time":
            column = func.max(x.c.timestamp)
        else:
            assert agg.value is not None
            column = func.count(distinct(x.c[agg.value]))
        return select(column).select_from(source).where(*where).scalar_subquery()

    def hold(self) -> tuple[Any, Any]:
        x, p = self.tx.alias("x"), self.tx.alias("p")
        previous = (
            select(func.max(p.c.timestamp))
            .where(p.c.ticket_id == x.c.ticket_id, p.c.timestamp < x.c.timestamp)
            .scalar_subquery()
        )
        where = (
            x.c.seller_address == self.key["wallet_address"],
            x.c.timestamp < self.time(),
            previous.is_not(None),
        )
        held = self.epoch(x.c.timestamp) - self.epoch(previous)
        n = select(func.count()).select_from(x).where(*where).scalar_subquery()
        total = select(func.coalesce(func.sum(held), 0.0)).select_from(x).where(*where).scalar_subquery()
        return n, total

    def pairs(self) -> Any:
        x = self.tx.alias("x")
        w, s = self.key["wallet_address"], self.key["seller_address"]
        either = or_(
            and_(x.c.wallet_address == w, x.c.seller_address == s),
            and_(x.c.wallet_address == s, x.c.seller_address == w),
        )
        return (
            select(func.count()).select_from(x).where(either, x.c.timestamp < self.time()).scalar_subquery()
        )

    def known_fraud_counterparty(self) -> Any:
        x, lab = self.tx.alias("x"), self.labels.alias("l")
        s = self.key["seller_address"]
        return (
            select(func.count())
            .select_from(x.join(lab, lab.c.transaction_id == x.c.transaction_id))
            .where(
                or_(x.c.wallet_address == s, x.c.seller_address == s),
                lab.c.is_fraud == true(),
                lab.c.labelled_at < self.time(),
                x.c.timestamp < self.time(),
            )
            .scalar_subquery()
        )

    def blacklisted(self) -> Any:
        b = tables.blacklisted_wallets
        return (
            select(func.count())
            .where(
                b.c.wallet_address == self.key["seller_address"],
                b.c.timestamp < self.time(),
                or_(b.c.expires_at.is_(None), b.c.expires_at > self.time()),
            )
            .scalar_subquery()
        )

    def centrality(self) -> Any:
        snaps, scores = tables.wallet_graph_snapshots, tables.wallet_graph_scores
        latest = (
            select(func.max(snaps.c.snapshot_at)).where(snaps.c.snapshot_at <= self.time()).scalar_subquery()
        )
        return (
            select(scores.c.centrality)
            .where(scores.c.snapshot_at == latest, scores.c.wallet_address == self.key["wallet_address"])
            .scalar_subquery()
        )

    def event(self, column: str) -> Any:
        ev = tables.events
        # An event whose facts an import derived from its sales counts as unknown (issue 13, point-in-time).
        return (
            select(ev.c[column])
            .where(ev.c.event_id == self.key["event_id"], ev.c.facts_derived == false())
            .scalar_subquery()
        )


@lru_cache(maxsize=8)
def _statement(dialect: str, params: FeatureParams) -> _Statement:
    return _Statement(dialect, params)


def read_primitives(conn: Connection, txn: TransactionFacts, params: FeatureParams) -> dict[str, float]:
    """Every primitive `finish` needs for one transaction, from the database as it is now."""
    statement = _statement(conn.dialect.name, params)
    row = conn.execute(statement.select, statement.values(txn)).one()
    out = {name: _as_float(value) for name, value in row._mapping.items()}
    out["geo_max_km"] = _geo_max_km(conn, txn, params)
    return out


def _geo_max_km(conn: Connection, txn: TransactionFacts, params: FeatureParams) -> float:
    if txn.latitude is None or txn.longitude is None:
        return float("nan")
    x = tables.transactions
    rows = conn.execute(
        select(x.c.latitude, x.c.longitude).where(
            x.c.wallet_address == txn.wallet_address,
            x.c.timestamp >= txn.timestamp - params.geo_window,
            x.c.timestamp < txn.timestamp,
            x.c.latitude.is_not(None),
            x.c.longitude.is_not(None),
        )
    ).all()
    if not rows:
        return float("nan")
    lat = np.array([r[0] for r in rows], dtype=np.float64)
    lon = np.array([r[1] for r in rows], dtype=np.float64)
    here_lat = np.full(len(rows), txn.latitude)
    here_lon = np.full(len(rows), txn.longitude)
    return float(haversine_km(here_lat, here_lon, lat, lon).max())


# ------------------------------------------------------------------------------------------ blacklist
def read_blacklist(conn: Connection) -> pd.DataFrame:
    b = tables.blacklisted_wallets
    rows = conn.execute(select(b.c.wallet_address, b.c.timestamp, b.c.expires_at)).all()
    frame = pd.DataFrame(rows, columns=["wallet_address", "timestamp", "expires_at"])
    for column in ("timestamp", "expires_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


# ------------------------------------------------------------------------------------------ graph
def read_transfers_before(conn: Connection, cutoff: datetime) -> pd.DataFrame:
    """Resales (seller → buyer) strictly before ``cutoff``: the edges of that day's graph."""
    x = tables.transactions
    rows = conn.execute(
        select(x.c.timestamp, x.c.seller_address, x.c.wallet_address).where(
            x.c.seller_address.is_not(None), x.c.timestamp < cutoff
        )
    ).all()
    frame = pd.DataFrame(rows, columns=["timestamp", "seller_address", "wallet_address"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def replace_snapshot(
    conn: Connection,
    snapshot_at: datetime,
    wallets: Sequence[str],
    scores: np.ndarray,
    *,
    edges: int,
    iterations: int,
    damping: float,
) -> int:
    """Store (or replace) the snapshot of one day, in the caller's transaction."""
    snaps, table = tables.wallet_graph_snapshots, tables.wallet_graph_scores
    conn.execute(delete(snaps).where(snaps.c.snapshot_at == snapshot_at))
    conn.execute(
        snaps.insert().values(
            snapshot_at=snapshot_at,
            computed_at=datetime.now(UTC),
            nodes=len(wallets),
            edges=edges,
            iterations=iterations,
            damping=damping,
        )
    )
    if conn.dialect.name == "sqlite":
        # ON DELETE CASCADE needs foreign keys on, which make_engine sets; be explicit for other engines.
        conn.execute(delete(table).where(table.c.snapshot_at == snapshot_at))
    frame = pd.DataFrame(
        {"snapshot_at": pd.Timestamp(snapshot_at), "wallet_address": list(wallets), "centrality": scores}
    )
    frame["snapshot_at"] = pd.to_datetime(frame["snapshot_at"], utc=True)
    return bulk_insert(conn, table, frame)


def delete_snapshots_before(conn: Connection, cutoff: datetime) -> int:
    snaps, table = tables.wallet_graph_snapshots, tables.wallet_graph_scores
    conn.execute(delete(table).where(table.c.snapshot_at < cutoff))
    return int(conn.execute(delete(snaps).where(snaps.c.snapshot_at < cutoff)).rowcount or 0)


def latest_snapshot_at(conn: Connection) -> datetime | None:
    snaps = tables.wallet_graph_snapshots
    value = conn.execute(select(func.max(snaps.c.snapshot_at))).scalar()
    return value if isinstance(value, datetime) else None
