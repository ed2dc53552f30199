"""import_file against real SQLite and PostgreSQL: exact values stored, and a failed import writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, insert, select

from ticketguard import tables
from ticketguard.ingest import ImportValidationError, import_file, write_quarantine
from ticketguard.ingest import repository as ingest_repository

NOW = datetime(2026, 3, 1, tzinfo=UTC)
COUNTED = (tables.transactions, tables.fraud_labels, tables.events)


def make_rows(n: int, prefix: str = "tx") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": [f"{prefix}-{i}" for i in range(n)],
            "wallet_address": [f"0x{i + 1:040X}" for i in range(n)],
            "event_id": [f"{prefix}-ev-{i % 2}" for i in range(n)],
            "ticket_id": [f"tk-{i}" for i in range(n)],
            "price_paid": ["1234567.12345678"] + [f"{10 + i}.25" for i in range(1, n)],
            "timestamp": [f"2026-01-{5 + i % 20:02d}T10:00:00+01:00" for i in range(n)],
            "is_fraud": ["yes" if i % 4 == 0 else "no" for i in range(n)],
            "pattern": ["scalper_bot" if i % 4 == 0 else "" for i in range(n)],
        }
    )


def csv_file(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in COUNTED}


def test_import_stores_exact_values(engine: Engine, tmp_path: Path) -> None:
    path = csv_file(make_rows(6), tmp_path / "h.csv")
    with engine.begin() as conn:
        report = import_file(conn, path, now=NOW)
    assert (report.rows_read, report.transactions_written, report.labels_written) == (6, 6, 6)
    assert (report.events_written, report.fraud_count, report.rows_rejected) == (2, 2, 0)
    assert counts(engine) == {"transactions": 6, "fraud_labels": 6, "events": 2}
    with engine.connect() as conn:
        tx = conn.execute(
            select(tables.transactions).where(tables.transactions.c.transaction_id == "tx-0")
        ).one()
        label = conn.execute(
            select(tables.fraud_labels).where(tables.fraud_labels.c.transaction_id == "tx-0")
        ).one()
        event = conn.execute(select(tables.events).where(tables.events.c.event_id == "tx-ev-0")).one()
    assert tx.price_paid == Decimal("1234567.12345678")
    assert tx.wallet_address == f"0x{1:040x}"
    assert tx.timestamp == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert tx.source == "import"
    assert tx.is_resale is False
    assert (label.is_fraud, label.pattern, label.source) == (True, "scalper_bot", "import")
    assert label.labelled_at == datetime(2026, 1, 12, 9, 0, tzinfo=UTC)  # + the default 7 days
    assert (event.name, event.organizer_id, event.capacity) == ("tx-ev-0", "unknown", 3)


def test_one_bad_row_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        import_file(conn, csv_file(make_rows(4, "old"), tmp_path / "old.csv"), now=NOW)
    before = counts(engine)
    rows = make_rows(50)
    rows.loc[47, "timestamp"] = "2026-13-01T00:00:00Z"
    with pytest.raises(ImportValidationError) as caught, engine.begin() as conn:
        import_file(conn, csv_file(rows, tmp_path / "h.csv"), now=NOW)
    assert [str(p) for p in caught.value.problems] == [
        "row 49, column 'timestamp': must be an ISO 8601 timestamp like 2026-01-05T18:30:00Z or "
        "2026-01-05T20:30:00+02:00, got '2026-13-01T00:00:00Z'"
    ]
    assert counts(engine) == before


def test_ids_already_in_the_database_are_refused_by_row(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        import_file(conn, csv_file(make_rows(3), tmp_path / "first.csv"), now=NOW)
        conn.execute(
            insert(tables.fraud_labels).values(
                transaction_id="labelled-only", is_fraud=True, source="review", labelled_at=NOW
            )
        )
    before = counts(engine)
    again = make_rows(5, "new")
    again.loc[1, "transaction_id"] = "tx-2"
    again.loc[3, "transaction_id"] = "labelled-only"
    with pytest.raises(ImportValidationError) as caught, engine.begin() as conn:
        import_file(conn, csv_file(again, tmp_path / "again.csv"), now=NOW)
    assert [str(p) for p in caught.value.problems] == [
        "row 3, column 'transaction_id': is already in the database (table transactions), got 'tx-2'",
        "row 5, column 'transaction_id': is already in the database (table fraud_labels), "
        "got 'labelled-only'",
    ]
    assert counts(engine) == before


def test_a_failure_inside_the_database_write_rolls_everything_back(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a clashing id slips past the pre-check (another writer), the events already sent are undone too."""
    with engine.begin() as conn:
        import_file(conn, csv_file(make_rows(3), tmp_path / "first.csv"), now=NOW)
    before = counts(engine)
    monkeypatch.setattr(ingest_repository, "existing_transaction_ids", lambda _conn, _ids: {})
    clashing = make_rows(5, "new")
    clashing.loc[4, "transaction_id"] = "tx-1"
    with (
        pytest.raises(ImportValidationError, match="another writer stored some of these"),
        engine.begin() as conn,
    ):
        import_file(conn, csv_file(clashing, tmp_path / "clash.csv"), now=NOW)
    assert counts(engine) == before


