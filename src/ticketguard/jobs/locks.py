"""Named locks that keep one worker (and one run of each job) at a time, across processes and hosts.

PostgreSQL: a session advisory lock on a connection the holder keeps open. If the holder dies, the
server closes its session and the lock is free at once; the holder checks its connection to notice a
lost lock. SQLite: a lease row in ``worker_locks`` renewed by a heartbeat thread; a holder that stops
heartbeating (killed, hung) loses it when the lease expires.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from ticketguard import tables

log = logging.getLogger(__name__)


def holder_name() -> str:
    """host:pid:random — unique per process and readable in `jobs status` and pg_stat_activity."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class NamedLock(Protocol):
    name: str
    holder: str

    def acquire(self, *, wait: bool = False, poll_seconds: float = 1.0) -> bool: ...

    def is_held(self) -> bool: ...

    def release(self) -> None: ...


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key per lock name (PostgreSQL advisory locks take a bigint)."""
    return int.from_bytes(hashlib.sha256(f"ticketguard:{name}".encode()).digest()[:8], "big", signed=True)


class PostgresAdvisoryLock:
    def __init__(self, engine: Engine, name: str, holder: str | None = None) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder or holder_name()
        self._conn: Connection | None = None

    def acquire(self, *, wait: bool = False, poll_seconds: float = 1.0) -> bool:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(
            text("SELECT set_config('application_name', :n, false)"), {"n": f"ticketguard {self.holder}"[:63]}
        )
        key = advisory_key(self.name)
        while True:
            if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one():
                self._conn = conn
                return True
            if not wait:
                conn.close()
                return False
            # Polling rather than pg_advisory_lock(): a blocking wait would hit the statement timeout and
            # could not be interrupted by a signal.
            time.sleep(poll_seconds)

    def is_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
        except DBAPIError:
            log.error("worker lock connection lost", extra={"lock": self.name})
            self._conn = None
            return False
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": advisory_key(self.name)})
        except DBAPIError:
            pass  # the session is gone, and the lock with it
        finally:
            self._conn.close()
            self._conn = None


class SqliteLeaseLock:
    def __init__(self, engine: Engine, name: str, lease: timedelta, holder: str | None = None) -> None:
        self.engine = engine
        self.name = name
        self.lease = lease
        self.holder = holder or holder_name()
        self._held = False
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def _try_take(self) -> bool:
        now = datetime.now(UTC)
        locks = tables.worker_locks
        statement = sqlite_insert(locks).values(
            name=self.name, holder=self.holder, acquired_at=now, heartbeat_at=now, expires_at=now + self.lease
        )
        statement = statement.on_conflict_do_update(
            index_elements=[locks.c.name],
            set_={
                "holder": statement.excluded.holder,
                "acquired_at": statement.excluded.acquired_at,
                "heartbeat_at": statement.excluded.heartbeat_at,
                "expires_at": statement.excluded.expires_at,
            },
            # Take it over only from a holder whose lease has run out.
            where=(locks.c.expires_at < now) | (locks.c.holder == self.holder),
        )
        with self.engine.begin() as conn:
            conn.execute(statement)
            holder = conn.execute(select(locks.c.holder).where(locks.c.name == self.name)).scalar_one()
        return bool(holder == self.holder)

    def acquire(self, *, wait: bool = False, poll_seconds: float = 1.0) -> bool:
        while not self._try_take():
            if not wait:
                return False
            time.sleep(poll_seconds)
        self._held = True
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._beat, name=f"lease:{self.name}", daemon=True)
        self._heartbeat.start()
        return True

    def _renew(self) -> bool:
        now = datetime.now(UTC)
        locks = tables.worker_locks
        with self.engine.begin() as conn:
            renewed = conn.execute(
                locks.update()
                .where(locks.c.name == self.name, locks.c.holder == self.holder, locks.c.expires_at >= now)
                .values(heartbeat_at=now, expires_at=now + self.lease)
            ).rowcount
        return bool(renewed)

    def _beat(self) -> None:
        interval = self.lease.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                if not self._renew():
                    log.error("worker lease lost", extra={"lock": self.name})
                    self._held = False
                    return
            except Exception:  # a busy database now and then must not kill the heartbeat
                log.exception("worker lease heartbeat failed", extra={"lock": self.name})

    def is_held(self) -> bool:
        return self._held

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=10)
            self._heartbeat = None
        if self._held:
            locks = tables.worker_locks
            with self.engine.begin() as conn:
                conn.execute(locks.delete().where(locks.c.name == self.name, locks.c.holder == self.holder))
        self._held = False


def make_lock(engine: Engine, name: str, *, lease: timedelta) -> NamedLock:
    if engine.dialect.name == "postgresql":
        return PostgresAdvisoryLock(engine, name)
    return SqliteLeaseLock(engine, name, lease)


def current_holder(engine: Engine, name: str) -> str | None:
    """Who holds a lock now, if anyone (for messages and `jobs status`)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            key = advisory_key(name)
            row = conn.execute(
                text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND ((l.classid::bigint << 32) | l.objid::bigint) = :k"
                ),
                {"k": key},
            ).first()
            return None if row is None else str(row[0]).removeprefix("ticketguard ")
        locks = tables.worker_locks
        row = conn.execute(
            select(locks.c.holder).where(locks.c.name == name, locks.c.expires_at >= datetime.now(UTC))
        ).first()
        return None if row is None else str(row[0])
