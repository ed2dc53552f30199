"""Refreshing the reporting views without blocking their readers.

PostgreSQL: ``REFRESH MATERIALIZED VIEW CONCURRENTLY`` (each view has the unique index that needs): the
new contents are computed beside the old and merged in, and readers keep reading the old rows meanwhile.
SQLite: the same query into a table of the same shape, DELETE + INSERT in one transaction; under WAL a
reader sees the old rows or the new, never an empty table, and never waits for the writer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from ticketguard.kit.db import SQLITE_TIMESTAMP_FORMAT
from ticketguard.views import queries

VIEW_NAMES: tuple[str, ...] = (
    "kpi_hourly",
    "event_analytics",
    "wallet_segments",
    "realised_hourly",  # operator console (issue 14): realised precision/recall
)

_SQLITE_QUERIES = {
    "kpi_hourly": queries.KPI_HOURLY,
    "event_analytics": queries.EVENT_ANALYTICS,
    "wallet_segments": queries.WALLET_SEGMENTS,
    "realised_hourly": queries.REALISED_HOURLY,
}


@dataclass(frozen=True)
class ViewRefresh:
    name: str
    rows: int
    seconds: float


def check_view_names(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    unknown = [name for name in names if name not in VIEW_NAMES]
    if unknown:
        raise ValueError(f"unknown view {', '.join(unknown)}; accepted: {', '.join(VIEW_NAMES)}")
    return tuple(names)


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(SQLITE_TIMESTAMP_FORMAT)


def refresh_view(
    conn: Connection, name: str, *, now: datetime | None = None, concurrently: bool = True
) -> int:
    """Recompute one view in the caller's transaction; returns its row count afterwards.

    ``now`` is the reference time of the SQLite queries; PostgreSQL's views use the transaction's ``now()``.
    ``concurrently=False`` on PostgreSQL takes an ACCESS EXCLUSIVE lock (readers wait) — only for tests
    and first population.
    """
    check_view_names([name])
    if conn.dialect.name == "postgresql":
        mode = "CONCURRENTLY " if concurrently else ""
        conn.execute(text(f"REFRESH MATERIALIZED VIEW {mode}{name}"))
    else:
        at = now or datetime.now(UTC)
        params = {
            "now": _sqlite_time(at),
            "since_7d": _sqlite_time(at - timedelta(days=7)),
            "since_8d": _sqlite_time(at - timedelta(days=8)),
            "since_30d": _sqlite_time(at - timedelta(days=30)),
            "since_365d": _sqlite_time(at - timedelta(days=365)),
        }
        conn.execute(text(f"DELETE FROM {name}"))  # noqa: S608 - name checked against VIEW_NAMES
        statement = text(_SQLITE_QUERIES[name])
        used = {key: value for key, value in params.items() if f":{key}" in _SQLITE_QUERIES[name]}
        conn.execute(statement, used)
    count = text(f"SELECT count(*) FROM {name}")  # noqa: S608 - name checked against VIEW_NAMES
    return int(conn.execute(count).scalar_one())


def refresh_kpi_hourly(conn: Connection, *, concurrently: bool = True) -> None:
    """Recompute kpi_hourly in the caller's transaction (kept for callers of the original helper)."""
    refresh_view(conn, "kpi_hourly", concurrently=concurrently)


def refresh_views(
    engine: Engine, names: tuple[str, ...] = VIEW_NAMES, *, now: datetime | None = None
) -> list[ViewRefresh]:
    """Refresh each view in a transaction of its own, so one slow view never holds the others back."""
    results: list[ViewRefresh] = []
    for name in check_view_names(names):
        started = time.perf_counter()
        with engine.begin() as conn:
            rows = refresh_view(conn, name, now=now)
        results.append(ViewRefresh(name=name, rows=rows, seconds=time.perf_counter() - started))
    return results
