"""`ticketguard import` end to end through the CLI, against the database named by DATABASE_URL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from typer.testing import CliRunner

from ticketguard import tables
from ticketguard.cli import app
from ticketguard.kit.db import make_engine


def export_file(path: Path, n: int = 6) -> Path:
    """A platform export with its own column names, including one naive-looking local timestamp column."""
    pd.DataFrame(
        {
            "ref": [f"r-{i}" for i in range(n)],
            "wallet": [f"0x{i + 1:040x}" for i in range(n)],
            "event": ["concert-1"] * n,
            "amount": [f"{30 + i}.00" for i in range(n)],
            "created_at": [f"2026-01-05T1{i}:00:00Z" for i in range(n)],
            "chargeback": ["1" if i == 2 else "0" for i in range(n)],
        }
    ).to_csv(path, index=False)
    return path


MAP_ARGS = [
    "--map",
    "ref=transaction_id",
    "--map",
    "wallet=wallet_address",
    "--map",
    "event=event_id",
    "--map",
    "amount=price_paid",
    "--map",
    "created_at=timestamp",
    "--map",
    "chargeback=is_fraud",
]


def fetch(url: str, statement: Any) -> list[Any]:
    """The rows of ``statement`` in the database at ``url``, through an engine of its own."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(statement).all())
    finally:
        engine.dispose()


def stored(url: str) -> int:
    return int(fetch(url, select(func.count()).select_from(tables.transactions))[0][0])


def run(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["import", *args], env={"DATABASE_URL": url})
    return result.exit_code, result.output


def test_import_with_a_mapping_writes_and_summarises(db_url: str, tmp_path: Path) -> None:
    code, output = run(db_url, str(export_file(tmp_path / "export.csv")), *MAP_ARGS)
    assert code == 0, output
    assert re.search(r"rows read\s+│\s+6 │", output), output
    assert re.search(r"transactions written\s+│\s+6 │", output), output
    assert re.search(r"of which fraud\s+│\s+1 │", output), output
    assert stored(db_url) == 6


def test_mapping_file_option(db_url: str, tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    pairs = [MAP_ARGS[i + 1] for i in range(0, len(MAP_ARGS), 2)]
    mapping.write_text("".join(f"{p.split('=')[0]}: {p.split('=')[1]}\n" for p in pairs))
    code, output = run(db_url, str(export_file(tmp_path / "export.csv")), "--mapping", str(mapping))
    assert code == 0, output
    assert stored(db_url) == 6


def test_a_bad_row_refuses_the_file_with_row_and_column(db_url: str, tmp_path: Path) -> None:
    path = export_file(tmp_path / "export.csv")
    frame = pd.read_csv(path, dtype=str)
    frame.loc[3, "amount"] = "-5"
    frame.to_csv(path, index=False)
    code, output = run(db_url, str(path), *MAP_ARGS)
    assert code == 1
    assert "1 problem, nothing imported" in output
    assert "row 5, column 'amount' (mapped to price_paid): must be a decimal >= 0" in output
    assert "got '-5'" in output
    assert stored(db_url) == 0


def test_missing_mapping_lists_what_is_accepted(db_url: str, tmp_path: Path) -> None:
    code, output = run(db_url, str(export_file(tmp_path / "export.csv")))
    assert code == 1
    assert "missing required column(s) 'transaction_id'" in output
    assert "accepted: required transaction_id, wallet_address" in output


def test_dry_run_and_quarantine(db_url: str, tmp_path: Path) -> None:
    path = export_file(tmp_path / "export.csv")
    code, output = run(db_url, str(path), *MAP_ARGS, "--dry-run")
    assert code == 0, output
    assert "dry run: nothing written" in output
    assert stored(db_url) == 0

    frame = pd.read_csv(path, dtype=str)
    frame.loc[0, "wallet"] = "not-a-wallet"
    frame.to_csv(path, index=False)
    report = tmp_path / "rejected.csv"
    code, output = run(db_url, str(path), *MAP_ARGS, "--quarantine", str(report))
    assert code == 0, output
    assert "1 row(s) rejected" in output
    assert stored(db_url) == 5
    rejected = pd.read_csv(report, dtype=str)
    assert rejected["row"].tolist() == ["2"]
    assert rejected.loc[0, "wallet"] == "not-a-wallet"


def test_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'blank.db'}"
    code, output = run(url, str(export_file(tmp_path / "export.csv")), *MAP_ARGS)
    assert code == 2
    assert "is at revision base, the code needs" in output
    assert "ticketguard db upgrade" in output


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(app, ["import", "--help"])
    assert result.exit_code == 0
    for option in ("--map", "--mapping", "--format", "--dry-run", "--quarantine", "--timezone"):
        assert option in result.output


