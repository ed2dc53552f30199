"""What the PostgreSQL query benchmarks share: a migrated database of their own, dropped afterwards unless
kept, filled by their SQL, and median/p95 timings of a query."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import Engine, make_url, text

from ticketguard.kit import migrate


@contextmanager
def scratch_database(admin_url: str, prefix: str, *, keep: bool) -> Iterator[str]:
    """A new database beside ``admin_url``'s, migrated to head; yields its URL; dropped on exit unless
    ``keep`` (its name is printed then)."""
    admin = make_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and p95 of ``repeat`` calls in ms, after one warm-up call (cache and plan)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def fill(engine: Engine, sql: str, params: dict[str, object], rows: int, days: float) -> None:
    """Run the benchmark's fill statements (``;``-newline separated) in one transaction, ANALYZE, and say
    how long it took."""
    start = time.perf_counter()
    with engine.begin() as conn:
        for statement in sql.strip().split(";\n"):
            conn.execute(text(statement), params)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    print(f"filled {rows:,} scored transactions over {days:g} days in {time.perf_counter() - start:.1f} s")
