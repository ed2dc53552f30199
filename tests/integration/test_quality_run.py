"""Data-quality runs on real SQLite and PostgreSQL: results recorded, a security event per failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import Engine, select

from ticketguard import tables
from ticketguard.kit.db import bulk_insert
from ticketguard.quality.service import QualityConfig, run_quality_checks

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CONFIG = QualityConfig(
    lookback=timedelta(hours=24),
    freshness_max_age=timedelta(hours=6),
    volume_tolerance=0.5,
    volume_baseline_days=7,
)


def _rows(n: int, start: datetime, prefix: str, step_minutes: int = 10, **extra: object) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "transaction_id": [f"{prefix}-{i}" for i in range(n)],
            "wallet_address": [f"0x{i:040x}" for i in range(n)],
            "event_id": "EV1",
            "ticket_id": [f"{prefix}-ticket-{i}" for i in range(n)],
            "price_paid": "10",
            "payment_method": "card",
            "is_resale": False,
            "status": "completed",
            "timestamp": [start + timedelta(minutes=step_minutes * i) for i in range(n)],
        }
    )
    for column, value in extra.items():
        frame[column] = value
    return frame


def _seed_healthy_week(engine: Engine) -> None:
    with engine.begin() as conn:
        for day in range(1, 8):
            bulk_insert(
                conn,
                tables.transactions,
                _rows(20, NOW - timedelta(days=day + 1) + timedelta(hours=1), f"d{day}"),
            )


def _results(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(tables.data_quality_results.c.check_name, tables.data_quality_results.c.status)
        )
        return dict(rows.all())


def test_a_healthy_feed_passes_every_check(engine: Engine) -> None:
    _seed_healthy_week(engine)
    with engine.begin() as conn:
        bulk_insert(conn, tables.transactions, _rows(20, NOW - timedelta(hours=20), "today", step_minutes=60))
    report = run_quality_checks(engine, CONFIG, now=NOW)
    assert report.failed == [], [r.message for r in report.failed]
    assert set(_results(engine).values()) == {"pass"}
    with engine.connect() as conn:
        assert conn.execute(select(tables.security_events)).all() == []


def test_broken_data_fails_the_right_checks_and_raises_security_events(engine: Engine) -> None:
    _seed_healthy_week(engine)
    with engine.begin() as conn:
        # Only 4 transactions today (usual: 20), the newest 8 hours ago; one has no ticket, one no price,
        # and one ticket was sold twice; one row is dated tomorrow; one was archived but is still live.
        today = _rows(4, NOW - timedelta(hours=9), "today")
        today.loc[0, "ticket_id"] = None
        today.loc[1, "price_paid"] = None
        today.loc[3, "ticket_id"] = today.loc[2, "ticket_id"]
        bulk_insert(conn, tables.transactions, today)
        bulk_insert(conn, tables.transactions, _rows(1, NOW + timedelta(days=1), "future"))
        bulk_insert(
            conn, tables.transactions_archive, _rows(1, NOW - timedelta(days=3) + timedelta(hours=1), "d2")
        )
        transfer = _rows(1, NOW - timedelta(hours=10), "transfer", payment_method="transfer", is_resale=True)
        transfer["price_paid"] = None
        bulk_insert(conn, tables.transactions, transfer)  # a transfer without a price is fine

    report = run_quality_checks(engine, CONFIG, now=NOW)

    assert _results(engine) == {
        "required_columns_transactions": "fail",
        "required_columns_fraud_predictions": "pass",
        "duplicate_archived_transactions": "fail",
        "duplicate_archived_fraud_predictions": "pass",
        "duplicate_primary_sale": "fail",
        "duplicate_submission": "pass",
        "freshness": "fail",
        "future_timestamps": "fail",
        "volume": "fail",
    }
    nulls = next(r for r in report.results if r.check == "required_columns_transactions")
    assert nulls.details["null_counts"] == {"ticket_id": 1, "price_paid": 1}
    with engine.connect() as conn:
        events = conn.execute(
            select(tables.security_events).where(tables.security_events.c.event_type == "data_quality_failed")
        ).all()
    assert sorted(e.metadata["check"] for e in events) == sorted(r.check for r in report.failed)
    assert {e.metadata["check"]: e.severity for e in events}["freshness"] == "high"
    assert all(e.metadata["run_id"] == report.run_id for e in events)