def test_events_file_option_creates_the_described_events(db_url: str, tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    pd.DataFrame(
        {
            "event_id": ["concert-1", "concert-2"],
            "name": ["Spring Concert", "Unsold Show"],
            "organizer_id": ["org-7", "org-7"],
            "capacity": ["2500", "100"],
            "face_value": ["29.99", "10"],
            "on_sale_at": ["2026-01-01T09:00:00Z", "2026-01-01T09:00:00Z"],
            "starts_at": ["2026-02-14T20:00:00+01:00", "2026-03-01T20:00:00Z"],
        }
    ).to_csv(events, index=False)
    code, output = run(db_url, str(export_file(tmp_path / "export.csv")), *MAP_ARGS, "--events", str(events))
    assert code == 0, output
    assert "1 event(s) of the events file have no imported transaction; not created" in output
    rows = fetch(db_url, select(tables.events))
    assert [(r.event_id, r.name, r.organizer_id, r.capacity, str(r.face_value)) for r in rows] == [
        ("concert-1", "Spring Concert", "org-7", 2500, "29.99000000")
    ]
    assert rows[0].starts_at.isoformat() == "2026-02-14T19:00:00+00:00"


def test_float_noise_amounts_are_rounded_and_counted_also_under_quarantine(
    db_url: str, tmp_path: Path
) -> None:
    # Issue 13: 85.64999999999999 was refused, so --quarantine silently dropped a fraud pattern.
    path = export_file(tmp_path / "export.csv")
    frame = pd.read_csv(path, dtype=str)
    frame.loc[1, "amount"] = "85.64999999999999"
    frame.loc[2, "amount"] = "0.30000000000000004"
    frame.loc[4, "amount"] = "-1"  # a real problem: quarantined
    frame.to_csv(path, index=False)
    code, output = run(db_url, str(path), *MAP_ARGS, "--quarantine", str(tmp_path / "rejected.csv"))
    assert code == 0, output
    assert re.search(r"amounts rounded to 8 decimals\s+│\s+2 │", output), output
    assert "2 amount(s) had more than 8 decimal places" in output
    assert "'amount' (mapped to price_paid) 2" in output
    assert stored(db_url) == 5
    rejected = pd.read_csv(tmp_path / "rejected.csv", dtype=str)
    assert rejected["row"].tolist() == ["6"]  # only the negative amount
    prices = dict(
        fetch(db_url, select(tables.transactions.c.transaction_id, tables.transactions.c.price_paid))
    )
    assert str(prices["r-1"]).rstrip("0") == "85.65"
    assert str(prices["r-2"]).rstrip("0") == "0.3"


def test_opaque_ids_import_customer_ids_and_write_the_id_map(db_url: str, tmp_path: Path) -> None:
    from ticketguard.wallets import opaque_wallet

    path = export_file(tmp_path / "export.csv")
    frame = pd.read_csv(path, dtype=str)
    frame["wallet"] = ["7", "8", "7", "9", "10", "7"]  # customer ids, as an external history has them
    frame.to_csv(path, index=False)
    code, output = run(db_url, str(path), *MAP_ARGS)
    assert code == 1
    assert "--opaque-ids" in output
    assert stored(db_url) == 0
    code, output = run(db_url, str(path), *MAP_ARGS, "--id-map", str(tmp_path / "ids.csv"))
    assert code == 2
    assert "--id-map needs --opaque-ids" in output
    code, output = run(
        db_url,
        str(path),
        *MAP_ARGS,
        "--opaque-ids",
        "--id-namespace",
        "acme",
        "--id-map",
        str(tmp_path / "ids.csv"),
    )
    assert code == 0, output
    assert "4 id(s) and their wallets written to" in output
    assert re.search(r"ids mapped to wallets \(--opaque-ids\)\s+│\s+4 │", output), output
    ids = pd.read_csv(tmp_path / "ids.csv", dtype=str)
    assert ids.to_dict("records") == [
        {"id": i, "wallet_address": opaque_wallet(i, "acme")} for i in ("10", "7", "8", "9")
    ]
    wallets = dict(
        fetch(db_url, select(tables.transactions.c.transaction_id, tables.transactions.c.wallet_address))
    )
    assert wallets["r-0"] == wallets["r-2"] == wallets["r-5"] == opaque_wallet("7", "acme")
    assert len(set(wallets.values())) == 4
