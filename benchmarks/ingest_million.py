"""How long `ticketguard import` takes on a large labelled file (results recorded in docs/import.md).

    .venv/bin/python benchmarks/ingest_million.py [--rows 1000000] [--postgres-url URL]

Makes a labelled CSV and Parquet file of --rows transactions, then times: checking alone
(`read_labelled_file`, CSV and Parquet), a full import into a fresh SQLite and PostgreSQL database,
and a refused import (one bad row at the very end: everything is checked, nothing written).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, func, make_url, select, text

from ticketguard import tables
from ticketguard.ingest import ImportValidationError, import_file, read_labelled_file
from ticketguard.kit import migrate
from ticketguard.kit.db import make_engine

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def labelled_frame(rows: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-01-05T00:00:00", "s")
    seconds = np.sort(rng.integers(0, 120 * 86_400, rows))
    stamps = pd.to_datetime(start + seconds.astype("timedelta64[s]")).strftime("%Y-%m-%dT%H:%M:%SZ")
    wallets = rng.integers(0, rows // 5 + 1, rows)
    events = rng.integers(0, 2_000, rows)
    return pd.DataFrame(
        {
            "transaction_id": [f"bench-{i}" for i in range(rows)],
            "wallet_address": [f"0x{w:040x}" for w in wallets],
            "event_id": [f"ev-{e}" for e in events],
            "ticket_id": [f"tk-{i}" for i in range(rows)],
            "price_paid": np.char.mod("%.2f", rng.uniform(5, 500, rows).round(2)),
            "payment_method": rng.choice(["card", "crypto", "apple_pay"], rows),
            "is_resale": np.where(rng.random(rows) < 0.15, "true", "false"),
            "timestamp": stamps,
            "ip_address": [f"10.{a}.{b}.{c}" for a, b, c in rng.integers(0, 250, (rows, 3))],
            "country": rng.choice(["DE", "FR", "US", "GB", "NL"], rows),
            "is_fraud": np.where(rng.random(rows) < 0.012, "1", "0"),
        }
    )


Results = list[tuple[str, float, str]]


def timed(label: str, results: Results, fn: Callable[[], object], note: str = "") -> object:
    began = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - began
    results.append((label, seconds, note))
    print(f"{label}: {seconds:.1f} s {note}", flush=True)
    return value


def count(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(tables.transactions)).scalar_one()
    engine.dispose()
    return int(n)


def import_into(url: str, path: Path) -> int:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            report = import_file(conn, path, now=NOW)
    finally:
        engine.dispose()
    return report.transactions_written


def refused_import(url: str, path: Path) -> str:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            import_file(conn, path, now=NOW)
    except ImportValidationError as exc:
        return str(exc.problems[0])
    finally:
        engine.dispose()
    raise AssertionError("the bad file was accepted")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}", flush=True)
    results: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        frame = labelled_frame(args.rows)
        csv_path, parquet_path, bad_path = work / "h.csv", work / "h.parquet", work / "bad.csv"
        frame.to_csv(csv_path, index=False)
        frame.to_parquet(parquet_path, index=False)
        frame.loc[len(frame) - 1, "price_paid"] = "-5"
        frame.to_csv(bad_path, index=False)
        size = csv_path.stat().st_size / 1e6

        timed("check only, CSV", results, lambda: read_labelled_file(csv_path, now=NOW), f"({size:.0f} MB)")
        timed("check only, Parquet", results, lambda: read_labelled_file(parquet_path, now=NOW))

        sqlite_url = f"sqlite:///{work / 'bench.db'}"
        migrate.upgrade(sqlite_url)
        timed("import into SQLite", results, lambda: import_into(sqlite_url, csv_path))
        assert count(sqlite_url) == args.rows
        sqlite_bad = f"sqlite:///{work / 'bad.db'}"
        migrate.upgrade(sqlite_bad)
        message = timed("refused import, SQLite", results, lambda: refused_import(sqlite_bad, bad_path))
        assert count(sqlite_bad) == 0, "a refused import wrote rows"
        print(f"  {message}")

        admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
        name = f"tg_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        pg_url = make_url(args.postgres_url).set(database=name).render_as_string(hide_password=False)
        try:
            migrate.upgrade(pg_url)
            timed("import into PostgreSQL", results, lambda: import_into(pg_url, csv_path))
            assert count(pg_url) == args.rows
            with make_engine(pg_url).begin() as conn:
                conn.execute(text("TRUNCATE transactions, fraud_labels, events"))
            timed("refused import, PostgreSQL", results, lambda: refused_import(pg_url, bad_path))
            assert count(pg_url) == 0, "a refused import wrote rows"
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(f"load after: {os.getloadavg()}")
    print(f"\n| {args.rows:,} rows | seconds | rows/s |\n| --- | ---: | ---: |")
    for label, seconds, note in results:
        print(f"| {label} {note} | {seconds:.1f} | {args.rows / seconds:,.0f} |")


if __name__ == "__main__":
    main()
