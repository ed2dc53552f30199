"""The scoring store: reading a stored answer, the list look-ups, and writing answered requests.

Writes go through `GroupCommitter`: one thread per process takes every answer that is waiting and writes
the transactions, predictions and audit rows of all of them in **one** database transaction (on PostgreSQL
one statement of three multi-row INSERTs in CTEs, autocommitted: one round trip; elsewhere three INSERTs
and a commit). A request waits for its batch's commit before it answers, so durability
stays on and every 200 has its rows; concurrent requests share the commit's cost. A batch that hits a
unique-key conflict (a duplicate `transaction_id` racing in from another worker) is rolled back and written
row by row, so the others still land and the duplicate is resolved against the stored answer.
"""

from __future__ import annotations

import functools
import logging
import queue
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, String, bindparam, insert, literal, or_, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from ticketguard import tables
from ticketguard.kit.outage import outage_log
from ticketguard.kit.types import UTCDateTime
from ticketguard.scoring.domain import Answer, ListStatus

log = logging.getLogger(__name__)


class DatabaseUnavailable(RuntimeError):
    """The database could not be read or written; the message says which step failed."""


@dataclass(frozen=True)
class StoredAnswer:
    answer: Answer
    request_hash: str


def find_answer(conn: Connection, transaction_id: str) -> StoredAnswer | None:
    """The answer stored for this transaction id (prediction joined with its audit row), if any."""
    p = tables.fraud_predictions
    a = tables.scoring_audit
    row = conn.execute(
        select(
            p.c.fraud_score,
            p.c.decision,
            p.c.confidence,
            p.c.top_features,
            p.c.reasons,
            p.c.model_version,
            p.c.degraded,
            p.c.degraded_reason,
            p.c.request_hash,
            a.c.metadata,
        )
        .select_from(p.outerjoin(a, a.c.transaction_id == p.c.transaction_id))
        .where(p.c.transaction_id == transaction_id)
    ).first()
    if row is None:
        return None
    meta = row.metadata or {}
    answer = Answer(
        transaction_id=transaction_id,
        fraud_score=float(row.fraud_score) if row.fraud_score is not None else float("nan"),
        decision=str(row.decision),
        confidence=float(row.confidence or 0.0),
        # In the answer's own key order: JSONB (PostgreSQL) stores object keys sorted by length, and a
        # replay must be byte-for-byte the first answer.
        top_features=[
            {"feature": f.get("feature"), "contribution": f.get("contribution"), "value": f.get("value")}
            for f in row.top_features or []
        ],
        reasons=list(row.reasons or []),
        model_version=str(row.model_version or ""),
        bias=float(meta.get("bias", 0.0)),
        degraded=bool(row.degraded),
        degraded_reasons=[r for r in (row.degraded_reason or "").split("; ") if r],
        explanation=str(meta.get("explanation", "approximate")),
    )
    return StoredAnswer(answer, str(row.request_hash or ""))


def _active(table: Any, wallet: Any, at: Any) -> Any:
    return (
        select(literal(1))
        .where(
            table.c.wallet_address == wallet,
            table.c.timestamp <= at,
            or_(table.c.expires_at.is_(None), table.c.expires_at > at),
        )
        .exists()
    )


def list_status(blocked: bool, allowed: bool) -> ListStatus:
    reasons = []
    if blocked:
        reasons.append("wallet is on the blacklist")
    if allowed:
        reasons.append("wallet is on the allow list (VIP): 2FA and manual review skipped")
    return ListStatus(blocked=blocked, allowlisted=allowed, reasons=tuple(reasons))


def wallet_lists(conn: Connection, wallet: str, at: datetime) -> ListStatus:
    """Blacklist and allow list of the wallet at ``at`` (added before or at ``at``, not expired)."""
    row = conn.execute(
        select(
            _active(tables.blacklisted_wallets, wallet, at).label("blocked"),
            _active(tables.allowlisted_wallets, wallet, at).label("allowed"),
        )
    ).one()
    return list_status(bool(row.blocked), bool(row.allowed))


def _precheck_statement() -> Any:
    p = tables.fraud_predictions
    wallet = bindparam("wallet", type_=String())
    at = bindparam("at", type_=UTCDateTime())
    txn = bindparam("txn", type_=String())
    return select(
        select(literal(1)).where(p.c.transaction_id == txn).exists().label("stored"),
        _active(tables.blacklisted_wallets, wallet, at).label("blocked"),
        _active(tables.allowlisted_wallets, wallet, at).label("allowed"),
    )


