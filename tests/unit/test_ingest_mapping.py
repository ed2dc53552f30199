"""Column mapping: a platform's own column names work; every mapping mistake says what is accepted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from ticketguard.ingest import ImportValidationError, load_mapping_file, parse_map_options, read_labelled_file

NOW = datetime(2026, 3, 1, tzinfo=UTC)

THEIR_NAMES = {
    "OrderRef": "transaction_id",
    "Buyer Wallet": "wallet_address",
    "Show": "event_id",
    "Amount": "price_paid",
    "Created": "timestamp",
    "Chargeback": "is_fraud",
}


def their_file(tmp_path: Path, n: int = 4) -> Path:
    """A platform export whose columns are all named differently from ours."""
    frame = pd.DataFrame(
        {
            "OrderRef": [f"o-{i}" for i in range(n)],
            "Buyer Wallet": [f"0x{i + 1:040X}" for i in range(n)],
            "Show": ["show-1"] * n,
            "Amount": [f"{20 + i}" for i in range(n)],
            "Created": [f"2026-01-10T1{i}:00:00+01:00" for i in range(n)],
            "Chargeback": ["Y" if i == 1 else "N" for i in range(n)],
            "Internal Note": ["x"] * n,
        }
    )
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    return path


def messages(error: pytest.ExceptionInfo[ImportValidationError]) -> list[str]:
    return [str(p) for p in error.value.problems]


def test_differently_named_columns_load_through_a_mapping(tmp_path: Path) -> None:
    history = read_labelled_file(their_file(tmp_path), THEIR_NAMES, now=NOW)
    assert history.transactions["transaction_id"].tolist() == ["o-0", "o-1", "o-2", "o-3"]
    assert history.transactions.loc[0, "wallet_address"] == f"0x{1:040x}"
    assert history.transactions.loc[0, "timestamp"] == pd.Timestamp("2026-01-10T09:00:00Z")
    assert history.labels["is_fraud"].tolist() == [False, True, False, False]
    assert history.events["event_id"].tolist() == ["show-1"]


def test_a_bad_value_in_a_mapped_column_names_the_files_column(tmp_path: Path) -> None:
    path = their_file(tmp_path)
    frame = pd.read_csv(path, dtype=str)
    frame.loc[2, "Amount"] = "-5"
    frame.to_csv(path, index=False)
    with pytest.raises(ImportValidationError) as caught:
        read_labelled_file(path, THEIR_NAMES, now=NOW)
    assert messages(caught)[0].startswith(
        "row 4, column 'Amount' (mapped to price_paid): must be a decimal >= 0"
    )


def test_without_the_mapping_the_missing_columns_are_listed_with_hints(tmp_path: Path) -> None:
    with pytest.raises(ImportValidationError) as caught:
        read_labelled_file(their_file(tmp_path), None, now=NOW)
    (message,) = messages(caught)
    assert message.startswith("missing required column(s) 'transaction_id', 'wallet_address'")
    assert "'is_fraud'" in message
    assert "the file has 'OrderRef', 'Buyer Wallet'" in message
    assert "--map THEIR_COLUMN=transaction_id" in message
    assert (
        "accepted: required transaction_id, wallet_address, event_id, price_paid, timestamp, is_fraud"
        in message
    )


def test_mapping_mistakes_are_all_reported_at_once(tmp_path: Path) -> None:
    mapping = {**THEIR_NAMES, "Amount": "prize_paid", "Ammount": "price_paid"}
    with pytest.raises(ImportValidationError) as caught:
        read_labelled_file(their_file(tmp_path), mapping, now=NOW)
    found = messages(caught)
    assert any(
        m.startswith(
            "mapping Amount=prize_paid: 'prize_paid' is not a column ticketguard imports "
            "(did you mean 'price_paid'?); accepted: required"
        )
        for m in found
    ), found
    assert any(
        m.startswith("mapping Ammount=price_paid: the file has no column 'Ammount' (did you mean 'Amount'?)")
        for m in found
    ), found
    assert any(m.startswith("missing required column(s) 'price_paid'") for m in found), found


def test_two_columns_filling_one_target_are_refused(tmp_path: Path) -> None:
    path = their_file(tmp_path)
    frame = pd.read_csv(path, dtype=str)
    frame["price_paid"] = frame["Amount"]
    frame.to_csv(path, index=False)
    with pytest.raises(ImportValidationError) as caught:
        read_labelled_file(path, THEIR_NAMES, now=NOW)
    assert messages(caught) == [
        "columns 'Amount' and 'price_paid' would both fill 'price_paid'; map only one of them "
        "(or map the other to a different column)"
    ]


def test_map_options_parse_and_refuse_malformed_items() -> None:
    assert parse_map_options(["Amount=price_paid", " Show = event_id "]) == {
        "Amount": "price_paid",
        "Show": "event_id",
    }
    with pytest.raises(ImportValidationError) as caught:
        parse_map_options(["Amount", "=event_id", "A=x", "A=y"])
    assert messages(caught) == [
        "--map 'Amount': must be THEIR_COLUMN=OUR_COLUMN, e.g. amount=price_paid",
        "--map '=event_id': must be THEIR_COLUMN=OUR_COLUMN, e.g. amount=price_paid",
        "--map 'A=y': 'A' is already mapped to 'x'",
    ]


def test_mapping_file_is_read_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("".join(f"{theirs!r}: {ours}\n" for theirs, ours in THEIR_NAMES.items()))
    assert load_mapping_file(path) == THEIR_NAMES
    assert len(read_labelled_file(their_file(tmp_path), load_mapping_file(path), now=NOW)) == 4


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("- a\n- b\n", "must be a YAML mapping of their column to ours"),
        ("a: [b]\n", "entry 'a': ['b']: both sides must be column names (text)"),
        ("a: b: c\n", "cannot be read as YAML"),
    ],
)
def test_a_bad_mapping_file_is_refused(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(content)
    with pytest.raises(ImportValidationError) as caught:
        load_mapping_file(path)
    assert expected in messages(caught)[0]
    assert str(path) in str(caught.value)


def test_a_missing_mapping_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ImportValidationError, match=r"mapping file .*nope\.yaml: 1 problem, nothing"):
        load_mapping_file(tmp_path / "nope.yaml")
