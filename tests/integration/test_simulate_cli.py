"""`ticketguard simulate` into the database (SQLite and PostgreSQL) and into files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from ticketguard import tables
from ticketguard.cli import app
from ticketguard.kit.db import make_engine


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for name, table in (
                    ("transactions", tables.transactions),
                    ("fraud_labels", tables.fraud_labels),
                    ("events", tables.events),
                )
            }
    finally:
        engine.dispose()


def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["simulate", *args], env={"COLUMNS": "200", **env})
    return result.exit_code, result.output


def test_simulate_into_the_database_then_refuse_then_replace(db_url: str) -> None:
    env = {"DATABASE_URL": db_url}
    code, output = _run(env, "-n", "2000", "--seed", "3", "--days", "30")
    assert code == 0, output
    first = _counts(db_url)
    assert first["transactions"] == 2000 == first["fraud_labels"]
    assert first["events"] > 0
    assert "fraud rate" in output

    code, output = _run(env, "-n", "3000", "--seed", "4", "--days", "30")
    assert code == 2
    assert "--replace" in output
    assert _counts(db_url) == first  # refused: nothing written

    code, output = _run(env, "-n", "3000", "--seed", "4", "--days", "30", "--replace")
    assert code == 0, output
    assert _counts(db_url)["transactions"] == 3000


def test_money_is_stored_exactly(sqlite_url: str, tmp_path: Path) -> None:
    code, output = _run({"DATABASE_URL": sqlite_url}, "-n", "1000", "--seed", "9", "--days", "20")
    assert code == 0, output
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        prices = conn.execute(select(tables.transactions.c.price_paid).limit(50)).scalars().all()
    engine.dispose()
    from decimal import Decimal

    assert all(isinstance(p, Decimal) and p == p.quantize(Decimal("0.01")) for p in prices)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_simulate_to_files_is_deterministic(tmp_path: Path, suffix: str) -> None:
    paths = []
    for name in ("a", "b"):
        target = tmp_path / f"{name}{suffix}"
        code, output = _run({}, "-n", "1500", "--seed", "21", "--days", "20", "--output", str(target))
        assert code == 0, output
        assert target.exists()
        assert (tmp_path / f"{name}.events{suffix}").exists()
        paths.append(target)
    read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
    a, b = (read(p) for p in paths)
    assert len(a) == 1500
    assert {"transaction_id", "wallet_address", "price_paid", "is_fraud", "pattern", "labelled_at"} <= set(a)
    pd.testing.assert_frame_equal(a, b)
    assert paths[0].read_bytes() == paths[1].read_bytes() or suffix == ".parquet"


def test_unknown_file_type_is_refused(tmp_path: Path) -> None:
    code, output = _run({}, "-n", "1000", "--output", str(tmp_path / "out.xlsx"))
    assert code == 2
    assert ".parquet" in output
    assert ".csv" in output
    assert not (tmp_path / "out.xlsx").exists()


def test_unmigrated_database_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code, output = _run({"DATABASE_URL": url}, "-n", "1000")
    assert code == 2
    assert "ticketguard db upgrade" in output


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["-n", "10"], "--transactions"),
        (["--days", "3"], "--days"),
        (["--fraud-rate", "0.9"], "--fraud-rate"),
        (["--start", "tomorrow"], "--start"),
    ],
)
def test_bad_options_name_the_option(args: list[str], field: str) -> None:
    code, output = _run({}, *args, "--output", "x.csv")
    assert code == 2
    assert field in output


def _archived(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(tables.transactions_archive)).scalar_one()
            )
    finally:
        engine.dispose()


def test_replace_after_retention_archived_part_of_the_simulation(db_url: str) -> None:
    """Retention moved the older part of a simulation to the archive (as the weekly job does to the demo's
    history): `--replace` with the same seed — the same transaction ids — swaps out live and archived rows."""
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) - timedelta(days=150)).date().isoformat()
    env = {"DATABASE_URL": db_url}
    args = ("-n", "2000", "--seed", "3", "--start", start, "--days", "100")
    code, output = _run(env, *args)
    assert code == 0, output
    result = CliRunner().invoke(app, ["retention", "run"], env={"COLUMNS": "200", **env})
    assert result.exit_code == 0, result.output
    archived = _archived(db_url)
    assert 0 < archived < 2000  # part of it is older than the 90 hot days, part is not
    assert _counts(db_url)["transactions"] == 2000 - archived

    code, output = _run(env, *args)
    assert code == 2
    assert "2000 simulated transactions (live or archived)" in " ".join(output.split())

    code, output = _run(env, *args, "--replace")
    assert code == 0, output
    assert _counts(db_url)["transactions"] == 2000 == _counts(db_url)["fraud_labels"]
    assert _archived(db_url) == 0


def test_replace_after_retention_purged_every_simulated_transaction(sqlite_url: str) -> None:
    """Only the simulation's events are left (its transactions were archived and then purged): a plain run
    refuses, naming them, and `--replace` removes them first."""
    env = {"DATABASE_URL": sqlite_url}
    code, output = _run(env, "-n", "1000", "--seed", "5", "--start", "2020-01-06", "--days", "20")
    assert code == 0, output
    result = CliRunner().invoke(app, ["retention", "run"], env={"COLUMNS": "200", **env})
    assert result.exit_code == 0, result.output
    left = _counts(sqlite_url)
    assert (left["transactions"], _archived(sqlite_url)) == (0, 0)
    assert left["events"] > 0

    code, output = _run(env, "-n", "1000", "--seed", "5", "--start", "2020-01-06", "--days", "20")
    assert code == 2
    said = " ".join(output.split())  # the console wraps long lines
    assert f"0 simulated transactions (live or archived) and {left['events']} simulated events" in said
    code, output = _run(
        env, "-n", "1000", "--seed", "5", "--start", "2020-01-06", "--days", "20", "--replace"
    )
    assert code == 0, output
    assert _counts(sqlite_url) == {**left, "transactions": 1000, "fraud_labels": 1000}
