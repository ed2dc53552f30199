"""`ticketguard reviews …` end to end on an embedded SQLite database: list, show, claim, a second analyst
refused, decide (label and audit stored), stats, and bad input refused with its field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from review_fixtures import scored
from ticketguard import tables
from ticketguard.cli import app
from ticketguard.kit.db import make_engine

runner = CliRunner()


@pytest.fixture
def cli_db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    return sqlite_url


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_an_analyst_works_the_queue_from_the_command_line(cli_db: str) -> None:
    engine = make_engine(cli_db)
    now = datetime.now(UTC)
    scored(engine, "cli-old", at=now - timedelta(hours=2))
    scored(engine, "cli-new", at=now - timedelta(minutes=10))
    scored(engine, "cli-ok", decision="APPROVED", at=now - timedelta(minutes=5))
    try:
        code, output = _invoke("reviews", "list")
        assert code == 0, output
        assert output.index("cli-old") < output.index("cli-new")
        assert "cli-ok" not in output
        code, output = _invoke("reviews", "list", "--json")
        assert [c["transaction_id"] for c in json.loads(output)] == ["cli-old", "cli-new"]

        code, output = _invoke("reviews", "show", "cli-old")
        assert code == 0, output
        assert "new_ip_for_wallet" in output
        assert "wallet history" in output

        code, output = _invoke("reviews", "claim", "cli-old", "--analyst", "ana")
        assert code == 0, output
        assert "claimed by ana" in output
        code, output = _invoke(
            "reviews", "decide", "cli-old", "--analyst", "bob", "--outcome", "fraud", "--note", "x"
        )
        assert code == 1
        assert "claimed by ana" in output
        code, output = _invoke(
            "reviews", "decide", "cli-old", "--analyst", "ana", "--outcome", "maybe", "--note", "x"
        )
        assert code == 2
        assert "outcome must be one of fraud, legitimate" in output
        code, output = _invoke(
            "reviews", "decide", "cli-old", "--analyst", "ana", "--outcome", "fraud", "--note", " "
        )
        assert code == 2
        assert "note is required" in output
        code, output = _invoke(
            "reviews", "decide", "cli-old", "--analyst", "ana", "--outcome", "fraud", "--note", "stolen card"
        )
        assert code == 0, output
        assert "decided fraud by ana" in output

        code, output = _invoke("reviews", "stats", "--json")
        assert code == 0, output
        stats = json.loads(output)
        assert (stats["size"], stats["claimed"]) == (1, 0)
        assert 500 < stats["oldest_age_seconds"] < 700

        code, output = _invoke("reviews", "show", "nope")
        assert code == 1
        assert "not a MANUAL_REVIEW case" in output

        with engine.connect() as conn:
            label = conn.execute(select(tables.fraud_labels)).mappings().one()
            actions = list(conn.execute(select(tables.admin_audit_log.c.action)).scalars())
        assert (label["transaction_id"], label["is_fraud"], label["source"]) == ("cli-old", True, "analyst")
        assert actions == ["review.claim", "review.decide"]
    finally:
        engine.dispose()
