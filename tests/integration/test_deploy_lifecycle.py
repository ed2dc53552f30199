"""The deployment lifecycle: liveness separate from readiness, SIGTERM draining a real multi-worker server
with requests in flight (nothing lost, nothing half-written), and the worker's bounded shutdown."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from client_fixtures import ticketguard_api
from scoring_fixtures import free_port, ladder_booster, make_settings, register_model, request_body
from sqlalchemy import create_engine, func, select, text

from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.jobs.registry import JOBS, Job, JobContext
from ticketguard.jobs.runner import run_job
from ticketguard.jobs.schedule import ScheduledJob
from ticketguard.jobs.worker import run_worker
from ticketguard.kit.db import make_engine

PREDICT = "/api/v1/ml/predict/fraud"


def test_ready_needs_a_model_while_live_does_not(sqlite_url: str, tmp_path: Path) -> None:
    with ticketguard_api(sqlite_url, tmp_path, model=False, model_refresh_seconds=0.2) as base:
        live = httpx.get(f"{base}/health/live")
        ready = httpx.get(f"{base}/health/ready")
        assert live.status_code == 200
        assert ready.status_code == 503
        assert ready.json()["checks"]["model"].startswith("missing")
        assert ready.json()["checks"]["database"] == "ok"
        engine = make_engine(sqlite_url)
        settings = make_settings(sqlite_url, tmp_path)
        register_model(engine, settings.resolved_model_dir, "ready-1", ladder_booster(), promote=True)
        engine.dispose()
        deadline = time.monotonic() + 10
        while (ready := httpx.get(f"{base}/health/ready")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.2)
        assert ready.json() == {
            "status": "ready",
            "checks": {"model": "ok (ready-1)", "database": "ok", "features": "ok (memory)"},
        }
        assert ready.headers["cache-control"] == "no-store"


@pytest.mark.postgres
def test_ready_fails_and_live_holds_when_the_database_is_gone(
    postgres_url: str, postgres_admin_url: str, tmp_path: Path
) -> None:
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    name = postgres_url.rsplit("/", 1)[1]
    with ticketguard_api(postgres_url, tmp_path, feature_state="sql") as base:
        assert httpx.get(f"{base}/health/ready").status_code == 200
        with admin.connect() as conn:  # the API's connections are cut and new ones refused
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )
        try:
            time.sleep(1.1)  # past the readiness cache
            ready = httpx.get(f"{base}/health/ready", timeout=10)
            assert ready.status_code == 503, ready.text
            assert ready.json()["checks"]["database"].startswith("down")
            assert httpx.get(f"{base}/health/live").status_code == 200  # no restart for a database outage
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    admin.dispose()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.xdist_group("api-serve")
def test_sigterm_drains_requests_in_flight_and_writes_them_all(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Twelve requests wait on their group commit (the predictions table is locked) when the server gets
    SIGTERM. The server stops accepting, waits for them, commits them once the lock goes, and exits 0:
    every request is answered 200 and has its rows."""
    settings = make_settings(postgres_url, tmp_path)
    engine = make_engine(postgres_url)
    register_model(engine, settings.resolved_model_dir, "drain-1", ladder_booster(), promote=True)
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=postgres_url,
        DATA_DIR=str(tmp_path),
        # The production path: in-memory features kept in step through Redis, requests scored on the event
        # loop and awaiting their commit there (what uvicorn cancels if the grace runs out).
        REDIS_URL=redis_url,
        SCORING_DEADLINE_MS="20000",
        DB_STATEMENT_TIMEOUT_MS="30000",  # the writes wait on the lock longer than the default 5 s
        API_SHUTDOWN_GRACE_SECONDS="20",
        RATE_LIMIT_IP="1000000",
        RATE_LIMIT_GLOBAL="1000000",
    )
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ticketguard"),
            "serve",
            "api",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    locker = engine.connect()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.3)
        # Warm both workers (model, fast path) so the requests below only wait on the lock.
        with httpx.Client(base_url=base, timeout=20) as client:
            for _ in range(6):
                assert client.post(PREDICT, json=request_body()).status_code == 200
        trans = locker.begin()
        locker.execute(text("LOCK TABLE fraud_predictions IN EXCLUSIVE MODE"))
        bodies = [request_body() for _ in range(12)]
        pool = concurrent.futures.ThreadPoolExecutor(12)
        futures = [pool.submit(httpx.post, base + PREDICT, json=b, timeout=30) for b in bodies]
        waiting = 0
        deadline = time.monotonic() + 15
        while waiting < 1:  # a committer is blocked on the lock: the requests behind it are in flight
            if time.monotonic() > deadline:
                with engine.connect() as conn:
                    activity = conn.execute(
                        text(
                            "SELECT state, wait_event_type, wait_event, left(query, 80) "
                            "FROM pg_stat_activity WHERE datname = current_database()"
                        )
                    ).all()
                done = [f.result().text[:300] for f in futures if f.done() and not f.exception()]
                errors = [repr(f.exception()) for f in futures if f.done() and f.exception()]
                pytest.fail(f"the group commits never reached the lock: {activity} {done} {errors}")
            time.sleep(0.1)
            with engine.connect() as conn:
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'"  # only the group commits' INSERTs can wait on one here
                    )
                ).scalar_one()
        time.sleep(2.0)  # every request is accepted (by either worker) and waits on its commit
        os.kill(proc.pid, signal.SIGTERM)  # the supervisor, as tini (PID 1) would
        time.sleep(1.5)
        assert proc.poll() is None, "the server exited with requests in flight"
        # No new request is served while draining (the supervisor's socket may still queue the connection
        # until the process exits; a load balancer has stopped routing here before SIGTERM).
        with pytest.raises(httpx.TransportError):
            httpx.post(base + PREDICT, json=request_body(), timeout=1)
        trans.commit()  # the lock goes: the queued group commits land
        answers = [f.result() for f in futures]
        assert [a.status_code for a in answers] == [200] * 12, [a.text[:200] for a in answers]
        assert proc.wait(30) == 0
    finally:
        locker.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    ids = [b["transaction_id"] for b in bodies]
    with engine.connect() as conn:
        for table in (tables.transactions, tables.fraud_predictions, tables.scoring_audit):
            count = conn.execute(select(func.count()).where(table.c.transaction_id.in_(ids))).scalar_one()
            assert count == 12, table.name
    engine.dispose()


