"""Failure policy over real HTTP: database down, slow database past the deadline, Redis down, no model,
and hot reload of the live model under traffic."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from scoring_fixtures import ladder_booster, make_settings, register_model, request_body, running_api
from sqlalchemy import Engine, create_engine, func, select, text
from waiting import wait_until

from ticketguard import tables
from ticketguard.kit.db import make_engine

PREDICT = "/api/v1/ml/predict/fraud"


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


def _db_name(engine: Engine) -> str:
    return str(engine.url.database)


def _set_connections(admin_url: str, name: str, allow: bool) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allow else "false"}'))
        if not allow:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )
    admin.dispose()


def test_database_down_answers_manual_review_503_never_approved(
    pg: Engine, postgres_url: str, postgres_admin_url: str, tmp_path: Path
) -> None:
    settings = make_settings(postgres_url, tmp_path)
    register_model(pg, settings.resolved_model_dir, "m1", ladder_booster(), promote=True)
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as client:
        assert client.post(PREDICT, json=request_body()).status_code == 200
        name = _db_name(pg)
        _set_connections(postgres_admin_url, name, allow=False)
        try:
            body = request_body()
            r = client.post(PREDICT, json=body)
            assert r.status_code == 503
            answer = r.json()
            assert answer["decision"] == "MANUAL_REVIEW"
            assert answer["degraded"] is True
            assert answer["fraud_score"] is None
            assert "database unavailable" in answer["degraded_reasons"]
            health = client.get("/health")
            assert health.status_code == 503
            assert health.json()["checks"]["database"].startswith("down")
        finally:
            _set_connections(postgres_admin_url, name, allow=True)
        # Back up: the same request is scored and stored normally (nothing was half-written).
        r = client.post(PREDICT, json=body)
        assert r.status_code == 200
        assert r.json()["degraded"] is False
    with pg.connect() as conn:
        n = conn.execute(
            select(func.count())
            .select_from(tables.scoring_audit)
            .where(tables.scoring_audit.c.transaction_id == body["transaction_id"])
        ).scalar()
    assert n == 1


def test_slow_database_past_the_deadline_then_the_retry_replays(
    pg: Engine, postgres_url: str, tmp_path: Path
) -> None:
    settings = make_settings(postgres_url, tmp_path, scoring_deadline_ms=300)
    register_model(pg, settings.resolved_model_dir, "m1", ladder_booster(), promote=True)
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as client:
        body = request_body()
        with pg.connect() as locker:
            # SHARE blocks INSERTs into the audit table but not the reads a request makes first.
            locker.execute(text("LOCK TABLE scoring_audit IN SHARE MODE"))
            started = time.monotonic()
            r = client.post(PREDICT, json=body)
            elapsed = time.monotonic() - started
            locker.rollback()
        assert r.status_code == 503
        assert r.json()["decision"] == "MANUAL_REVIEW"
        assert r.json()["degraded"] is True
        assert elapsed < 2.0  # answered at the deadline, not when the lock went away

        def landed() -> bool:  # the committer had taken the write: it lands once the lock is gone
            with pg.connect() as conn:
                p = tables.fraud_predictions
                return bool(
                    conn.execute(
                        select(func.count())
                        .select_from(p)
                        .where(p.c.transaction_id == body["transaction_id"])
                    ).scalar()
                )

        wait_until(landed, what="the first request's answer landed after the lock went away")
        again = client.post(PREDICT, json=body)
        assert again.status_code == 200
        assert again.json()["degraded"] is False
    with pg.connect() as conn:
        rows = [
            conn.execute(
                select(func.count()).select_from(t).where(t.c.transaction_id == body["transaction_id"])
            ).scalar()
            for t in (tables.transactions, tables.fraud_predictions, tables.scoring_audit)
        ]
    assert rows == [1, 1, 1]


def test_redis_down_is_reported_and_scoring_goes_on(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(sqlite_url, tmp_path, redis_url="redis://127.0.0.1:1/0")
    engine = make_engine(sqlite_url)
    register_model(engine, settings.resolved_model_dir, "m1", ladder_booster(), promote=True)
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        assert health["checks"]["redis"].startswith("down")
        # No feed to anchor the in-memory state on: the SQL source serves (and says so).
        assert health["checks"]["features"] == "memory: loading (features from SQL meanwhile)"
        r = client.post(PREDICT, json=request_body())
        assert r.status_code == 200
        answer = r.json()
        # The event aggregates Redis should have served came from the database: same features, and the
        # answer says its path was degraded.
        assert answer["degraded"] is True
        assert any("redis unavailable" in reason for reason in answer["degraded_reasons"])
        assert answer["decision"] == "APPROVED"


def test_redis_up_holds_the_shared_event_bases(sqlite_url: str, redis_url: str, tmp_path: Path) -> None:
    import redis

    # The SQL feature path (the fallback of the in-memory state) shares event bases through Redis.
    settings = make_settings(sqlite_url, tmp_path, redis_url=redis_url, feature_state="sql")
    engine = make_engine(sqlite_url)
    register_model(engine, settings.resolved_model_dir, "m1", ladder_booster(), promote=True)
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as client:
        answer = client.post(PREDICT, json=request_body(event_id="evt-shared")).json()
        assert answer["degraded"] is False
        assert client.get("/health").json()["checks"]["redis"] == "ok"
    assert redis.Redis.from_url(redis_url).exists("ticketguard:scoring:evbase:evt-shared") == 1


def test_no_model_is_503_saying_how_to_train_one(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(sqlite_url, tmp_path)
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as client:
        r = client.post(PREDICT, json=request_body())
        assert r.status_code == 503
        assert "ticketguard train --promote" in r.json()["detail"]
        assert client.get("/api/v1/ml/model/info").status_code == 503
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"


def test_hot_reload_under_traffic_drops_nothing(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(sqlite_url, tmp_path, model_refresh_seconds=0.2)
    engine = make_engine(sqlite_url)
    register_model(engine, settings.resolved_model_dir, "m1", ladder_booster(0), promote=True)
    register_model(engine, settings.resolved_model_dir, "m2", ladder_booster(1, rounds=40), promote=False)
    seen: list[tuple[int, str]] = []
    stop = threading.Event()
    with running_api(settings) as base:

        def drive() -> None:
            with httpx.Client(base_url=base, timeout=10) as client:
                while not stop.is_set():
                    r = client.post(PREDICT, json=request_body())
                    seen.append((r.status_code, r.json().get("model_version", "")))

        threads = [threading.Thread(target=drive) for _ in range(3)]
        for t in threads:
            t.start()
        wait_until(lambda: len(seen) >= 10, what="answers from the first model")
        from ticketguard.ml.registry import DirectoryStore, ModelRegistry

        with engine.begin() as conn:
            ModelRegistry(DirectoryStore(settings.resolved_model_dir)).promote(conn, "m2", actor="test")
        # Until every thread has been answered by the new model a few times.
        wait_until(lambda: sum(v == "m2" for _, v in seen) >= 20, what="answers from the promoted model")
        stop.set()
        for t in threads:
            t.join()
    codes = {c for c, _ in seen}
    versions = [v for _, v in seen]
    assert codes == {200}
    assert "m1" in versions
    assert versions[-1] == "m2"
    # Once switched, a worker never goes back to the old model.
    assert "m1" not in versions[versions.index("m2") + len(versions) // 10 + 3 :]
