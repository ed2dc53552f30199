"""The data-control commands end to end through the CLI, on an embedded SQLite database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ticketguard import tables
from ticketguard.cli import app
from ticketguard.kit.db import make_engine

runner = CliRunner()


@pytest.fixture
def cli_db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    return sqlite_url


@pytest.mark.parametrize(
    "command",
    [
        ["jobs"],
        ["jobs", "run"],
        ["worker"],
        ["retention", "run"],
        ["retention", "erase-wallet"],
        ["quality", "run"],
        ["views", "refresh"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_jobs_run_records_the_run_and_reports_failures_by_exit_code(cli_db: str) -> None:
    result = runner.invoke(app, ["jobs", "run", "refresh-views"])
    assert result.exit_code == 0, result.output
    assert "refresh-views: succeeded" in result.output
    assert runner.invoke(app, ["jobs", "run", "etl"]).exit_code == 0  # not configured: skipped, not failed
    unknown = runner.invoke(app, ["jobs", "run", "nope"])
    assert unknown.exit_code == 2
    assert (
        "unknown job 'nope'; accepted: etl, refresh-views, retention, data-quality, retrain, "
        "security-correlation, deliver-outbox, evaluate-alerts" in unknown.output
    )
    history = runner.invoke(app, ["jobs", "history"])
    assert "refresh-views" in history.output
    assert "skipped" in history.output
    engine = make_engine(cli_db)
    with engine.connect() as conn:
        statuses = conn.execute(select(tables.job_runs.c.job_name, tables.job_runs.c.status)).all()
    engine.dispose()
    assert sorted(tuple(s) for s in statuses) == [("etl", "skipped"), ("refresh-views", "succeeded")]


def test_retention_dry_run_counts_and_changes_nothing(cli_db: str) -> None:
    engine = make_engine(cli_db)
    old = datetime.now(UTC) - timedelta(days=120)
    with engine.begin() as conn:
        conn.execute(
            tables.transactions.insert().values(
                transaction_id="t1", wallet_address="0x" + "1" * 40, event_id="E", timestamp=old
            )
        )
    result = runner.invoke(app, ["retention", "run", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output
    with engine.connect() as conn:
        assert conn.execute(select(tables.transactions.c.transaction_id)).scalars().all() == ["t1"]
    result = runner.invoke(app, ["retention", "run"])
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        assert conn.execute(select(tables.transactions_archive.c.transaction_id)).scalars().all() == ["t1"]
    engine.dispose()


def test_erase_wallet_needs_a_pseudonym_key_and_a_valid_address(
    cli_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["retention", "erase-wallet", "0x" + "1" * 40, "--yes"])
    assert result.exit_code == 2
    assert "PSEUDONYM_KEY must be a secret" in result.output
    monkeypatch.setenv("PSEUDONYM_KEY", "x" * 32)
    bad = runner.invoke(app, ["retention", "erase-wallet", "0x12z4", "--yes"])
    assert bad.exit_code == 2
    assert "wallet must be 0x followed by 1-40 hex digits" in bad.output
    ok = runner.invoke(app, ["retention", "erase-wallet", "0x" + "1" * 40, "--yes", "--actor", "dpo"])
    assert ok.exit_code == 0, ok.output
    assert "erased: now erased:" in ok.output
