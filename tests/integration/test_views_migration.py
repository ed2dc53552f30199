"""Migration 0002 (data control) upgrades and downgrades cleanly on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from ticketguard.kit import migrate
from ticketguard.kit.db import make_engine

ADDED_TABLES = {
    "job_runs",
    "worker_locks",
    "data_quality_results",
    "admin_sessions",
    "admin_audit_log_archive",
}
VIEWS = {"event_analytics", "wallet_segments"}


def _relations(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        names = set(inspect(engine).get_table_names())
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                names |= set(conn.execute(text("SELECT matviewname FROM pg_matviews")).scalars())
        return names
    finally:
        engine.dispose()


def _round_trip(url: str) -> None:
    migrate.upgrade(url, "0002")
    assert _relations(url) >= ADDED_TABLES | VIEWS
    migrate.downgrade(url, "0001")
    remaining = _relations(url)
    assert not (ADDED_TABLES | VIEWS) & remaining
    assert {"transactions", "kpi_hourly"} <= remaining
    migrate.upgrade(url, "head")
    assert _relations(url) >= ADDED_TABLES | VIEWS


def test_data_control_migration_round_trip_on_sqlite(tmp_path: Path) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_data_control_migration_round_trip_on_postgres(empty_postgres_url: str) -> None:
    _round_trip(empty_postgres_url)
