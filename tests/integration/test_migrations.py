"""The schema exists only through Alembic: upgrade, downgrade to base and upgrade again on both dialects,
the models in `tables.py` match what the migrations build, and `ticketguard db …` drives them."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from typer.testing import CliRunner

from ticketguard import tables
from ticketguard.cli import app
from ticketguard.kit import migrate
from ticketguard.kit.db import make_engine

GUIDE_TABLES = {
    "transactions",
    "fraud_predictions",
    "security_events",
    "blacklisted_wallets",
    "admin_audit_log",
    "transactions_archive",
    "fraud_predictions_archive",
}
OUR_TABLES = {
    "events",
    "fraud_labels",
    "model_registry",
    "admin_users",
    "allowlisted_wallets",
    "chain_cursor",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return str(request.getfixturevalue("empty_postgres_url"))


@pytest.fixture
def fresh(empty_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_url)
    yield engine
    engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def _matviews(engine: Engine) -> set[str]:
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT matviewname FROM pg_matviews")).scalars())


def test_upgrade_downgrade_base_upgrade(empty_url: str, fresh: Engine) -> None:
    migrate.upgrade(empty_url)
    first = _tables(fresh) | _matviews(fresh)
    assert GUIDE_TABLES | OUR_TABLES | {"kpi_hourly"} <= first
    assert migrate.current(empty_url) == migrate.head()

    migrate.downgrade(empty_url, "base")
    fresh.dispose()
    assert _tables(fresh) == set()
    assert _matviews(fresh) == set()
    assert migrate.current(empty_url) is None

    migrate.upgrade(empty_url)
    fresh.dispose()
    assert _tables(fresh) | _matviews(fresh) == first


def test_models_match_the_migrations(empty_url: str, fresh: Engine) -> None:
    """`tables.py` (what the code uses) and the migrations (what the database has) never drift apart."""
    migrate.upgrade(empty_url)
    with fresh.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(context, tables.metadata)
    # Views are built by SQL in the migrations, not in the metadata (on SQLite they are plain tables with
    # indexes); column comments are documentation. Anything else is drift.
    views = {"kpi_hourly", "event_analytics", "wallet_segments", "realised_hourly"}

    def expected(item: object) -> bool:
        if isinstance(item, list):
            return all(change[0] == "modify_comment" for change in item)
        assert isinstance(item, tuple)
        if item[0] == "remove_table":
            return bool(item[1].name in views)
        if item[0] == "remove_index":
            return bool(item[1].table.name in views)
        return False

    drift = [item for item in diff if not expected(item)]
    assert drift == [], drift


def test_guide_indexes_exist(empty_url: str, fresh: Engine) -> None:
    migrate.upgrade(empty_url)
    inspector = inspect(fresh)
    indexed = {
        table: {tuple(ix["column_names"]) for ix in inspector.get_indexes(table)}
        for table in ("transactions", "fraud_predictions", "security_events")
    }
    assert ("wallet_address", "timestamp") in indexed["transactions"]
    assert ("timestamp",) in indexed["transactions"]
    assert ("transaction_id",) in indexed["fraud_predictions"]
    assert ("event_type", "timestamp") in indexed["security_events"]


@pytest.mark.postgres
def test_kpi_hourly_is_a_materialized_view_refreshable_concurrently(empty_postgres_url: str) -> None:
    migrate.upgrade(empty_postgres_url)
    engine = make_engine(empty_postgres_url)
    try:
        with engine.connect() as conn:
            unique = (
                conn.execute(
                    text(
                        "SELECT indexdef FROM pg_indexes "
                        "WHERE tablename = 'kpi_hourly' AND indexdef LIKE '%UNIQUE%'"
                    )
                )
                .scalars()
                .all()
            )
            assert unique, "kpi_hourly needs a unique index for REFRESH ... CONCURRENTLY"
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("REFRESH MATERIALIZED VIEW CONCURRENTLY kpi_hourly"))
    finally:
        engine.dispose()


def test_money_is_decimal_and_timestamps_are_utc(engine: Engine) -> None:
    from datetime import UTC, datetime

    with engine.begin() as conn:
        conn.execute(
            tables.transactions.insert(),
            {
                "transaction_id": "t-money",
                "wallet_address": "0x" + "a" * 40,
                "ticket_id": "tk-1",
                "event_id": "ev-1",
                "price_paid": Decimal("1234.56789012"),
                "timestamp": datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
                "is_resale": False,
                "status": "completed",
                "source": "test",
            },
        )
        row = conn.execute(
            tables.transactions.select().where(tables.transactions.c.transaction_id == "t-money")
        ).one()
    assert row.price_paid == Decimal("1234.56789012")
    assert row.timestamp == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert row.timestamp.utcoffset() is not None


def test_db_cli_upgrade_current_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"DATABASE_URL": url, "COLUMNS": "200"}
    runner = CliRunner()
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert migrate.head() in result.output
    result = runner.invoke(app, ["db", "current"], env=env)
    assert result.exit_code == 0
    assert migrate.head() in result.output
    result = runner.invoke(app, ["db", "downgrade", "base"], env=env)
    assert result.exit_code == 0, result.output
    assert migrate.current(url) is None
