"""`ticketguard worker`: one process runs the schedule, and only one at a time.

The worker takes the database lock "worker" first (advisory lock on PostgreSQL, lease row on SQLite). A
second worker refuses to start, or with ``wait`` stands by until the first one stops — a warm spare.
Jobs run in a small thread pool via APScheduler (cron triggers in UTC); each run takes its own job lock
too, so a hand-started `jobs run` and the schedule never overlap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, func, select

from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.jobs.locks import NamedLock, current_holder, make_lock
from ticketguard.jobs.registry import JOBS, Job, get_job
from ticketguard.jobs.runner import abandon_running, run_job
from ticketguard.jobs.schedule import ScheduledJob, schedule_for

log = logging.getLogger(__name__)

WORKER_LOCK = "worker"
# Enough threads that a long retrain or ETL never starves the 5-minute view refresh.
WORKER_THREADS = 4


class WorkerAlreadyRunning(RuntimeError):
    """Another worker holds the lock."""


def build_scheduler(
    settings: Settings,
    engine: Engine,
    schedule: Sequence[ScheduledJob] | None = None,
    jobs: Mapping[str, Job] = JOBS,
) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        timezone="UTC",
        executors={"default": ThreadPoolExecutor(WORKER_THREADS)},
        job_defaults={"coalesce": True, "max_instances": 1},
    )
    for entry in schedule if schedule is not None else schedule_for(settings):
        get_job(entry.job, jobs)  # a schedule naming an unknown job fails at start, not at 03:00 on Sunday
        scheduler.add_job(
            run_job,
            entry.trigger(),
            args=[entry.job, settings, engine],
            kwargs={"trigger": "schedule", "jobs": jobs},
            id=entry.job,
            name=entry.job,
            misfire_grace_time=int(entry.grace.total_seconds()),
        )
    return scheduler


def missed_jobs(engine: Engine, schedule: Sequence[ScheduledJob], now: datetime) -> list[str]:
    """Jobs whose latest due time passed with no run started since (the worker was down then).

    A run that started after that time counts whatever its outcome: a job that failed is not retried
    in a loop by a crash-restarting worker."""
    runs = tables.job_runs
    missed: list[str] = []
    with engine.connect() as conn:
        for entry in schedule:
            due = entry.previous_fire(now)
            if due is None:
                continue
            started = conn.execute(
                select(func.count()).where(runs.c.job_name == entry.job, runs.c.started_at >= due)
            ).scalar_one()
            if not started:
                missed.append(entry.job)
    return missed


def acquire_worker_lock(
    settings: Settings, engine: Engine, *, wait: bool, stop: threading.Event, poll_seconds: float = 2.0
) -> NamedLock | None:
    """The worker lock; None if ``stop`` was set while waiting for it."""
    lock = make_lock(engine, WORKER_LOCK, lease=timedelta(seconds=settings.worker_lock_lease_seconds))
    if lock.acquire(wait=False):
        return lock
    holder = current_holder(engine, WORKER_LOCK) or "another process"
    if not wait:
        raise WorkerAlreadyRunning(f"another worker is running ({holder}); only one may run at a time")
    log.warning("another worker is running; waiting for its lock", extra={"holder": holder})
    while not stop.wait(poll_seconds):
        if lock.acquire(wait=False):
            return lock
    return None


def run_worker(
    settings: Settings,
    engine: Engine,
    *,
    stop: threading.Event,
    wait: bool = False,
    schedule: Sequence[ScheduledJob] | None = None,
    jobs: Mapping[str, Job] = JOBS,
    check_seconds: float = 5.0,
    on_started: Callable[[BackgroundScheduler], None] | None = None,
) -> list[str]:
    """Hold the worker lock and run the schedule until ``stop`` is set or the lock is lost.

    On stop, running jobs get WORKER_SHUTDOWN_GRACE_SECONDS to finish; those still running then are
    recorded as abandoned and their names returned — the caller exits the process, which ends them (their
    open transaction rolls back; each job is safe to re-run and resumes from its checkpoint).

    Raises WorkerAlreadyRunning (without ``wait``) when another worker holds the lock, and RuntimeError
    when the lock is lost while running (the caller exits non-zero so a supervisor restarts it)."""
    lock = acquire_worker_lock(settings, engine, wait=wait, stop=stop, poll_seconds=min(check_seconds, 2.0))
    if lock is None:
        return []
    if schedule is None:
        schedule = schedule_for(settings)
    scheduler = build_scheduler(settings, engine, schedule, jobs)
    # Runs missed while no worker was up run once now (a restart at 02:05 must not skip a day's ETL).
    now = datetime.now(UTC)
    for name in missed_jobs(engine, schedule, now):
        scheduler.add_job(
            run_job,
            "date",
            run_date=now,
            args=[name, settings, engine],
            kwargs={"trigger": "catch-up", "jobs": jobs},
            id=f"{name}:catch-up",
            name=f"{name} (catch-up)",
            misfire_grace_time=None,
        )
        log.info("missed run scheduled now", extra={"job": name})
    lost = False
    abandoned: list[str] = []
    try:
        scheduler.start()
        log.info("worker started", extra={"holder": lock.holder, "jobs": [e.job for e in schedule]})
        if on_started is not None:
            on_started(scheduler)
        while not stop.wait(check_seconds):
            if not lock.is_held():
                lost = True
                log.error("worker lock lost; stopping so that no two workers run the schedule")
                break
    finally:
        # Let running jobs finish: each is safe to interrupt, but finishing is cheaper than redoing.
        abandoned = stop_scheduler(scheduler, engine, settings.worker_shutdown_grace_seconds)
        lock.release()
        log.info("worker stopped", extra={"abandoned": abandoned})
    if lost:
        raise RuntimeError("worker lock lost")
    return abandoned


def stop_scheduler(scheduler: BackgroundScheduler, engine: Engine, grace_seconds: float) -> list[str]:
    """Stop starting jobs and wait up to ``grace_seconds`` for the running ones; mark those still running
    then as abandoned (the process is about to end them) and return their names."""
    finished = threading.Event()

    def _shutdown() -> None:
        scheduler.shutdown(wait=True)
        finished.set()

    threading.Thread(target=_shutdown, name="scheduler-shutdown", daemon=True).start()
    if finished.wait(grace_seconds):
        return []
    names = abandon_running(engine, f"worker stopped before the job finished ({grace_seconds:g} s grace)")
    log.warning("jobs abandoned at shutdown", extra={"jobs": names})
    return names
