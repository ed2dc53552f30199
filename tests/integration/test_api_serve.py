"""`ticketguard serve api` end to end: two uvicorn worker processes, the guide's smoke request, and
Prometheus metrics aggregated across the workers (multiprocess mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from scoring_fixtures import free_port, ladder_booster, make_settings, register_model, request_body
from sqlalchemy import func, select
from typer.testing import CliRunner
from waiting import wait_until

from ticketguard import tables
from ticketguard.cli import app
from ticketguard.kit.db import make_engine


def test_serve_api_help_names_its_options() -> None:
    result = CliRunner().invoke(app, ["serve", "api", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--workers", "--example"):
        assert option in result.output


def _serve(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[bytes]:
    command = ["serve", "api", "--port", str(port), "--workers", str(workers)]
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "ticketguard"), *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _race(base: str, client: httpx.Client, tid: str) -> list[tuple[int, dict[str, object], float]]:
    """Two requests with one transaction_id and different prices, sent at the same instant on two new
    connections (each may land on either worker)."""
    barrier = threading.Barrier(2)
    out: list[tuple[int, dict[str, object], float]] = []

    def send(price: float) -> None:
        body = request_body(transaction_id=tid, price_paid=price)
        barrier.wait(10)
        r = client.post(f"{base}/api/v1/ml/predict/fraud", json=body)
        out.append((r.status_code, r.json(), price))

    threads = [threading.Thread(target=send, args=(p,)) for p in (50.0, 51.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


@pytest.mark.postgres
@pytest.mark.xdist_group("api-serve")
def test_two_workers_answer_share_metrics_and_store_one_answer_per_raced_id(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """`serve api --workers 2` as deployed (PostgreSQL, Redis: each worker scores from its in-memory state,
    and the stored-answer check is the write itself).

    * The guide's smoke request, 20 times: every answer 200 from the live model; /metrics sums both workers.
    * Cross-worker idempotency race: pairs of requests with one transaction_id and different payloads sent
      at the same instant on separate connections, so they land on both workers. Each pair gets one 200 and
      one 409, and the database holds the 200's answer once. A worker that lost the race at the unique index
      and answered 200 with its own answer (reporting the other's write as its own) fails this."""
    settings = make_settings(postgres_url, tmp_path)
    engine = make_engine(postgres_url)
    register_model(engine, settings.resolved_model_dir, "served-1", ladder_booster(), promote=True)
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=postgres_url,
        REDIS_URL=redis_url,
        DATA_DIR=str(tmp_path),
        RATE_LIMIT_IP="1000000",
        RATE_LIMIT_GLOBAL="1000000",
        RATE_LIMIT_USER="1000000",
        # A loaded machine must not turn an answer into the deadline's 503: the deadline is not this test's
        # subject (tests/integration/test_api_failures.py has it).
        SCORING_DEADLINE_MS="10000",
    )
    command = ["serve", "api", "--port", str(port), "--workers", "2", "--example", "--log-level", "info"]
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "ticketguard"), *command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    results: dict[str, list[tuple[int, dict[str, object], float]]] = {}
    # No kept-alive connections: every request opens its own, and the kernel hands it to either worker.
    fresh = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
    try:

        def both_started() -> bool:
            # Each worker logs uvicorn's "Application startup complete." once its start-up (model loaded,
            # feature state warmed) is done and it accepts connections: only then can a pair reach both.
            assert proc.poll() is None, f"server exited: {log_path.read_text(errors='replace')[-2000:]}"
            return log_path.read_text(errors="replace").count("Application startup complete.") >= 2

        wait_until(
            both_started,
            timeout=180,
            interval=0.1,
            what=lambda: f"both workers started; log: {log_path.read_text(errors='replace')[-3000:]}",
        )
        for _ in range(6):  # on new connections: either worker may answer
            assert fresh.get(f"{base}/health").json()["checks"]["features"].startswith("memory: ready")

        answers = [fresh.post(f"{base}/api/v1/ml/predict/fraud", json=request_body()) for _ in range(20)]
        assert {r.status_code for r in answers} == {200}
        assert {r.json()["model_version"] for r in answers} == {"served-1"}
        text = fresh.get(f"{base}/metrics").text
        approved = [
            line
            for line in text.splitlines()
            if line.startswith(
                'ticketguard_decisions_total{decision="APPROVED",degraded="false",replayed="false"}'
            )
        ]
        assert approved, text[:2000]
        assert float(approved[0].rsplit(" ", 1)[1]) == 20.0  # summed over both workers
        assert "ticketguard_model_info{" in text

        for i in range(40):
            results[f"race-{i:03d}"] = _race(base, fresh, f"race-{i:03d}")
    finally:
        fresh.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        output = log_path.read_text(errors="replace")
    assert "curl -s" in output  # --example printed the smoke-test commands

    for tid, out in results.items():
        assert sorted(status for status, _, _ in out) == [200, 409], (tid, out)
    with engine.connect() as conn:
        for tid, out in results.items():
            answer, price = next((body, price) for status, body, price in out if status == 200)
            loser = next(body for status, body, _ in out if status == 409)
            assert "already scored with a different payload" in str(loser)
            counts = [
                conn.execute(
                    select(func.count()).select_from(t).where(t.c.transaction_id == tid)
                ).scalar_one()
                for t in (tables.transactions, tables.fraud_predictions, tables.scoring_audit)
            ]
            assert counts == [1, 1, 1], tid
            stored_price = conn.execute(
                select(tables.transactions.c.price_paid).where(tables.transactions.c.transaction_id == tid)
            ).scalar_one()
            assert float(stored_price) == price  # the stored row is the 200's payload
            stored = conn.execute(
                select(tables.fraud_predictions.c.decision, tables.fraud_predictions.c.fraud_score).where(
                    tables.fraud_predictions.c.transaction_id == tid
                )
            ).one()
            assert (stored.decision, stored.fraud_score) == (answer["decision"], answer["fraud_score"])
    engine.dispose()
    # The races did reach the cross-worker path (a write that met the other worker's row at the unique
    # index and was resolved against the stored answer), not only the in-process in-flight map.
    assert "group commit conflict" in output, output[-3000:]