_PRECHECK = _precheck_statement()  # built once: constructing it per request cost ~0.5 ms


def precheck(conn: Connection, transaction_id: str, wallet: str, at: datetime) -> tuple[bool, ListStatus]:
    """One round trip for what every request asks first: is an answer already stored for this id, and
    what do the wallet lists say."""
    row = conn.execute(_PRECHECK, {"txn": transaction_id, "wallet": wallet, "at": at}).one()
    return bool(row.stored), list_status(bool(row.blocked), bool(row.allowed))


def event_of_ticket(conn: Connection, ticket_id: str) -> str | None:
    """The event a known ticket belongs to (its earliest transaction), for requests without event_id."""
    x = tables.transactions
    return conn.execute(
        select(x.c.event_id).where(x.c.ticket_id == ticket_id).order_by(x.c.timestamp).limit(1)
    ).scalar()


# ------------------------------------------------------------------------------------------------ writes
@dataclass
class PendingWrite:
    transaction: dict[str, Any]
    prediction: dict[str, Any]
    audit: dict[str, Any]
    future: Future[WriteOutcome] = field(default_factory=Future)

    @property
    def transaction_id(self) -> str:
        return str(self.transaction["transaction_id"])


@dataclass(frozen=True)
class WriteOutcome:
    """``written``: our rows landed. ``duplicate``: another request stored an answer first (``stored``)."""

    status: str
    stored: StoredAnswer | None = None
    inserted: bool = True  # False: the transaction row existed (chain ETL, import); only the answer was added


def _insert_new_transactions(conn: Connection, batch: list[PendingWrite]) -> set[str]:
    """INSERT … ON CONFLICT DO NOTHING: the ids whose transaction row this statement wrote (an id already
    stored — a replay, a race with another worker, a row from the chain ETL — is left to `_write_one`)."""
    x = tables.transactions
    statement: Any
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        statement = postgresql.insert(x).on_conflict_do_nothing(index_elements=[x.c.transaction_id])
    else:
        from sqlalchemy.dialects import sqlite

        statement = sqlite.insert(x).on_conflict_do_nothing(index_elements=[x.c.transaction_id])
    result = conn.execute(statement.returning(x.c.transaction_id), [w.transaction for w in batch])
    return {str(tid) for tid in result.scalars()}


PG_STATEMENT_ROWS = 512  # answers per one-statement write on PostgreSQL (the batch cap there)
_BATCH_TABLES = (tables.transactions, tables.fraud_predictions, tables.scoring_audit)


@functools.lru_cache(maxsize=PG_STATEMENT_ROWS)  # one per batch size
def _batch_statement(dialect: Dialect, n: int, columns: tuple[tuple[str, ...], ...]) -> str:
    """The one-statement batch write for ``n`` rows with these columns (transactions, predictions, audit),
    in the driver's own placeholders: built once per shape and sent to the driver as it is (SQLAlchemy
    neither caches multi-row VALUES inside CTEs nor needs to see it: compiling and binding through it cost
    more than the write). Every placeholder carries its column's type: PostgreSQL types a multi-row VALUES
    list column by column across the rows, and an untyped NULL beside a typed value can resolve wrongly."""
    parts = []
    for table, cols in zip(_BATCH_TABLES, columns, strict=True):
        # VARCHAR without its length: a cast to VARCHAR(n) would cut a longer value where the column
        # refuses it.
        casts = [
            re.sub(r"^(VARCHAR|CHAR)\(\d+\)$", r"\1", table.c[c].type.compile(dialect=dialect)) for c in cols
        ]
        row = "(" + ", ".join(f"%s::{cast}" for cast in casts) + ")"
        # Names come from the metadata (``table.c[c]`` refuses any other), values only as parameters.
        quoted = ", ".join(f'"{table.c[c].name}"' for c in cols)
        parts.append(f"INSERT INTO {table.name} ({quoted}) VALUES {', '.join([row] * n)}")  # noqa: S608
    fresh = f"{parts[0]} ON CONFLICT (transaction_id) DO NOTHING RETURNING transaction_id"
    return f"WITH fresh AS ({fresh}), predictions AS ({parts[1]}), audits AS ({parts[2]}) SELECT * FROM fresh"  # noqa: S608