def _blocking_job(started: threading.Event, release: threading.Event, done: threading.Event) -> Job:
    def run(_ctx: JobContext) -> dict[str, int]:
        started.set()
        release.wait(30)
        done.set()
        return {"rows": 1}

    return Job("slow", "waits to be released", run)


@pytest.mark.parametrize(("grace", "expected"), [(1, "abandoned"), (10, "succeeded")])
def test_worker_stop_finishes_a_job_within_its_grace_or_abandons_it(
    sqlite_url: str, grace: int, expected: str
) -> None:
    settings = Settings(worker_lock_lease_seconds=5, worker_shutdown_grace_seconds=grace, _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(sqlite_url)
    started, release, done = threading.Event(), threading.Event(), threading.Event()
    jobs = {**JOBS, "slow": _blocking_job(started, release, done)}
    stop = threading.Event()
    result: list[list[str]] = []

    def start_now(scheduler: object) -> None:
        scheduler.add_job(run_job, "date", args=["slow", settings, engine], kwargs={"jobs": jobs})  # type: ignore[attr-defined]

    schedule = (ScheduledJob("slow", cron="0 0 1 1 *"),)
    thread = threading.Thread(
        target=lambda: result.append(
            run_worker(
                settings,
                engine,
                stop=stop,
                schedule=schedule,
                jobs=jobs,
                check_seconds=0.1,
                on_started=start_now,
            )
        )
    )
    thread.start()
    assert started.wait(10)
    stop.set()
    if expected == "succeeded":
        time.sleep(0.5)
        release.set()  # the job ends inside the grace
    thread.join(15)
    assert not thread.is_alive()
    runs = tables.job_runs
    with engine.connect() as conn:
        status, error = conn.execute(
            select(runs.c.status, runs.c.error).where(runs.c.job_name == "slow")
        ).one()
    assert status == expected
    assert result == [["slow"] if expected == "abandoned" else []]
    if expected == "abandoned":
        assert "worker stopped before the job finished" in error
    release.set()
    assert done.wait(10)
    time.sleep(0.3)  # the abandoned thread records its own end; then the database file may go
    engine.dispose()


def test_live_fails_when_the_group_commit_thread_is_gone(sqlite_url: str, tmp_path: Path) -> None:
    from scoring_fixtures import running_api

    from ticketguard.api.app import api_engine
    from ticketguard.ml.serving import LiveModel
    from ticketguard.scoring.service import ScoringService

    settings = make_settings(sqlite_url, tmp_path)
    engine = api_engine(settings)
    service = ScoringService(settings, engine, LiveModel.from_settings(settings, engine))
    with running_api(settings, engine=engine, service=service) as base:
        assert httpx.get(f"{base}/health/live").json() == {"status": "alive"}
        service.committer.stop()
        dead = httpx.get(f"{base}/health/live")
        assert dead.status_code == 503
        assert dead.json()["reason"] == "group-commit thread stopped"
    engine.dispose()
