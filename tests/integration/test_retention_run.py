"""Retention on real SQLite and PostgreSQL: rows move by the policy, and an interrupted run — an error
between batches, a failing statement inside a batch, a SIGKILLed process — loses and duplicates nothing;
the next run finishes the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import Engine, select, text

from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.kit.db import bulk_insert, make_engine
from ticketguard.retention.policy import policy_from_settings
from ticketguard.retention.service import run_retention

NOW = datetime.now(UTC)


def _transactions(n: int, days_ago: float, prefix: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": [f"{prefix}-{i:06d}" for i in range(n)],
            "wallet_address": [f"0x{i:040x}" for i in range(n)],
            "event_id": "EV1",
            "price_paid": "10.5",
            "is_resale": False,
            "timestamp": [NOW - timedelta(days=days_ago, seconds=i) for i in range(n)],
            "source": "simulator",
        }
    )


def _ids(engine: Engine, table: str) -> list[str]:
    t = tables.metadata.tables[table]
    with engine.connect() as conn:
        return list(conn.execute(select(t.c.transaction_id)).scalars())


def _assert_conserved(engine: Engine, expected: set[str]) -> tuple[int, int]:
    live, archive = _ids(engine, "transactions"), _ids(engine, "transactions_archive")
    assert len(set(live) & set(archive)) == 0, "a row is both live and archived"
    assert len(archive) == len(set(archive))
    assert set(live) | set(archive) == expected
    return len(live), len(archive)


def test_retention_applies_the_policy_per_table(engine: Engine) -> None:
    with engine.begin() as conn:
        bulk_insert(conn, tables.transactions, _transactions(3, 10, "hot"))
        bulk_insert(conn, tables.transactions, _transactions(4, 100, "warm"))
        bulk_insert(conn, tables.transactions, _transactions(2, 800, "expired"))
        bulk_insert(conn, tables.transactions_archive, _transactions(5, 900, "old-archived"))
        bulk_insert(conn, tables.transactions_archive, _transactions(1, 300, "kept-archived"))
        conn.execute(
            tables.fraud_predictions.insert(),
            [
                {"transaction_id": f"p{i}", "decision": "APPROVED", "timestamp": NOW - timedelta(days=d)}
                for i, d in enumerate((1, 179, 181, 2000))
            ],
        )
        conn.execute(
            tables.admin_audit_log.insert(),
            [{"action": "x", "timestamp": NOW - timedelta(days=d)} for d in (10, 400, 3000)],
        )
        conn.execute(tables.admin_users.insert().values(id=1, username="ana", password_hash="x"))
        conn.execute(
            tables.admin_sessions.insert(),
            [
                {
                    "id": "a" * 64,
                    "admin_user_id": 1,
                    "expires_at": NOW - timedelta(days=40),
                    "revoked_at": None,
                },
                {
                    "id": "b" * 64,
                    "admin_user_id": 1,
                    "expires_at": NOW - timedelta(days=5),
                    "revoked_at": None,
                },
                {
                    "id": "c" * 64,
                    "admin_user_id": 1,
                    "expires_at": NOW + timedelta(days=1),
                    "revoked_at": NOW - timedelta(days=31),
                },
                {
                    "id": "d" * 64,
                    "admin_user_id": 1,
                    "expires_at": NOW + timedelta(hours=8),
                    "revoked_at": None,
                },
            ],
        )
    policy = policy_from_settings(Settings(retention_batch_rows=2))

    dry = run_retention(engine, policy, now=NOW, dry_run=True)
    assert dry.counts() == {
        "transactions.archived": 6,
        "transactions_archive.purged": 7,
        "fraud_predictions.archived": 2,
        "fraud_predictions_archive.purged": 1,
        "admin_audit_log.archived": 2,
        "admin_audit_log_archive.purged": 1,
        "admin_sessions.deleted": 2,
    }
    assert len(_ids(engine, "transactions")) == 9  # a dry run changes nothing

    report = run_retention(engine, policy, now=NOW)
    assert report.counts() == dry.counts()
    assert report.rows == sum(dry.counts().values()) == 21
    # Batches of 2 rows: a table's moves and purges each take ceil(rows / 2) batches.
    assert [r.batches for r in report.tables] == [
        (r.archived + 1) // 2 + (r.purged + r.deleted + 1) // 2 for r in report.tables
    ]
    assert [r.batches for r in report.tables] == [3 + 4, 1 + 1, 1 + 1, 1]
    assert 0 <= report.seconds < 600  # a duration, from the run's start
    assert sorted(_ids(engine, "transactions")) == [f"hot-{i:06d}" for i in range(3)]
    assert sorted(_ids(engine, "transactions_archive")) == sorted(
        [f"warm-{i:06d}" for i in range(4)] + ["kept-archived-000000"]
    )
    with engine.connect() as conn:
        archived = conn.execute(
            select(tables.transactions_archive).where(
                tables.transactions_archive.c.transaction_id == "warm-000001"
            )
        ).one()
        assert str(archived.price_paid) == "10.50000000"
        assert archived.timestamp == pd.Timestamp(NOW - timedelta(days=100, seconds=1)).to_pydatetime()
        assert archived.archived_at == NOW
        assert conn.execute(select(tables.fraud_predictions.c.transaction_id)).scalars().all() == ["p0", "p1"]
        assert sorted(conn.execute(select(tables.fraud_predictions_archive.c.transaction_id)).scalars()) == [
            "p2"
        ]
        assert conn.execute(text("SELECT count(*) FROM admin_audit_log_archive")).scalar_one() == 1
        assert sorted(conn.execute(select(tables.admin_sessions.c.id)).scalars()) == ["b" * 64, "d" * 64]

    again = run_retention(engine, policy, now=NOW)
    assert again.rows == 0


def test_an_error_between_batches_keeps_every_row_once_and_a_rerun_finishes(engine: Engine) -> None:
    with engine.begin() as conn:
        bulk_insert(conn, tables.transactions, _transactions(25, 200, "old"))
        bulk_insert(conn, tables.transactions, _transactions(3, 1, "new"))
    expected = set(_ids(engine, "transactions"))
    policy = policy_from_settings(Settings(retention_batch_rows=10))
    calls: list[int] = []

    def fail_on_second_batch(table: str, phase: str, rows: int) -> None:
        calls.append(rows)
        if len(calls) == 2:
            raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError, match="worker killed"):
        run_retention(engine, policy, now=NOW, on_batch=fail_on_second_batch)
    assert _assert_conserved(engine, expected) == (8, 20)

    report = run_retention(engine, policy, now=NOW)
    assert report.counts()["transactions.archived"] == 5
    assert _assert_conserved(engine, expected) == (3, 25)


def _install_failing_trigger(engine: Engine, transaction_id: str) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_archive() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"IF NEW.transaction_id = '{transaction_id}' THEN RAISE EXCEPTION 'disk full'; END IF; "
                    "RETURN NEW; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_archive BEFORE INSERT ON transactions_archive "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_archive()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_archive BEFORE INSERT ON transactions_archive "
                    f"WHEN NEW.transaction_id = '{transaction_id}' "
                    "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )


def test_a_statement_failing_inside_a_batch_rolls_back_that_whole_batch(engine: Engine) -> None:
    with engine.begin() as conn:
        bulk_insert(conn, tables.transactions, _transactions(25, 200, "old"))
    expected = set(_ids(engine, "transactions"))
    # Rows are taken oldest first; old-000014 is the 15th oldest... of 25 (ids count back in time), so
    # the oldest batch of 10 (000015..000024) commits and the second batch (000005..000014) fails.
    _install_failing_trigger(engine, "old-000010")
    policy = policy_from_settings(Settings(retention_batch_rows=10))
    with pytest.raises(Exception, match="disk full"):
        run_retention(engine, policy, now=NOW)
    assert _assert_conserved(engine, expected) == (15, 10)
    assert set(_ids(engine, "transactions_archive")) == {f"old-{i:06d}" for i in range(15, 25)}

    with engine.begin() as conn:
        conn.execute(
            text(
                "DROP TRIGGER refuse_archive"
                + (" ON transactions_archive" if engine.dialect.name == "postgresql" else "")
            )
        )
    run_retention(engine, policy, now=NOW)
    assert _assert_conserved(engine, expected) == (0, 25)


def test_a_killed_retention_process_loses_and_duplicates_nothing(db_url: str) -> None:
    engine = make_engine(db_url)
    total = 1500
    with engine.begin() as conn:
        bulk_insert(conn, tables.transactions, _transactions(total, 200, "old"))
    expected = set(_ids(engine, "transactions"))
    env = {**os.environ, "DATABASE_URL": db_url, "RETENTION_BATCH_ROWS": "1", "ENVIRONMENT": "development"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from ticketguard.cli import app; app()", "retention", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        archived = 0
        while time.monotonic() < deadline and process.poll() is None:
            with engine.connect() as conn:
                archived = conn.execute(text("SELECT count(*) FROM transactions_archive")).scalar_one()
            if archived >= 20:
                break
            time.sleep(0.02)
        assert process.poll() is None, f"retention ended before it could be killed: {process.stderr.read()!r}"  # type: ignore[union-attr]
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=10)
    live, archive = _assert_conserved(engine, expected)
    assert 20 <= archive < total
    assert live + archive == total

    run_retention(engine, policy_from_settings(Settings(retention_batch_rows=500)), now=datetime.now(UTC))
    assert _assert_conserved(engine, expected) == (0, total)
    engine.dispose()


# ---------------------------------------------------------------------------------------------------------
# Faults injected at a fixed point of a batch (the repository's `checkpoint` seam and a failing DELETE): not
# left to where a SIGKILL happens to land. A batch is one transaction: its archive INSERT and its live
# DELETE commit together or not at all.


@pytest.mark.parametrize("step", ["archived", "deleted"])
def test_a_fault_between_archive_and_delete_or_after_it_rolls_the_batch_back(
    engine: Engine, step: str
) -> None:
    with engine.begin() as conn:
        bulk_insert(conn, tables.transactions, _transactions(25, 200, "old"))
    expected = set(_ids(engine, "transactions"))
    policy = policy_from_settings(Settings(retention_batch_rows=10))
    reached: list[str] = []

    def fail_in_second_batch(at: str) -> None:
        reached.append(at)
        if at == step and reached.count(step) == 2:
            # Between the batch's archive INSERT and its live DELETE ("archived"), or after the DELETE and
            # before the commit ("deleted"): the process dies here.
            raise RuntimeError(f"fault at {at}")

    with pytest.raises(RuntimeError, match=f"fault at {step}"):
        run_retention(engine, policy, now=NOW, checkpoint=fail_in_second_batch)
    assert reached[:2] == ["archived", "deleted"]  # the seam saw both steps of the first batch
    # The first batch committed whole; the second left every row where it was: none in both, none lost.
    assert _assert_conserved(engine, expected) == (15, 10)

    run_retention(engine, policy, now=NOW)
    assert _assert_conserved(engine, expected) == (0, 25)


def _install_failing_delete(engine: Engine, transaction_id: str) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"IF OLD.transaction_id = '{transaction_id}' THEN RAISE EXCEPTION 'io error'; END IF; "
                    "RETURN OLD; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_delete BEFORE DELETE ON transactions "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_delete()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_delete BEFORE DELETE ON transactions "
                    f"WHEN OLD.transaction_id = '{transaction_id}' "
                    "BEGIN SELECT RAISE(ABORT, 'io error'); END"
                )
            )


def test_a_delete_that_fails_takes_its_archive_insert_back_with_it(engine: Engine) -> None:
    with engine.begin() as conn:
        bulk_insert(conn, tables.transactions, _transactions(25, 200, "old"))
    expected = set(_ids(engine, "transactions"))
    _install_failing_delete(engine, "old-000010")  # in the second batch (000005..000014)
    policy = policy_from_settings(Settings(retention_batch_rows=10))
    with pytest.raises(Exception, match="io error"):
        run_retention(engine, policy, now=NOW)
    assert _assert_conserved(engine, expected) == (15, 10)
    assert set(_ids(engine, "transactions_archive")) == {f"old-{i:06d}" for i in range(15, 25)}

    with engine.begin() as conn:
        postgres = engine.dialect.name == "postgresql"
        conn.execute(text("DROP TRIGGER refuse_delete" + (" ON transactions" if postgres else "")))
    run_retention(engine, policy, now=NOW)
    assert _assert_conserved(engine, expected) == (0, 25)


# ---------------------------------------------------------------------------------------------------------
# Retention run for real — by the CLI and by the job — tells the API workers' feature state: the shared
# feed's epoch moves, and a keeper holding the archived rows sees it and reloads without them.


@pytest.mark.parametrize("entry", ["cli", "job"])
def test_retention_run_by_the_cli_or_the_job_moves_the_feature_state_epoch(
    db_url: str, redis_url: str, entry: str
) -> None:
    import redis
    from typer.testing import CliRunner

    from ticketguard.cli import app
    from ticketguard.features.specs import FeatureParams
    from ticketguard.scoring.online import StateKeeper, redis_client, shared_feed

    engine = make_engine(db_url)
    with engine.begin() as conn:
        bulk_insert(conn, tables.transactions, _transactions(30, 200, "old"))
        bulk_insert(conn, tables.transactions, _transactions(5, 1, "new"))
    settings = Settings(database_url=db_url, redis_url=redis_url, api_workers=2)
    keeper = StateKeeper.from_settings(settings, engine, FeatureParams(), redis_client(settings))
    client = redis.Redis.from_url(redis_url)
    try:
        assert keeper is not None
        assert keeper.shared
        assert keeper.rebuild()
        assert keeper._state is not None
        assert keeper._state.rows == 35
        epoch_key = shared_feed(settings, client).epoch_key
        before = int(client.get(epoch_key) or 0)

        command = ["retention", "run"] if entry == "cli" else ["jobs", "run", "retention"]
        env = {"COLUMNS": "200", "DATABASE_URL": db_url, "REDIS_URL": redis_url, "ENVIRONMENT": "development"}
        result = CliRunner().invoke(app, command, env=env)
        assert result.exit_code == 0, result.output
        assert _assert_conserved(
            engine, {f"old-{i:06d}" for i in range(30)} | {f"new-{i:06d}" for i in range(5)}
        )
        assert len(_ids(engine, "transactions_archive")) == 30

        assert int(client.get(epoch_key) or 0) == before + 1
        keeper.sync()
        assert not keeper.ready  # it saw the new epoch
        assert keeper.rebuild()
        assert keeper._state.rows == 5
    finally:
        client.close()
        engine.dispose()


def test_sessions_are_deleted_only_strictly_past_the_cutoff(engine: Engine) -> None:
    """RETENTION_SESSIONS_DAYS after expiry or revocation: a session that ended at the cutoff itself stays."""
    policy = policy_from_settings(Settings(retention_batch_rows=10))
    cutoff = policy.session_cutoff(NOW)
    tick = timedelta(microseconds=1)
    with engine.begin() as conn:
        conn.execute(tables.admin_users.insert().values(id=1, username="ana", password_hash="x"))
        conn.execute(
            tables.admin_sessions.insert(),
            [
                {"id": "a" * 64, "admin_user_id": 1, "expires_at": cutoff, "revoked_at": None},
                {
                    "id": "b" * 64,
                    "admin_user_id": 1,
                    "expires_at": NOW + timedelta(hours=1),
                    "revoked_at": cutoff,
                },
                {"id": "c" * 64, "admin_user_id": 1, "expires_at": cutoff - tick, "revoked_at": None},
                {
                    "id": "d" * 64,
                    "admin_user_id": 1,
                    "expires_at": NOW + timedelta(hours=1),
                    "revoked_at": cutoff - tick,
                },
            ],
        )
    report = run_retention(engine, policy, now=NOW)
    assert report.counts()["admin_sessions.deleted"] == 2
    with engine.connect() as conn:
        assert sorted(conn.execute(select(tables.admin_sessions.c.id)).scalars()) == ["a" * 64, "b" * 64]