@functools.lru_cache(maxsize=8)
def _bind_processors(
    dialect: Dialect, columns: tuple[tuple[str, ...], ...]
) -> tuple[tuple[Callable[[Any], Any] | None, ...], ...]:
    """Each column type's conversion to what the driver takes (UTC timestamps, quantized money, JSON text):
    what SQLAlchemy would apply, looked up once."""
    return tuple(
        tuple(table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in cols)
        for table, cols in zip(_BATCH_TABLES, columns, strict=True)
    )


def _write_rows_postgres(conn: Connection, batch: list[PendingWrite]) -> list[PendingWrite]:
    """PostgreSQL: the whole batch in **one statement** (so one round trip, atomic on its own): the
    transactions by INSERT … ON CONFLICT DO NOTHING RETURNING in a CTE, the predictions and audit rows in two
    more. An id whose transaction row existed without an answer (chain ETL, import) gets its answer here as
    `_write_one` would give it; an id with a stored answer fails the unique index on predictions and the
    caller falls back to row by row. Returns the writes whose transaction row this statement wrote."""
    first = batch[0]
    columns = (tuple(first.transaction), tuple(first.prediction), tuple(first.audit))
    processors = _bind_processors(conn.dialect, columns)
    params: list[Any] = []  # in the statement's order: every transaction row, then predictions, then audits
    for part, (cols, procs) in enumerate(zip(columns, processors, strict=True)):
        for w in batch:
            row = (w.transaction, w.prediction, w.audit)[part]
            if len(row) != len(cols):
                raise ValueError("rows of one batch must have the same columns")
            for c, process in zip(cols, procs, strict=True):
                value = row[c]
                params.append(value if process is None or value is None else process(value))
    result = conn.exec_driver_sql(_batch_statement(conn.dialect, len(batch), columns), tuple(params))
    inserted = {str(tid) for tid in result.scalars()}
    return [w for w in batch if w.transaction_id in inserted]


def _write_rows(conn: Connection, batch: list[PendingWrite]) -> list[PendingWrite]:
    """The batch's rows in the caller's transaction; returns the writes that landed (the others' ids were
    already stored)."""
    inserted = _insert_new_transactions(conn, batch)
    fresh = [w for w in batch if w.transaction_id in inserted]
    if fresh:
        conn.execute(insert(tables.fraud_predictions), [w.prediction for w in fresh])
        conn.execute(insert(tables.scoring_audit), [w.audit for w in fresh])
    return fresh


_DURABLE = "ticketguard.durable_commits"  # key in a DBAPI connection's info: checked once per connection
_warned_not_durable = False


def ensure_durable_commits(conn: Connection) -> None:
    """Make this connection's commits durable before the committer writes an answer on it; once per DBAPI
    connection (the mark lives in its pool record), so a batch pays a dict look-up.

    PostgreSQL: a server, database or role default of ``synchronous_commit = off`` would acknowledge a
    commit before its WAL is flushed — a crash could then lose rows whose requests were already answered —
    so the session is set to ``on`` (``local``, ``remote_write``, ``on`` and ``remote_apply`` all wait for
    the local flush and are kept). SQLite: ``synchronous = FULL`` (the WAL is synced at every commit; the
    kit's NORMAL survives a crashed process but may lose the last commits to a power loss or OS crash)."""
    global _warned_not_durable
    if conn.info.get(_DURABLE):
        return
    if conn.dialect.name == "postgresql":
        if conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off":
            conn.exec_driver_sql("SET synchronous_commit = on")
            if not _warned_not_durable:
                _warned_not_durable = True
                log.warning("synchronous_commit is off by default here; the committer's sessions set it on")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA synchronous = FULL")
    if conn.in_transaction():
        conn.commit()  # a SET inside a transaction that later rolls back would be undone with it
    conn.info[_DURABLE] = True


def _write_one(engine: Engine, w: PendingWrite) -> WriteOutcome:
    """One request in its own transaction, resolving conflicts: a stored answer wins; a transaction row
    that exists without an answer (written by the chain ETL or an import) gets its prediction and audit."""
    for _ in range(2):
        try:
            with engine.connect() as conn:
                ensure_durable_commits(conn)
                with conn.begin():
                    stored = find_answer(conn, w.transaction_id)
                    if stored is not None:
                        return WriteOutcome("duplicate", stored)
                    x = tables.transactions
                    exists = conn.execute(
                        select(literal(1)).where(x.c.transaction_id == w.transaction_id)
                    ).first()
                    if exists is None:
                        conn.execute(insert(x), [w.transaction])
                    conn.execute(insert(tables.fraud_predictions), [w.prediction])
                    conn.execute(insert(tables.scoring_audit), [w.audit])
            return WriteOutcome("written", inserted=exists is None)
        except IntegrityError:
            continue  # lost a race with another worker: read what it stored
    with engine.connect() as conn:
        stored = find_answer(conn, w.transaction_id)
    if stored is None:
        raise DatabaseUnavailable(f"could not store transaction {w.transaction_id!r}: conflicting rows")
    return WriteOutcome("duplicate", stored)