def test_quarantine_writes_the_good_rows_and_reports_the_bad(engine: Engine, tmp_path: Path) -> None:
    rows = make_rows(6)
    rows.loc[1, "price_paid"] = "-3"
    rows.loc[1, "is_fraud"] = "perhaps"
    rows.loc[4, "wallet_address"] = "0xnope"
    with engine.begin() as conn:
        report = import_file(conn, csv_file(rows, tmp_path / "h.csv"), quarantine=True, now=NOW)
    assert (report.rows_read, report.transactions_written, report.rows_rejected, report.problem_count) == (
        6,
        4,
        2,
        3,
    )
    assert counts(engine)["transactions"] == 4
    with engine.connect() as conn:
        stored = set(conn.execute(select(tables.transactions.c.transaction_id)).scalars())
    assert stored == {"tx-0", "tx-2", "tx-3", "tx-5"}

    rejected = pd.read_csv(
        write_quarantine(report, tmp_path / "rejected.csv"), dtype=str, keep_default_na=False
    )
    assert rejected["row"].tolist() == ["3", "6"]
    assert rejected.loc[0, "errors"].startswith("column 'price_paid': must be a decimal >= 0")
    assert "; column 'is_fraud': must be a boolean" in rejected.loc[0, "errors"]
    assert rejected.loc[1, "wallet_address"] == "0xnope"
    assert list(rejected.columns) == ["row", "errors", *make_rows(1).columns]


def test_dry_run_checks_everything_and_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    with engine.connect() as conn:
        report = import_file(conn, csv_file(make_rows(5), tmp_path / "h.csv"), dry_run=True, now=NOW)
        conn.commit()
    assert (report.rows_accepted, report.events_new, report.transactions_written) == (5, 2, 0)
    assert counts(engine) == {"transactions": 0, "fraud_labels": 0, "events": 0}


def test_events_already_stored_are_kept_as_they_are(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(tables.events).values(
                event_id="tx-ev-0",
                name="Known Gala",
                organizer_id="org-1",
                capacity=900,
                face_value=Decimal("50"),
                on_sale_at=datetime(2025, 12, 1, tzinfo=UTC),
                starts_at=datetime(2026, 2, 1, tzinfo=UTC),
            )
        )
    rows = make_rows(4)
    rows["event_capacity"] = "10"
    with engine.begin() as conn:
        report = import_file(conn, csv_file(rows, tmp_path / "h.csv"), now=NOW)
    assert (report.events_existing, report.events_written) == (1, 1)
    assert report.notes == [
        "1 event(s) were already in the database and kept their stored details; "
        "the file's event_capacity for them were not used"
    ]
    with engine.connect() as conn:
        capacities = dict(conn.execute(select(tables.events.c.event_id, tables.events.c.capacity)).all())
    assert capacities == {"tx-ev-0": 900, "tx-ev-1": 10}


def test_parquet_import_reaches_the_database(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "h.parquet"
    make_rows(8).to_parquet(path, index=False)
    with engine.begin() as conn:
        report = import_file(conn, path, now=NOW)
    assert (report.file_format, report.transactions_written) == ("parquet", 8)
    assert counts(engine)["fraud_labels"] == 8
