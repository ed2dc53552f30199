"""Retention throughput on 1,000,000 transactions, PostgreSQL and SQLite (results: docs/data-control.md).

Builds a fresh migrated database per backend, loads the rows with `ticketguard.kit.db.bulk_insert` (COPY on
PostgreSQL), spread evenly over the last 365 days (so 75% are past the 90-day hot period), then times
`run_retention` moving them to the archive in batches, and the view refresh on the same data.

    .venv/bin/python benchmarks/bench_retention.py --rows 1000000 --backend both
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, make_url, text

from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.kit import migrate
from ticketguard.kit.db import bulk_insert, make_engine
from ticketguard.retention.policy import policy_from_settings
from ticketguard.retention.service import run_retention
from ticketguard.views import refresh_views

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def frames(rows: int, now: datetime, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n_events, n_wallets = 500, 100_000
    events = pd.DataFrame(
        {
            "event_id": [f"ev{i:04d}" for i in range(n_events)],
            "name": [f"event {i}" for i in range(n_events)],
            "organizer_id": "org",
            "capacity": 5000,
            "face_value": "80.00",
            "on_sale_at": pd.Timestamp(now - timedelta(days=400)),
            "starts_at": pd.Timestamp(now + timedelta(days=30)),
        }
    )
    age_us = rng.integers(0, 365 * 86_400 * 1_000_000, rows)
    timestamps = pd.to_datetime(int(now.timestamp() * 1_000_000) - age_us, unit="us", utc=True)
    resale = rng.random(rows) < 0.2
    price = np.round(80 * np.where(resale, rng.uniform(1.0, 2.5, rows), 1.0), 2)
    wallets = np.array([f"0x{i:040x}" for i in range(n_wallets)], dtype=object)
    transactions = pd.DataFrame(
        {
            "transaction_id": [f"bench-{i:09d}" for i in range(rows)],
            "wallet_address": wallets[rng.integers(0, n_wallets, rows)],
            "event_id": events["event_id"].to_numpy()[rng.integers(0, n_events, rows)],
            "ticket_id": [f"t{i}" for i in range(rows)],
            "price_paid": pd.Series(price).map("{:.2f}".format),
            "payment_method": "card",
            "is_resale": resale,
            "status": "completed",
            "timestamp": timestamps,
            "seller_address": np.where(resale, wallets[rng.integers(0, n_wallets, rows)], None),
            "ip_address": "198.51.100.1",
            "source": "simulator",
        }
    )
    return events, transactions


def bench(url: str, rows: int, batch: int) -> dict[str, float]:
    migrate.upgrade(url)
    engine = make_engine(url, statement_timeout_ms=3_600_000)
    now = datetime.now(UTC)
    events, transactions = frames(rows, now)
    started = time.perf_counter()
    with engine.begin() as conn:
        bulk_insert(conn, tables.events, events)
        bulk_insert(conn, tables.transactions, transactions)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE transactions"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    views_before = {r.name: r.seconds for r in refresh_views(engine)}
    views_s = time.perf_counter() - started

    policy = policy_from_settings(Settings(retention_batch_rows=batch))
    started = time.perf_counter()
    report = run_retention(engine, policy, now=now)
    retention_s = time.perf_counter() - started
    moved = report.counts()["transactions.archived"]
    with engine.connect() as conn:
        live = conn.execute(text("SELECT count(*) FROM transactions")).scalar_one()
        archived = conn.execute(text("SELECT count(*) FROM transactions_archive")).scalar_one()
    assert live + archived == rows, (live, archived)
    engine.dispose()
    return {
        "rows": rows,
        "load_s": load_s,
        "moved": moved,
        "retention_s": retention_s,
        "rows_per_s": moved / retention_s,
        "views_s": views_s,
        **{f"view_{k}_s": v for k, v in views_before.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()}")
    results: dict[str, dict[str, float]] = {}
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            results["SQLite"] = bench(f"sqlite:///{Path(tmp) / 'bench.db'}", args.rows, args.batch)
    if args.backend in ("postgres", "both"):
        name = f"tg_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
            results["PostgreSQL"] = bench(url, args.rows, args.batch)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(f"load after: {os.getloadavg()}")
    print(
        "| backend | rows | load (bulk_insert) | moved to archive | retention time | rows/s "
        "| views refresh (kpi / event / wallet) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for backend, r in results.items():
        print(
            f"| {backend} | {int(r['rows']):,} | {r['load_s']:.1f} s | {int(r['moved']):,} "
            f"| {r['retention_s']:.1f} s "
            f"| {r['rows_per_s']:,.0f} | {r['views_s']:.1f} s ({r['view_kpi_hourly_s']:.1f} / "
            f"{r['view_event_analytics_s']:.1f} / {r['view_wallet_segments_s']:.1f}) |"
        )


if __name__ == "__main__":
    main()