class GroupCommitter:
    """Writes pending answers in batches from one background thread (see the module doc)."""

    def __init__(self, engine: Engine, *, max_batch: int = 256) -> None:
        self.engine = engine
        self.max_batch = max_batch
        # PostgreSQL: one autocommitted statement per batch (see `_write_rows_postgres`): one round trip
        # instead of BEGIN, three INSERTs and COMMIT.
        self._one_statement = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else None
        )
        if self._one_statement is not None:
            # One statement binds ~40 values per answer; PostgreSQL takes at most 65,535 per statement.
            self.max_batch = min(max_batch, PG_STATEMENT_ROWS)
        self._queue: queue.SimpleQueue[PendingWrite | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.batches = 0
        self.rows = 0
        self.on_batch: Callable[[int], None] | None = None  # e.g. a metrics histogram's observe
        # Called with the transaction rows of every commit, after it and before its requests are answered
        # (the online feature state's change feed). Must not raise.
        self.after_commit: Callable[[list[dict[str, Any]]], None] | None = None
        self._database = outage_log("database")

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        """The writer thread is alive (liveness: a worker whose committer died cannot answer)."""
        return self._thread is not None and self._thread.is_alive()

    def submit(self, write: PendingWrite) -> Future[WriteOutcome]:
        if self._thread is None:
            self.start()
        self._queue.put(write)
        return write.future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._stopping.set()
                    break
                batch.append(item)
            self._write(batch)
            if self._stopping.is_set() and self._queue.empty():
                return

    def _write(self, batch: list[PendingWrite]) -> None:
        live = [w for w in batch if w.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            self._write_batch(live)
        except Exception as exc:  # the futures carry it to each request; the thread must live on
            # The type only: driver messages quote the statement's parameters (wallets, IPs). Once per
            # outage and interval, not per batch.
            cause = exc.__cause__ if isinstance(exc, DatabaseUnavailable) and exc.__cause__ else exc
            self._database.failure(f"group commit: {type(getattr(cause, 'orig', None) or cause).__name__}")
            for w in live:
                if not w.future.done():
                    w.future.set_exception(exc)
        else:
            self._database.ok()

    def _committed(self, written: list[PendingWrite]) -> None:
        if written and self.after_commit is not None:
            self.after_commit([w.transaction for w in written])

    def _write_batch(self, batch: list[PendingWrite]) -> None:
        ids = [w.transaction_id for w in batch]
        rest = batch
        if len(set(ids)) == len(ids):
            try:
                if self._one_statement is not None:
                    with self._one_statement.connect() as conn:
                        ensure_durable_commits(conn)
                        fresh = _write_rows_postgres(conn, batch)
                    landed = {w.transaction_id for w in fresh}
                    for w in batch:  # answered here, onto a transaction row that was already stored
                        if w.transaction_id not in landed:
                            w.future.set_result(WriteOutcome("written", inserted=False))
                else:
                    with self.engine.connect() as conn:
                        ensure_durable_commits(conn)
                        with conn.begin():
                            fresh = _write_rows(conn, batch)
                self.batches += 1
                self.rows += len(fresh)
                if self.on_batch is not None:
                    self.on_batch(len(fresh))
                self._committed(fresh)
                for w in fresh:
                    w.future.set_result(WriteOutcome("written"))
                rest = [w for w in batch if not w.future.done()]
            except IntegrityError:
                log.info("group commit conflict: writing %d rows one by one", len(batch))
            except DBAPIError as exc:
                raise DatabaseUnavailable(f"database write failed: {type(exc.orig).__name__}") from exc
        for w in rest:
            try:
                outcome = _write_one(self.engine, w)
                if outcome.status == "written" and outcome.inserted:
                    self._committed([w])
                w.future.set_result(outcome)
            except DBAPIError as exc:
                w.future.set_exception(
                    DatabaseUnavailable(f"database write failed: {type(exc.orig).__name__}")
                )
            except DatabaseUnavailable as exc:
                w.future.set_exception(exc)
