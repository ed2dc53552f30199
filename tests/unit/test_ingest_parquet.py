"""Parquet imports: native column types are read as their values, with the same rules as CSV text."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ticketguard.ingest import ImportValidationError, read_labelled_file

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def typed_table(n: int = 4, *, tz: str | None = "UTC") -> pa.Table:
    return pa.table(
        {
            "transaction_id": pa.array([f"tx-{i}" for i in range(n)]),
            "wallet_address": pa.array([f"0x{i:040x}" for i in range(n)]),
            "event_id": pa.array(["ev-a"] * n),
            "ticket_id": pa.array([100 + i if i != 2 else None for i in range(n)], type=pa.int64()),
            "price_paid": pa.array([12.5 + i for i in range(n)], type=pa.float64()),
            "timestamp": pa.array(
                [datetime(2026, 1, 5, 10, i) for i in range(n)], type=pa.timestamp("us", tz=tz)
            ),
            "is_fraud": pa.array([i == 1 for i in range(n)]),
            "is_resale": pa.array([False, True, None, False][:n]),
            "latitude": pa.array([52.52] * n),
        }
    )


def write(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path


def test_typed_parquet_loads(tmp_path: Path) -> None:
    history = read_labelled_file(write(typed_table(), tmp_path / "h.parquet"), now=NOW)
    tx = history.transactions
    assert tx["ticket_id"].tolist() == ["100", "101", None, "103"]
    assert tx["price_paid"].tolist() == [12.5, 13.5, 14.5, 15.5]
    assert tx["timestamp"].tolist()[1] == pd.Timestamp("2026-01-05T10:01:00Z")
    assert tx["is_resale"].tolist() == [False, True, False, False]
    assert tx["latitude"].tolist() == [52.52] * 4
    assert history.labels["is_fraud"].tolist() == [False, True, False, False]


def test_parquet_and_csv_of_the_same_rows_give_the_same_history(tmp_path: Path) -> None:
    table = typed_table()
    from_parquet = read_labelled_file(write(table, tmp_path / "h.parquet"), now=NOW)
    frame = table.to_pandas()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["ticket_id"] = frame["ticket_id"].astype("Int64")
    frame.to_csv(tmp_path / "h.csv", index=False)
    from_csv = read_labelled_file(tmp_path / "h.csv", now=NOW)
    pd.testing.assert_frame_equal(from_parquet.transactions, from_csv.transactions)
    pd.testing.assert_frame_equal(from_parquet.labels, from_csv.labels)
    pd.testing.assert_frame_equal(from_parquet.events, from_csv.events)


def test_parquet_timestamps_without_a_timezone_need_one(tmp_path: Path) -> None:
    path = write(typed_table(2, tz=None), tmp_path / "h.parquet")
    with pytest.raises(ImportValidationError) as caught:
        read_labelled_file(path, now=NOW)
    assert [str(p) for p in caught.value.problems] == [
        f"row {row}, column 'timestamp': is a timestamp without a timezone; store it with one or set the "
        f"import timezone (--timezone), got '2026-01-05 10:0{row - 2}:00'"
        for row in (2, 3)
    ]
    local = read_labelled_file(path, now=NOW, timezone="America/New_York")
    assert local.transactions.loc[0, "timestamp"] == pd.Timestamp("2026-01-05T15:00:00Z")


def test_a_parquet_value_breaking_a_rule_is_named_by_row_and_column(tmp_path: Path) -> None:
    table = typed_table()
    prices = pa.array([1.0, 2.0, -0.5, 3.0])
    path = write(
        table.set_column(table.schema.get_field_index("price_paid"), "price_paid", prices),
        tmp_path / "h.parquet",
    )
    with pytest.raises(ImportValidationError) as caught:
        read_labelled_file(path, now=NOW)
    (problem,) = caught.value.problems
    assert str(problem).startswith("row 4, column 'price_paid': must be a decimal >= 0")
    assert str(problem).endswith("got '-0.5'")


def test_parquet_float_noise_is_rounded_not_refused(tmp_path: Path) -> None:
    table = typed_table()
    prices = pa.array([85.64999999999999, 2.0, 0.1 + 0.2, 0.0])
    path = write(
        table.set_column(table.schema.get_field_index("price_paid"), "price_paid", prices),
        tmp_path / "h.parquet",
    )
    notes: list[str] = []
    read = read_labelled_file(path, now=NOW, notes=notes).transactions["price_paid"]
    assert read.tolist() == [85.65, 2.0, 0.3, 0.0]
    assert len(notes) == 1
    assert notes[0].startswith("2 amount(s) had more than 8 decimal places")


def test_parquet_decimals_are_read_exactly(tmp_path: Path) -> None:
    table = typed_table(2)
    prices = pa.array([Decimal("1234567.12345678"), Decimal("0.10000000")], type=pa.decimal128(18, 8))
    path = write(
        table.set_column(table.schema.get_field_index("price_paid"), "price_paid", prices),
        tmp_path / "h.parquet",
    )
    prices_read = read_labelled_file(path, now=NOW).transactions["price_paid"]
    assert [f"{p:.8f}" for p in prices_read] == ["1234567.12345678", "0.10000000"]


def test_nested_parquet_columns_are_refused(tmp_path: Path) -> None:
    table = typed_table(2).append_column("country", pa.array([["DE"], ["FR"]]))
    with pytest.raises(ImportValidationError) as caught:
        read_labelled_file(write(table, tmp_path / "h.parquet"), now=NOW)
    message = str(caught.value.problems[0])
    assert message.startswith("column 'country' has Parquet type list<")
    assert message.endswith("; accepted: text, number, boolean, timestamp")


def test_a_file_that_is_not_parquet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.parquet"
    path.write_text("transaction_id\n1\n")
    with pytest.raises(ImportValidationError) as caught:
        read_labelled_file(path, now=NOW)
    assert str(caught.value.problems[0]).startswith("is not a readable Parquet file")
