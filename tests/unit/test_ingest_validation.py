"""read_labelled_file: every kind of bad value is refused with its row and column named; good files load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from ticketguard.history import EVENT_COLUMNS, LABEL_COLUMNS, TRANSACTION_COLUMNS
from ticketguard.ingest import ImportValidationError, read_labelled_file
from ticketguard.wallets import is_canonical, opaque_wallet

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def make_rows(n: int = 5, **overrides: list[str]) -> pd.DataFrame:
    """n valid rows as a platform would export them (all text); `column=[values]` replaces a column."""
    rows = pd.DataFrame(
        {
            "transaction_id": [f"tx-{i}" for i in range(n)],
            "wallet_address": [f"0x{i:040x}" for i in range(n)],
            "event_id": ["ev-a" if i % 2 == 0 else "ev-b" for i in range(n)],
            "ticket_id": [f"tk-{i}" for i in range(n)],
            "price_paid": [f"{10 + i}.50" for i in range(n)],
            "timestamp": [f"2026-01-{5 + i % 20:02d}T10:{i % 60:02d}:00Z" for i in range(n)],
            "is_fraud": ["true" if i % 3 == 0 else "false" for i in range(n)],
            "ip_address": [f"10.0.0.{i % 250}" for i in range(n)],
            "country": ["DE"] * n,
        }
    )
    for column, values in overrides.items():
        rows[column] = values
    return rows


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def problems_of(path: Path, mapping: dict[str, str] | None = None, **kwargs: object) -> list[str]:
    kwargs.setdefault("now", NOW)
    with pytest.raises(ImportValidationError) as caught:
        read_labelled_file(path, mapping, **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


def test_valid_file_loads_into_history_frames(tmp_path: Path) -> None:
    rows = make_rows(4)
    rows.loc[0, "wallet_address"] = "0xABCDEF0123456789ABCDEF0123456789ABCDEF01"
    rows.loc[1, "country"] = "fr"
    rows.loc[2, "ip_address"] = "2001:DB8:0:0::1"
    history = read_labelled_file(write_csv(rows, tmp_path / "h.csv"), now=NOW)

    assert list(history.transactions.columns) == list(TRANSACTION_COLUMNS)
    assert list(history.labels.columns) == list(LABEL_COLUMNS)
    assert list(history.events.columns) == list(EVENT_COLUMNS)
    tx = history.transactions
    assert tx["transaction_id"].tolist() == ["tx-0", "tx-1", "tx-2", "tx-3"]
    assert tx.loc[0, "wallet_address"] == "0xabcdef0123456789abcdef0123456789abcdef01"
    assert tx.loc[1, "country"] == "FR"
    assert tx.loc[2, "ip_address"] == "2001:db8::1"
    assert set(tx["source"]) == {"import"}
    assert not tx["is_resale"].any()
    assert str(tx["timestamp"].dtype) == "datetime64[us, UTC]"
    assert history.labels["is_fraud"].tolist() == [True, False, False, True]


def test_labelled_at_defaults_to_timestamp_plus_delay_but_never_after_the_import(tmp_path: Path) -> None:
    rows = make_rows(2, timestamp=["2026-01-05T10:00:00Z", "2026-02-25T10:00:00Z"])
    labels = read_labelled_file(write_csv(rows, tmp_path / "h.csv"), now=NOW).labels
    assert labels.loc[0, "labelled_at"] == pd.Timestamp("2026-01-12T10:00:00Z")  # + 7 days (issue 13)
    assert labels.loc[1, "labelled_at"] == pd.Timestamp(NOW)  # + 7 days would be after the import

    short = read_labelled_file(tmp_path / "h.csv", now=NOW, label_delay=timedelta(days=2)).labels
    assert short.loc[0, "labelled_at"] == pd.Timestamp("2026-01-07T10:00:00Z")


def test_given_labelled_at_is_kept(tmp_path: Path) -> None:
    rows = make_rows(2)
    rows["labelled_at"] = ["2026-02-01T00:00:00Z", ""]
    labels = read_labelled_file(write_csv(rows, tmp_path / "h.csv"), now=NOW).labels
    assert labels.loc[0, "labelled_at"] == pd.Timestamp("2026-02-01T00:00:00Z")
    assert labels.loc[1, "labelled_at"] == pd.Timestamp("2026-01-06T10:01:00Z") + timedelta(days=7)


def test_price_survives_at_eight_decimals(tmp_path: Path) -> None:
    rows = make_rows(3, price_paid=["1234567.12345678", "0.00000001", "9999999.99999999"])
    prices = read_labelled_file(write_csv(rows, tmp_path / "h.csv"), now=NOW).transactions["price_paid"]
    assert [f"{p:.8f}" for p in prices] == ["1234567.12345678", "0.00000001", "9999999.99999999"]
    assert Decimal(f"{prices[0]:.8f}") == Decimal("1234567.12345678")


def test_events_are_derived_from_the_sales_when_the_file_has_none(tmp_path: Path) -> None:
    rows = make_rows(
        4,
        event_id=["ev-a"] * 4,
        price_paid=["10", "20", "30", "500"],
        ticket_id=["t1", "t2", "t3", "t1"],
        timestamp=[
            "2026-01-05T10:00:00Z",
            "2026-01-06T10:00:00Z",
            "2026-01-07T10:00:00Z",
            "2026-01-09T10:00:00Z",
        ],
    )
    rows["is_resale"] = ["false", "false", "false", "true"]
    events = read_labelled_file(write_csv(rows, tmp_path / "h.csv"), now=NOW).events
    assert len(events) == 1
    event = events.iloc[0]
    assert event["event_id"] == "ev-a"
    assert event["name"] == "ev-a"
    assert event["organizer_id"] == "unknown"
    assert event["capacity"] == 3  # distinct tickets seen
    assert event["face_value"] == 20.0  # median primary price; the resale at 500 is not a face value
    assert event["on_sale_at"] == pd.Timestamp("2026-01-05T10:00:00Z")
    assert event["starts_at"] == pd.Timestamp("2026-01-09T11:00:00Z")  # last sale + 1 h


def test_event_columns_in_the_file_are_used(tmp_path: Path) -> None:
    rows = make_rows(2, event_id=["ev-a", "ev-a"])
    rows["event_capacity"] = ["5000", ""]
    rows["event_face_value"] = ["", "45.00"]
    rows["event_starts_at"] = ["2026-04-01T19:00:00Z", "2026-04-01T19:00:00Z"]
    rows["event_name"] = ["Spring Gala", "Spring Gala"]
    event = read_labelled_file(write_csv(rows, tmp_path / "h.csv"), now=NOW).events.iloc[0]
    assert (event["name"], event["capacity"], event["face_value"]) == ("Spring Gala", 5000, 45.0)
    assert event["starts_at"] == pd.Timestamp("2026-04-01T19:00:00Z")
    assert event["on_sale_at"] == pd.Timestamp("2026-01-05T10:00:00Z")  # first sale: not in the file


def test_zero_price_is_a_free_ticket_not_an_error(tmp_path: Path) -> None:
    rows = make_rows(4, price_paid=["0", "0.00", "12.50", "0.0"])
    history = read_labelled_file(write_csv(rows, tmp_path / "h.csv"), now=NOW)
    assert history.transactions["price_paid"].tolist() == [0.0, 0.0, 12.5, 0.0]
    assert len(history.labels) == 4


def test_float_noise_is_rounded_to_8_decimals_and_counted(tmp_path: Path) -> None:
    # Issue 13: exports written from floats carry noise; such amounts are rounded, never refused or dropped.
    rows = make_rows(5, price_paid=["85.64999999999999", "12.50", "0.30000000000000004", "1.123456789", "7"])
    rows["event_face_value"] = ["19.999999999999996", "", "19.999999999999996", "", "19.999999999999996"]
    notes: list[str] = []
    history = read_labelled_file(write_csv(rows, tmp_path / "h.csv"), now=NOW, notes=notes)
    prices = history.transactions["price_paid"].tolist()
    assert [f"{p:.8f}" for p in prices] == [
        "85.65000000",
        "12.50000000",
        "0.30000000",
        "1.12345679",
        "7.00000000",
    ]
    assert history.events.set_index("event_id").loc["ev-a", "face_value"] == 20.0
    assert notes == [
        "6 amount(s) had more than 8 decimal places (float noise such as 85.64999999999999) and were rounded "
        "to 8: 'price_paid' 3, 'event_face_value' 3"
    ]
    clean: list[str] = []
    read_labelled_file(write_csv(make_rows(3), tmp_path / "clean.csv"), now=NOW, notes=clean)
    assert clean == []


def test_rounding_never_lifts_an_amount_over_the_limit(tmp_path: Path) -> None:
    rows = make_rows(5)
    rows.loc[2, "price_paid"] = "9999999.999999999"  # rounds to 10,000,000: not below the limit
    problems = problems_of(write_csv(rows, tmp_path / "h.csv"))
    assert len(problems) == 1
    assert "below 10,000,000" in problems[0]


BAD_VALUES = [
    ("price_paid", "-5", "must be a decimal >= 0", "got '-5'"),
    ("price_paid", "10000000", "below 10,000,000", "got '10000000'"),
    ("price_paid", "1,50", "no thousands separators", "got '1,50'"),
    ("price_paid", "ten", "must be a decimal", "got 'ten'"),
    ("price_paid", "", "is required, got an empty value", ""),
    ("wallet_address", "0x12z", "must be 0x followed by 1-40 hex digits", "got '0x12z'"),
    ("wallet_address", "0x" + "g" * 40, "must be 0x followed by 1-40 hex digits", "got '0xggg"),
    ("wallet_address", "0x" + "a" * 41, "must be 0x followed by 1-40 hex digits", "got '0xaaa"),
    # Mixed case over 40 digits is an EIP-55 checksum, and this one is wrong.
    ("wallet_address", "0x" + "aB" * 20, "valid EIP-55 checksum", "got '0xaBaB"),
    ("is_fraud", "maybe", "must be a boolean: true/false, t/f, yes/no, y/n or 1/0", "got 'maybe'"),
    ("is_fraud", "", "is required, got an empty value", ""),
    ("timestamp", "yesterday", "must be an ISO 8601 timestamp", "got 'yesterday'"),
    ("timestamp", "2026-02-30T10:00:00Z", "must be an ISO 8601 timestamp", "got '2026-02-30T10:00:00Z'"),
    ("timestamp", "2026-01-05T10:00:00", "has no UTC offset", "got '2026-01-05T10:00:00'"),
    ("timestamp", "2026-03-02T10:00:00Z", "must not be after the import time", "2026-03-02 10:00:00+00:00"),
    ("ip_address", "1.2.3.256", "must be an IPv4 or IPv6 address", "got '1.2.3.256'"),
    ("country", "XX", "must be an ISO 3166-1 alpha-2 country code", "got 'XX'"),
    ("country", "DEU", "must be an ISO 3166-1 alpha-2 country code", "got 'DEU'"),
    ("transaction_id", "x" * 65, "must be at most 64 characters", "got 65 characters"),
    ("event_id", "", "is required, got an empty value", ""),
]


@pytest.mark.parametrize(("column", "value", "reason", "shown"), BAD_VALUES)
def test_bad_value_is_named_by_row_and_column(
    tmp_path: Path, column: str, value: str, reason: str, shown: str
) -> None:
    rows = make_rows(5)
    rows.loc[2, column] = value  # third data row: row 4 of the file (header is row 1)
    problems = problems_of(write_csv(rows, tmp_path / "h.csv"))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"row 4, column '{column}': ")
    assert reason in problems[0]
    assert shown in problems[0]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("is_resale", "sometimes", "must be a boolean"),
        ("latitude", "91", "must be a latitude in degrees between -90 and 90"),
        ("longitude", "east", "must be a longitude in degrees between -180 and 180"),
        ("seller_address", "0xabcq", "must be 0x followed by 1-40 hex digits"),
        ("event_capacity", "0", "must be a whole number between 1 and"),
        ("event_face_value", "-1", "must be a decimal >= 0"),
        ("pattern", "p" * 33, "must be at most 32 characters"),
    ],
)
def test_bad_optional_value_is_named_by_row_and_column(
    tmp_path: Path, column: str, value: str, reason: str
) -> None:
    rows = make_rows(5)
    rows[column] = ""
    rows.loc[4, column] = value
    problems = problems_of(write_csv(rows, tmp_path / "h.csv"))
    assert problems == [problems[0]]
    assert problems[0].startswith(f"row 6, column '{column}': {reason}")


def test_labelled_at_before_the_transaction_is_refused(tmp_path: Path) -> None:
    rows = make_rows(3)
    rows["labelled_at"] = ["", "2026-01-01T00:00:00Z", ""]
    problems = problems_of(write_csv(rows, tmp_path / "h.csv"))
    assert problems == [
        "row 3, column 'labelled_at': must not be before the transaction's timestamp "
        "2026-01-06 10:01:00+00:00, got '2026-01-01 00:00:00+00:00'"
    ]


def test_duplicate_transaction_ids_name_every_row(tmp_path: Path) -> None:
    rows = make_rows(6)
    rows.loc[4, "transaction_id"] = "tx-1"
    problems = problems_of(write_csv(rows, tmp_path / "h.csv"))
    reason = "must be unique in the file, but 2 rows use it (first on row 3), got 'tx-1'"
    assert problems == [f"row {row}, column 'transaction_id': {reason}" for row in (3, 6)]


def test_an_event_must_agree_with_itself(tmp_path: Path) -> None:
    rows = make_rows(4, event_id=["ev-a"] * 4)
    rows["event_capacity"] = ["500", "500", "600", ""]
    problems = problems_of(write_csv(rows, tmp_path / "h.csv"))
    assert problems == [
        "row 4, column 'event_capacity': event 'ev-a' has 500 on row 2, this row says 600; "
        "an event's columns must agree on every row"
    ]


def test_every_problem_is_listed_and_the_message_is_capped(tmp_path: Path) -> None:
    rows = make_rows(120, price_paid=["-1"] * 120)
    with pytest.raises(ImportValidationError) as caught:
        read_labelled_file(write_csv(rows, tmp_path / "h.csv"), now=NOW)
    error = caught.value
    assert error.total == 120
    assert len(error.row_problems) == 120
    text = str(error)
    assert text.splitlines()[0].endswith("120 problems, nothing imported")
    assert "row 51, column 'price_paid'" in text  # the 50th problem
    assert "row 52," not in text
    assert text.splitlines()[-1] == "  … and 70 more"


def test_naive_timestamps_are_read_in_the_given_timezone(tmp_path: Path) -> None:
    rows = make_rows(2, timestamp=["2026-01-05T10:00:00", "2026-01-05 12:30:00+00:00"])
    tx = read_labelled_file(
        write_csv(rows, tmp_path / "h.csv"), now=NOW, timezone="Europe/Berlin"
    ).transactions
    assert tx["timestamp"].tolist() == [
        pd.Timestamp("2026-01-05T09:00:00Z"),
        pd.Timestamp("2026-01-05T12:30:00Z"),
    ]


def test_a_local_time_skipped_by_daylight_saving_is_refused(tmp_path: Path) -> None:
    rows = make_rows(2, timestamp=["2026-01-05T10:00:00Z", "2026-03-29T02:30:00"])
    problems = problems_of(
        write_csv(rows, tmp_path / "h.csv"), now=datetime(2026, 4, 1, tzinfo=UTC), timezone="Europe/Berlin"
    )
    assert problems == [
        "row 3, column 'timestamp': is ambiguous or does not exist in Europe/Berlin "
        "(a daylight-saving change), got '2026-03-29T02:30:00'"
    ]


def test_an_unknown_timezone_is_refused(tmp_path: Path) -> None:
    problems = problems_of(write_csv(make_rows(2), tmp_path / "h.csv"), timezone="Mars/Olympus")
    assert problems == ["timezone 'Mars/Olympus' is not a known IANA zone; use e.g. UTC or Europe/Berlin"]


def test_blank_lines_are_skipped_without_shifting_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    lines = write_csv(make_rows(3), path).read_text().splitlines()
    lines[3] = lines[3].replace("12.50", "-12.50")  # the third data row, line 4
    path.write_text("\n".join([*lines[:2], "", *lines[2:]]) + "\n")
    assert problems_of(path)[0].startswith("row 5, column 'price_paid'")  # line 5 once the blank is counted


def test_spaces_around_values_and_a_byte_order_mark_are_ignored(tmp_path: Path) -> None:
    rows = make_rows(2)
    rows["price_paid"] = [" 10.5 ", "11"]
    path = tmp_path / "h.csv"
    path.write_bytes(b"\xef\xbb\xbf" + rows.to_csv(index=False).encode())
    assert read_labelled_file(path, now=NOW).transactions["price_paid"].tolist() == [10.5, 11.0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "is empty: expected a header line with column names"),
        ("transaction_id,wallet_address\n", "missing required column(s)"),
        ("a,a\n1,2\n", "column 'a' appears twice in the header (columns 1 and 2)"),
    ],
)
def test_unusable_files_are_refused_as_a_whole(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "h.csv"
    path.write_text(content)
    problems = problems_of(path)
    assert expected in problems[0]


def test_a_header_without_rows_is_refused(tmp_path: Path) -> None:
    path = write_csv(make_rows(0), tmp_path / "h.csv")
    assert problems_of(path) == ["has a header but no data rows"]


def test_rows_with_more_or_fewer_fields_than_the_header_are_refused(tmp_path: Path) -> None:
    path = write_csv(make_rows(3), tmp_path / "h.csv")
    wallet = "0x" + "1" * 40
    path.write_text(
        path.read_text()
        + f"tx-8,{wallet},ev,tk,1,2026-01-05T10:00:00Z,true,,DE,surplus\n"
        + f"tx-9,{wallet},ev,tk,1,2026-01-05T10:00:00Z,true\n"
    )
    assert problems_of(path) == [
        "row 5: has 10 fields but the header has 9; quote values that contain the delimiter",
        "row 6: has 7 fields but the header has 9; quote values that contain the delimiter",
    ]


def test_unknown_extension_needs_a_format(tmp_path: Path) -> None:
    path = write_csv(make_rows(2), tmp_path / "h.txt")
    assert "cannot tell the format from the extension '.txt'" in problems_of(path)[0]
    assert len(read_labelled_file(path, now=NOW, file_format="csv")) == 2


def test_semicolon_separated_files_load_with_a_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    make_rows(3).to_csv(path, index=False, sep=";")
    assert len(read_labelled_file(path, now=NOW, delimiter=";")) == 3


def test_an_unknown_source_is_refused(tmp_path: Path) -> None:
    problems = problems_of(write_csv(make_rows(2), tmp_path / "h.csv"), source="api")
    assert problems[0].startswith("source must be one of")


def events_file(path: Path, rows: dict[str, list[str]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_an_events_file_describes_the_events(tmp_path: Path) -> None:
    rows = make_rows(4)
    rows["event_capacity"] = "77"  # the events file wins over the rows' own event columns
    events = events_file(
        tmp_path / "events.csv",
        {
            "event_id": ["ev-a", "ev-b", "ev-unsold"],
            "name": ["Gala A", "Gala B", "Never sold"],
            "capacity": ["1200", "", "5"],
            "face_value": ["45.5", "60", "1"],
            "starts_at": ["2026-04-01T19:00:00Z", "2026-04-02T19:00:00+02:00", "2026-05-01T19:00:00Z"],
            "created_at": ["x", "y", "z"],
        },
    )
    history = read_labelled_file(write_csv(rows, tmp_path / "h.csv"), now=NOW, events_path=events)
    frame = history.events.set_index("event_id")
    assert sorted(frame.index) == ["ev-a", "ev-b"]  # only events with imported sales
    assert frame.loc["ev-a", "name"] == "Gala A"
    assert frame.loc["ev-a", "capacity"] == 1200
    assert frame.loc["ev-b", "capacity"] == 77  # empty in the events file: the rows' event_capacity
    assert frame.loc["ev-b", "face_value"] == 60.0
    assert frame.loc["ev-b", "starts_at"] == pd.Timestamp("2026-04-02T17:00:00Z")
    assert frame.loc["ev-a", "on_sale_at"] == pd.Timestamp("2026-01-05T10:00:00Z")  # derived: first sale


def test_problems_in_the_events_file_name_its_rows_and_columns(tmp_path: Path) -> None:
    events = events_file(
        tmp_path / "events.csv",
        {
            "event_id": ["ev-a", "ev-b", "ev-a"],
            "capacity": ["100", "lots", "100"],
            "on_sale_at": ["2026-05-01T00:00:00Z", "", ""],
            "starts_at": ["2026-04-01T19:00:00Z", "", ""],
        },
    )
    with pytest.raises(ImportValidationError) as caught:
        read_labelled_file(write_csv(make_rows(3), tmp_path / "h.csv"), now=NOW, events_path=events)
    assert caught.value.source == str(events)
    assert [str(p) for p in caught.value.problems] == [
        "row 2, column 'event_id': must be unique in the events file, got 'ev-a'",
        "row 2, column 'starts_at': must not be before 'on_sale_at' (2026-05-01 00:00:00+00:00), "
        "got '2026-04-01 19:00:00+00:00'",
        "row 3, column 'capacity': must be a whole number between 1 and 2147483647, got 'lots'",
        "row 4, column 'event_id': must be unique in the events file, got 'ev-a'",
    ]


def test_an_events_file_needs_an_event_id_column(tmp_path: Path) -> None:
    events = events_file(tmp_path / "events.csv", {"id": ["ev-a"], "capacity": ["5"]})
    problems = problems_of(write_csv(make_rows(2), tmp_path / "h.csv"), events_path=events)
    assert problems == [
        "an events file needs an 'event_id' column; accepted columns: event_id, name, organizer_id, venue, "
        "city, capacity, face_value, on_sale_at, starts_at"
    ]


def test_customer_ids_are_refused_with_a_pointer_to_opaque_ids(tmp_path: Path) -> None:
    rows = make_rows(3, wallet_address=["1001", "1002", "1001"])
    problems = problems_of(write_csv(rows, tmp_path / "h.csv"))
    assert len(problems) == 3
    assert "(ids that are not wallet addresses, such as customer ids: --opaque-ids)" in problems[0]


def test_opaque_ids_map_customer_ids_deterministically_into_wallets(tmp_path: Path) -> None:
    # Issue 13: an external history keyed by customer ids (integers) imports with --opaque-ids.
    rows = make_rows(4, wallet_address=["42", "1002", "42", "0xABC"])
    rows["is_resale"] = ["false", "false", "true", "true"]
    rows["seller_address"] = ["", "", "1002", "42"]
    path = write_csv(rows, tmp_path / "h.csv")
    tx = read_labelled_file(path, now=NOW, opaque_ids=True).transactions
    # The documented formula, frozen: a later import, the API caller and this run must agree forever.
    assert tx.loc[0, "wallet_address"] == "0x6bd3ba931f089028bd9d826bfa23bafb0cfe8698"
    assert tx.loc[0, "wallet_address"] == opaque_wallet("42")
    from ticketguard.client import opaque_wallet as client_opaque_wallet  # what a backend sends live

    assert client_opaque_wallet("42") == tx.loc[0, "wallet_address"]
    assert tx.loc[2, "wallet_address"] == tx.loc[0, "wallet_address"] == tx.loc[3, "seller_address"]
    assert tx.loc[2, "seller_address"] == tx.loc[1, "wallet_address"] == opaque_wallet("1002")
    assert tx.loc[3, "wallet_address"] == opaque_wallet("0xABC")  # every value is an id under the option
    assert tx["wallet_address"].map(is_canonical).all()
    again = read_labelled_file(path, now=NOW, opaque_ids=True).transactions
    assert again["wallet_address"].tolist() == tx["wallet_address"].tolist()
    other = read_labelled_file(path, now=NOW, opaque_ids=True, id_namespace="acme").transactions
    assert other.loc[0, "wallet_address"] == "0xc51260c8da37106054b85b4467e2ae769dff56e8"
    assert set(other["wallet_address"]).isdisjoint(tx["wallet_address"])


def test_opaque_ids_refuse_an_empty_namespace(tmp_path: Path) -> None:
    rows = make_rows(2, wallet_address=["1", "2"])
    problems = problems_of(write_csv(rows, tmp_path / "h.csv"), opaque_ids=True, id_namespace="")
    assert problems == ["the id namespace of --opaque-ids must not be empty"]
