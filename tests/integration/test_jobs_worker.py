"""Jobs, locks and the worker on real SQLite and PostgreSQL: runs are recorded, one worker at a time,
a dead holder's lock frees, and the worker really runs its schedule."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text
from waiting import wait_until

from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.jobs.locks import PostgresAdvisoryLock, SqliteLeaseLock, current_holder, make_lock
from ticketguard.jobs.registry import JOBS, Job, JobContext
from ticketguard.jobs.runner import run_job
from ticketguard.jobs.schedule import ScheduledJob
from ticketguard.jobs.worker import WorkerAlreadyRunning, acquire_worker_lock, missed_jobs, run_worker
from ticketguard.kit.db import make_engine

SETTINGS = Settings(worker_lock_lease_seconds=5)


def _runs(engine: Engine) -> list[tuple[str, str, str]]:
    runs = tables.job_runs
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(select(runs.c.job_name, runs.c.trigger, runs.c.status).order_by(runs.c.id))
        ]


def test_a_manual_run_is_recorded_with_its_counts_and_re_runs_are_safe(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            tables.events.insert().values(
                event_id="EV1",
                name="e",
                organizer_id="o",
                capacity=10,
                face_value=100,
                on_sale_at=datetime(2026, 1, 1, tzinfo=UTC),
                starts_at=datetime(2027, 1, 1, tzinfo=UTC),
            )
        )
    first = run_job("refresh-views", SETTINGS, engine)
    second = run_job("refresh-views", SETTINGS, engine)
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert first.counts["event_analytics.rows"] == second.counts["event_analytics.rows"] == 1
    retention = run_job("retention", SETTINGS, engine)
    assert retention.status == "succeeded"
    assert retention.counts["transactions.archived"] == 0
    with engine.connect() as conn:
        row = conn.execute(select(tables.job_runs).where(tables.job_runs.c.id == first.id)).one()
    assert row.status == "succeeded"
    assert row.finished_at >= row.started_at
    assert row.counts["event_analytics.rows"] == 1
    assert row.runner.endswith(f":{os.getpid()}")


def test_a_failing_job_is_recorded_as_failed_with_its_error(engine: Engine) -> None:
    def broken(ctx: JobContext) -> dict[str, int]:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
        return {}

    jobs = {**JOBS, "broken": Job("broken", "reads a missing table", broken)}
    run = run_job("broken", SETTINGS, engine, jobs=jobs)
    assert run.status == "failed"
    assert "no_such_table" in (run.error or "")
    assert _runs(engine) == [("broken", "manual", "failed")]
    with pytest.raises(ValueError, match="unknown job 'nope'; accepted: etl, refresh-views"):
        run_job("nope", SETTINGS, engine)


def test_a_job_already_running_elsewhere_is_skipped_and_a_dead_run_is_marked_abandoned(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            tables.job_runs.insert().values(
                job_name="data-quality",
                trigger="schedule",
                status="running",
                started_at=datetime.now(UTC) - timedelta(hours=1),
            )
        )
    other = make_lock(engine, "job:data-quality", lease=timedelta(seconds=5))
    assert other.acquire()
    try:
        skipped = run_job("data-quality", SETTINGS, engine)
    finally:
        other.release()
    assert skipped.status == "skipped"
    assert skipped.error is not None
    assert skipped.error.startswith("already running")
    done = run_job("data-quality", SETTINGS, engine)
    assert done.status == "succeeded"
    assert _runs(engine) == [
        ("data-quality", "schedule", "abandoned"),
        ("data-quality", "manual", "skipped"),
        ("data-quality", "manual", "succeeded"),
    ]


def test_one_worker_lock_at_a_time(engine: Engine) -> None:
    stop = threading.Event()
    first = acquire_worker_lock(SETTINGS, engine, wait=False, stop=stop)
    assert first is not None
    try:
        assert current_holder(engine, "worker") == first.holder
        with pytest.raises(WorkerAlreadyRunning, match="another worker is running"):
            acquire_worker_lock(SETTINGS, engine, wait=False, stop=stop)
    finally:
        first.release()
    assert current_holder(engine, "worker") is None
    second = acquire_worker_lock(SETTINGS, engine, wait=False, stop=stop)
    assert second is not None
    second.release()


def test_sqlite_lease_of_a_dead_holder_expires_and_a_live_holder_keeps_it(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    lease = timedelta(seconds=1.5)  # heartbeats every 0.5 s: a loaded machine may delay one or two
    dead = SqliteLeaseLock(engine, "worker", lease)
    assert dead.acquire()
    dead._stop.set()  # the holder dies: no more heartbeats
    alive = SqliteLeaseLock(engine, "other", lease)
    assert alive.acquire()
    taker = SqliteLeaseLock(engine, "worker", lease)
    assert not taker.acquire()
    wait_until(taker.acquire, what="the dead holder's lease ran out")
    assert not SqliteLeaseLock(engine, "other", lease).acquire()  # heartbeats kept this one
    assert alive.is_held()
    for lock in (taker, alive):
        lock.release()
    engine.dispose()


@pytest.mark.postgres
def test_postgres_lock_frees_when_its_holder_session_dies(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    holder = PostgresAdvisoryLock(engine, "worker")
    assert holder.acquire()
    assert not PostgresAdvisoryLock(engine, "worker").acquire()
    with engine.connect() as conn:
        pid = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"),
            {"n": f"ticketguard {holder.holder}"[:63]},
        ).scalar_one()
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    wait_until(lambda: not holder.is_held(), what="the holder notices its session died")
    successor = PostgresAdvisoryLock(engine, "worker")
    assert successor.acquire()
    successor.release()
    engine.dispose()


def test_the_worker_runs_its_schedule_and_stops_cleanly(engine: Engine) -> None:
    stop = threading.Event()
    schedule = [ScheduledJob("refresh-views", every=timedelta(seconds=0.5))]
    thread = threading.Thread(
        target=run_worker,
        kwargs={
            "settings": SETTINGS,
            "engine": engine,
            "stop": stop,
            "schedule": schedule,
            "check_seconds": 0.2,
        },
    )
    thread.start()
    wait_until(lambda: len(_runs(engine)) >= 2, what="two scheduled runs")
    assert current_holder(engine, "worker") is not None
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    runs = _runs(engine)
    assert len(runs) >= 2
    assert set(runs) == {("refresh-views", "schedule", "succeeded")}
    assert current_holder(engine, "worker") is None


def test_a_second_worker_process_refuses_to_start(db_url: str) -> None:
    engine = make_engine(db_url)
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "ENVIRONMENT": "development",
        "WORKER_LOCK_LEASE_SECONDS": "5",
    }
    command = [sys.executable, "-c", "from ticketguard.cli import app; app()", "worker"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:

        def holds_the_lock() -> bool:
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            return current_holder(engine, "worker") is not None

        wait_until(holds_the_lock, timeout=60, what="the first worker holds the lock")
        assert current_holder(engine, "worker") is not None
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode == 3
        assert "another worker is running" in second.stderr
    finally:
        first.terminate()
        _, stderr = first.communicate(timeout=20)
    assert first.returncode == 0, stderr
    assert '"msg": "worker stopped"' in stderr
    assert current_holder(engine, "worker") is None
    engine.dispose()


def test_a_run_missed_while_no_worker_was_up_runs_once_at_start(engine: Engine) -> None:
    now = datetime.now(UTC)
    # Both jobs fall due once an hour, half an hour from now: each was last due ~30 minutes ago and is
    # next due in ~30 minutes, so no due time passes while the test runs (a fixed "*/5" or ":15" did).
    minute = (now.minute + 30) % 60
    schedule = [
        ScheduledJob("refresh-views", cron=f"{minute} * * * *"),
        ScheduledJob("data-quality", cron=f"{minute} * * * *"),
    ]
    with engine.begin() as conn:  # data-quality already ran since it was last due; refresh-views did not
        conn.execute(
            tables.job_runs.insert().values(
                job_name="data-quality",
                trigger="schedule",
                status="failed",
                started_at=now - timedelta(seconds=1),
            )
        )
    assert missed_jobs(engine, schedule, now) == ["refresh-views"]

    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker,
        kwargs={
            "settings": SETTINGS,
            "engine": engine,
            "stop": stop,
            "schedule": schedule,
            "check_seconds": 0.2,
        },
    )
    thread.start()
    wait_until(lambda: ("refresh-views", "catch-up", "succeeded") in _runs(engine), what="the catch-up run")
    stop.set()
    thread.join(timeout=10)
    assert ("refresh-views", "catch-up", "succeeded") in _runs(engine)
    assert [r for r in _runs(engine) if r[0] == "data-quality"] == [("data-quality", "schedule", "failed")]
    assert missed_jobs(engine, schedule, datetime.now(UTC)) == []
