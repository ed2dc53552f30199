"""The measurements behind the data-quality checks, and where their results are written."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, select

from ticketguard import tables
from ticketguard.quality.checks import CheckResult

# Columns every row must have for the scorer, the features and the reports to work. The schema already
# forbids nulls in wallet_address, event_id and timestamp; these are the ones it cannot forbid.
REQUIRED_TRANSACTION_COLUMNS = ("ticket_id", "payment_method", "status", "price_paid")
REQUIRED_PREDICTION_COLUMNS = ("fraud_score", "decision", "model_version")
# Chain transfers move a ticket without a sale: they legitimately have no price.
PRICELESS_PAYMENT_METHODS = ("transfer",)
NOT_HAPPENED_STATUSES = ("failed", "cancelled", "refunded", "reverted", "blocked")


def null_counts(conn: Connection, table_name: str, since: datetime) -> tuple[dict[str, int], int]:
    table = tables.metadata.tables[table_name]
    columns = REQUIRED_TRANSACTION_COLUMNS if table_name == "transactions" else REQUIRED_PREDICTION_COLUMNS
    measures = []
    for name in columns:
        condition: ColumnElement[bool] = table.c[name].is_(None)
        if table_name == "transactions" and name == "price_paid":
            condition = and_(
                condition, func.coalesce(table.c.payment_method, "").not_in(PRICELESS_PAYMENT_METHODS)
            )
        measures.append(func.coalesce(func.sum(case((condition, 1), else_=0)), 0).label(name))
    row = conn.execute(select(func.count().label("rows"), *measures).where(table.c.timestamp >= since)).one()
    return {name: int(row._mapping[name]) for name in columns}, int(row.rows)


def live_archive_overlap(conn: Connection, table_name: str, key: str) -> tuple[int, list[str]]:
    """Keys present in both a live table and its archive: a broken move or a re-import."""
    live = tables.metadata.tables[table_name]
    archive = tables.metadata.tables[f"{table_name}_archive"]
    joined = select(live.c[key]).join(archive, archive.c[key] == live.c[key])
    count = conn.execute(select(func.count()).select_from(joined.subquery())).scalar_one()
    examples = [str(v) for v in conn.execute(joined.limit(5)).scalars()] if count else []
    return int(count), examples


def duplicate_primary_sales(conn: Connection, since: datetime) -> tuple[int, list[str]]:
    """Tickets sold more than once on the primary market, for tickets with a recent primary sale."""
    t = tables.transactions
    happened = func.coalesce(t.c.status, "completed").not_in(NOT_HAPPENED_STATUSES)
    recent = (
        select(t.c.event_id, t.c.ticket_id)
        .where(t.c.timestamp >= since, t.c.is_resale.is_(False), t.c.ticket_id.is_not(None), happened)
        .distinct()
        .subquery()
    )
    dupes = (
        select(t.c.event_id, t.c.ticket_id, func.count().label("n"))
        .join(recent, and_(recent.c.event_id == t.c.event_id, recent.c.ticket_id == t.c.ticket_id))
        .where(t.c.is_resale.is_(False), happened)
        .group_by(t.c.event_id, t.c.ticket_id)
        .having(func.count() > 1)
    )
    rows = conn.execute(dupes.limit(1000)).all()
    return len(rows), [f"{r.event_id}/{r.ticket_id} ×{r.n}" for r in rows]


def duplicate_submissions(conn: Connection, since: datetime) -> tuple[int, list[str]]:
    """The same purchase under two transaction ids: same wallet, event, ticket, price and time."""
    t = tables.transactions
    key = (t.c.wallet_address, t.c.event_id, t.c.ticket_id, t.c.price_paid, t.c.timestamp)
    dupes = (
        select(*key, func.count().label("n"), func.min(t.c.transaction_id).label("first_id"))
        .where(t.c.timestamp >= since)
        .group_by(*key)
        .having(func.count() > 1)
    )
    rows = conn.execute(dupes.limit(1000)).all()
    return len(rows), [f"{r.first_id} ×{r.n}" for r in rows]


def newest_transaction(conn: Connection, now: datetime, tolerance: timedelta) -> datetime | None:
    t = tables.transactions
    # Rows dated in the future are reported by their own check; they must not make the feed look fresh.
    return conn.execute(select(func.max(t.c.timestamp)).where(t.c.timestamp <= now + tolerance)).scalar_one()


def future_transactions(conn: Connection, now: datetime, tolerance: timedelta) -> tuple[int, list[str]]:
    t = tables.transactions
    where = t.c.timestamp > now + tolerance
    count = conn.execute(select(func.count()).where(where)).scalar_one()
    examples = [str(v) for v in conn.execute(select(t.c.transaction_id).where(where).limit(5)).scalars()]
    return int(count), examples


def daily_counts(conn: Connection, now: datetime, days: int) -> list[int]:
    """Transactions per 24 h window back from ``now``: [last 24 h, the 24 h before, …] (days + 1 values)."""
    t = tables.transactions
    bounds = [now - timedelta(days=d) for d in range(days + 2)]
    measures = [
        func.coalesce(
            func.sum(case((and_(t.c.timestamp >= bounds[i + 1], t.c.timestamp < bounds[i]), 1), else_=0)), 0
        )
        for i in range(days + 1)
    ]
    row = conn.execute(select(*measures).where(t.c.timestamp >= bounds[-1], t.c.timestamp < now)).one()
    return [int(v) for v in row]


def record_results(conn: Connection, run_id: str, results: Sequence[CheckResult], now: datetime) -> None:
    conn.execute(
        tables.data_quality_results.insert(),
        [
            {
                "run_id": run_id,
                "check_name": r.check,
                "table_name": r.table,
                "status": r.status,
                "severity": r.severity,
                "observed": r.observed,
                "expected": r.expected,
                "message": r.message,
                "details": r.details or None,
                "checked_at": now,
            }
            for r in results
        ],
    )


def raise_alerts(conn: Connection, run_id: str, failed: Sequence[CheckResult], now: datetime) -> None:
    """One security event per failed check; the alert engine turns these into notifications."""
    if not failed:
        return
    conn.execute(
        tables.security_events.insert(),
        [
            {
                "event_type": "data_quality_failed",
                "severity": r.severity,
                "source_ip": None,
                "user_id": None,
                "metadata": {
                    "check": r.check,
                    "table": r.table,
                    "message": r.message,
                    "observed": r.observed,
                    "expected": r.expected,
                    "run_id": run_id,
                },
                "timestamp": now,
            }
            for r in failed
        ],
    )


def latest_results(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    r = tables.data_quality_results
    rows = conn.execute(select(r).order_by(r.c.checked_at.desc(), r.c.id).limit(limit)).mappings().all()
    return [dict(row) for row in rows]
