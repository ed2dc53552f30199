"""Running one job: its own lock (no two runs of a job at once, whoever starts them), a job_runs row from
start to finish, and failures recorded rather than raised into the scheduler."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.jobs.locks import current_holder, make_lock
from ticketguard.jobs.registry import JOBS, Job, JobContext, JobSkipped, get_job

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000


@dataclass
class JobRun:
    id: int | None
    job: str
    trigger: str
    status: str  # succeeded | failed | skipped
    started_at: datetime
    finished_at: datetime
    counts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def _runner() -> str:
    return f"{socket.gethostname()[:100]}:{os.getpid()}"


def _lease(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.worker_lock_lease_seconds)


def _jsonable(counts: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in counts.items():
        out[str(key)] = value if isinstance(value, int | float | str | bool) or value is None else str(value)
    return out


def run_job(
    name: str,
    settings: Settings,
    engine: Engine,
    *,
    trigger: str = "manual",
    jobs: Mapping[str, Job] = JOBS,
) -> JobRun:
    """Run one job now and record it. Never raises for the job's own failure: that is in the result."""
    job = get_job(name, jobs)
    runs = tables.job_runs
    lock = make_lock(engine, f"job:{job.name}", lease=_lease(settings))
    started = datetime.now(UTC)
    if not lock.acquire(wait=False):
        holder = current_holder(engine, f"job:{job.name}") or "another process"
        message = f"already running ({holder}); this run was skipped"
        with engine.begin() as conn:
            run_id = conn.execute(
                runs.insert()
                .values(
                    job_name=job.name,
                    trigger=trigger,
                    status="skipped",
                    started_at=started,
                    finished_at=started,
                    error=message,
                    runner=_runner(),
                )
                .returning(runs.c.id)
            ).scalar_one()
        log.warning("job skipped", extra={"job": job.name, "reason": message})
        return JobRun(run_id, job.name, trigger, "skipped", started, started, error=message)
    try:
        run_id = None
        if job.record_idle:
            with engine.begin() as conn:
                # We hold the job's lock: a run still marked running was cut off (killed worker, lost host).
                conn.execute(
                    runs.update()
                    .where(runs.c.job_name == job.name, runs.c.status == "running")
                    .values(status="abandoned", finished_at=started, error="the process running it stopped")
                )
                run_id = conn.execute(
                    runs.insert()
                    .values(
                        job_name=job.name,
                        trigger=trigger,
                        status="running",
                        started_at=started,
                        runner=_runner(),
                    )
                    .returning(runs.c.id)
                ).scalar_one()
            log.info("job started", extra={"job": job.name, "trigger": trigger, "run_id": run_id})
        clock = time.perf_counter()
        status, counts, error = "succeeded", {}, None
        try:
            counts = _jsonable(
                job.run(JobContext(settings=settings, engine=engine, now=started, trigger=trigger))
            )
        except JobSkipped as exc:
            status, error = "skipped", str(exc)
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
            log.exception("job failed", extra={"job": job.name, "run_id": run_id})
        finished = started + timedelta(seconds=time.perf_counter() - clock)
        values = {"status": status, "finished_at": finished, "counts": counts or None, "error": error}
        if run_id is not None:
            with engine.begin() as conn:
                conn.execute(runs.update().where(runs.c.id == run_id).values(**values))
        elif status != "succeeded" or job.did_work(counts) or trigger != "schedule":
            with engine.begin() as conn:
                run_id = conn.execute(
                    runs.insert()
                    .values(
                        job_name=job.name, trigger=trigger, started_at=started, runner=_runner(), **values
                    )
                    .returning(runs.c.id)
                ).scalar_one()
        else:
            return JobRun(None, job.name, trigger, status, started, finished, counts, error)
        log.info("job finished", extra={"job": job.name, "status": status, "run_id": run_id})
        return JobRun(run_id, job.name, trigger, status, started, finished, counts, error)
    finally:
        lock.release()


def abandon_running(engine: Engine, reason: str) -> list[str]:
    """Mark this process's runs still marked running as abandoned (it is stopping without them)."""
    runs = tables.job_runs
    mine = (runs.c.runner == _runner()) & (runs.c.status == "running")
    with engine.begin() as conn:
        names = list(conn.execute(select(runs.c.job_name).where(mine)).scalars())
        conn.execute(
            runs.update().where(mine).values(status="abandoned", finished_at=datetime.now(UTC), error=reason)
        )
    return names


def recent_runs(engine: Engine, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    runs = tables.job_runs
    query = select(runs).order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit)
    if job is not None:
        query = query.where(runs.c.job_name == job)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def last_runs(engine: Engine) -> dict[str, dict[str, Any]]:
    """The latest run of each job, by name."""
    runs = tables.job_runs
    out: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for name in JOBS:
            row = (
                conn.execute(
                    select(runs)
                    .where(runs.c.job_name == name)
                    .order_by(runs.c.started_at.desc(), runs.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
            if row is not None:
                out[name] = dict(row)
    return out
