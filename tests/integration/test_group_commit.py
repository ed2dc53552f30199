"""The group committer writes large bursts: on PostgreSQL each batch is one statement, so a burst larger than
one statement can bind (65,535 values) is split into batches of PG_STATEMENT_ROWS; every answer lands once.
Its commits are durable on the very connections it writes with, whatever the database's default."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select, text

from ticketguard import tables
from ticketguard.scoring.store import PG_STATEMENT_ROWS, GroupCommitter, PendingWrite


def _write(tid: str, now: datetime) -> PendingWrite:
    transaction = {
        "transaction_id": tid,
        "wallet_address": "0x" + uuid.uuid4().hex[:8] * 5,
        "event_id": "evt-burst",
        "ticket_id": f"tk-{tid}",
        "price_paid": Decimal("12.5"),
        "payment_method": "card",
        "is_resale": False,
        "status": "approved",
        "timestamp": now,
        "seller_address": None,
        "ip_address": "198.51.100.9",
        "country": None,
        "latitude": None,
        "longitude": None,
        "source": "api",
    }
    prediction = {
        "transaction_id": tid,
        "fraud_score": 0.1,
        "decision": "APPROVED",
        "features": {"txn_velocity_1h": 0.0},
        "model_version": "m",
        "timestamp": now,
        "confidence": 0.9,
        "top_features": [],
        "reasons": [],
        "degraded": False,
        "degraded_reason": None,
        "request_hash": "h" * 64,
        "latency_ms": 1.0,
    }
    audit = {
        "transaction_id": tid,
        "action": "fraud_decision",
        "actor": None,
        "decision": "APPROVED",
        "fraud_score": 0.1,
        "model_version": "m",
        "degraded": False,
        "request_hash": "h" * 64,
        "metadata": {},
        "timestamp": now,
    }
    return PendingWrite(transaction, prediction, audit)


def test_a_burst_larger_than_one_statement_lands_once(engine: Engine) -> None:
    committer = GroupCommitter(engine, max_batch=10_000)
    published: list[int] = []
    committer.after_commit = lambda rows: published.append(len(rows))
    now = datetime.now(UTC)
    writes = [_write(f"burst-{i}", now) for i in range(2_000)]  # × ~40 binds: past 65,535 in one
    for w in writes:
        committer._queue.put(w)  # queued before the thread starts: it takes them in as few batches as it may
    committer.start()
    outcomes = [w.future.result(timeout=30) for w in writes]
    thread = committer._thread
    committer.stop()
    assert thread is not None
    assert not thread.is_alive()  # stop ends the writer thread
    assert {o.status for o in outcomes} == {"written"}
    assert sum(published) == len(writes)
    if engine.dialect.name == "postgresql":
        assert committer.max_batch == PG_STATEMENT_ROWS
        assert committer.batches >= 2
    with engine.connect() as conn:
        for table in (tables.transactions, tables.fraud_predictions, tables.scoring_audit):
            count = conn.execute(
                select(func.count()).select_from(table).where(table.c.transaction_id.like("burst-%"))
            ).scalar()
            assert count == len(writes), table.name


def test_the_committer_commits_durably_on_every_connection_it_writes_with(
    db_url: str, tmp_path: Path
) -> None:
    """The API's own engine and committer; the durability setting read on the connection that has just
    written an answer, in the batch path and in the row-by-row path. On PostgreSQL the database's default is
    turned to ``synchronous_commit = off`` first (a role or server default can be): the committer's sessions
    must still commit with ``on``. On SQLite: ``synchronous = FULL`` (2)."""
    from ticketguard.api.app import api_engine
    from ticketguard.config import Settings

    postgres = db_url.startswith("postgresql")
    if postgres:
        admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{admin.url.database}" SET synchronous_commit = off'))
        admin.dispose()
    engine = api_engine(Settings(database_url=db_url, data_dir=tmp_path, _env_file=None))  # type: ignore[call-arg]
    seen: list[tuple[str, Any]] = []
    path = ["batch"]

    @event.listens_for(engine, "after_cursor_execute")
    def _durability_of_this_connection(
        _conn: Any, cursor: Any, statement: str, _params: Any, _ctx: Any, _many: bool
    ) -> None:
        if "INSERT INTO fraud_predictions" in statement:
            probe = "SHOW synchronous_commit" if postgres else "PRAGMA synchronous"
            seen.append((path[0], cursor.connection.execute(probe).fetchone()[0]))

    def commit_all(writes: list[PendingWrite]) -> list[str]:
        committer = GroupCommitter(engine)
        for w in writes:
            committer._queue.put(w)  # queued before the thread starts: one batch
        committer.start()
        outcomes = [w.future.result(timeout=30).status for w in writes]
        committer.stop()
        return outcomes

    now = datetime.now(UTC)
    # The batch path (PostgreSQL: one autocommitted statement), then the row-by-row path (a batch that holds
    # one id twice is written one by one: the first lands, the second is resolved as a duplicate).
    assert commit_all([_write(f"durable-{i}", now) for i in range(5)]) == ["written"] * 5
    path[0] = "row by row"
    assert commit_all([_write("durable-twin", now), _write("durable-twin", now)]) == ["written", "duplicate"]
    durable = "on" if postgres else 2
    assert seen == [("batch", durable), ("row by row", durable)]
    if postgres:  # the test's premise: a new session of this database defaults to off
        other = create_engine(db_url)
        with other.connect() as fresh:
            assert fresh.execute(text("SHOW synchronous_commit")).scalar() == "off"
        other.dispose()
    engine.dispose()


def test_a_database_that_cannot_be_reached_fails_every_waiting_write_at_once() -> None:
    """Requests wait on their write's future: a batch that fails hands the failure to each of them (the
    request then answers with the failure policy) instead of leaving them to wait for their deadline."""
    from ticketguard.kit.db import make_engine
    from ticketguard.scoring.store import DatabaseUnavailable

    dead = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/nowhere")  # nothing listens on port 9
    committer = GroupCommitter(dead)
    writes = [_write(f"lost-{i}", datetime.now(UTC)) for i in range(3)]
    for w in writes:
        committer._queue.put(w)
    committer.start()
    errors = [w.future.exception(timeout=20) for w in writes]
    committer.stop()
    dead.dispose()
    assert all(isinstance(e, DatabaseUnavailable) for e in errors), errors
    assert "database write failed" in str(errors[0])
