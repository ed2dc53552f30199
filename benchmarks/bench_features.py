"""Feature engine speed: offline features for N simulated transactions, online features per request.

    .venv/bin/python benchmarks/bench_features.py                      # 1,000,000 offline + online latency
    .venv/bin/python benchmarks/bench_features.py --transactions 200000 --no-online

Offline target: 1,000,000 transactions in under 2 minutes on the 2-core reference machine. Online: the
latency of `OnlineFeatures.compute` (SQL on SQLite and PostgreSQL, one connection per call) on a database
holding ``--online-transactions`` rows. Results are printed and written to docs/ml/bench_features.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import uuid
from pathlib import Path

import numpy as np

from ticketguard.features.offline import OfflineFeatures
from ticketguard.features.online import OnlineFeatures, SqlFeatureSource
from ticketguard.features.repository import TransactionFacts
from ticketguard.features.service import refresh_graph_snapshot, snapshot_days
from ticketguard.features.specs import FEATURE_NAMES, FeatureParams
from ticketguard.history import write_history
from ticketguard.kit import migrate
from ticketguard.kit.db import make_engine
from ticketguard.simulate import SimulationConfig, simulate

DOCS = Path(__file__).resolve().parent.parent / "docs" / "ml"


def offline(n: int, seed: int) -> dict[str, float]:
    started = time.perf_counter()
    history = simulate(SimulationConfig(transactions=n, seed=seed))
    simulated = time.perf_counter() - started
    stages: dict[str, float] = {}
    last = [time.perf_counter()]

    def progress(stage: str, _fraction: float) -> None:
        now = time.perf_counter()
        stages[stage.removeprefix("features: ")] = now - last[0]
        last[0] = now

    started = time.perf_counter()
    features = OfflineFeatures(FeatureParams()).compute(history, progress=progress)
    elapsed = time.perf_counter() - started
    assert features.shape == (n, len(FEATURE_NAMES))
    slowest = dict(sorted(stages.items(), key=lambda kv: -kv[1])[:5])
    return {
        "transactions": n,
        "simulate_s": round(simulated, 2),
        "offline_features_s": round(elapsed, 2),
        "rows_per_s": round(n / elapsed),
        "slowest_stages_s": {k: round(v, 2) for k, v in slowest.items()},
    }


def online(url: str, n: int, calls: int, seed: int) -> dict[str, float]:
    history = simulate(SimulationConfig(transactions=n, seed=seed))
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            write_history(conn, history)
        params = FeatureParams()
        sample = history.transactions.sample(calls, random_state=seed)
        for day in snapshot_days(sample["timestamp"])[-3:]:
            refresh_graph_snapshot(engine, params, day=day, keep_days=10_000)
        features = OnlineFeatures(SqlFeatureSource(engine, params), params)
        facts = [TransactionFacts.from_mapping(r) for r in sample.to_dict("records")]
        for fact in facts[:20]:
            features.compute(fact)
        timings = []
        for fact in facts:
            started = time.perf_counter()
            features.compute(fact)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        engine.dispose()
    ms = np.array(timings)
    return {
        "database_rows": n,
        "calls": calls,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--online-transactions", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-online", action="store_true")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()

    result: dict[str, object] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": os.getloadavg(),
        },
        "offline": offline(args.transactions, args.seed),
    }
    print(json.dumps(result, indent=2), flush=True)
    if not args.no_online:
        tmp = Path("/tmp") / f"bench-features-{uuid.uuid4().hex[:6]}.db"
        result["online_sqlite"] = online(f"sqlite:///{tmp}", args.online_transactions, args.calls, args.seed)
        tmp.unlink(missing_ok=True)
        from sqlalchemy import create_engine, make_url, text

        name = f"bench_features_{uuid.uuid4().hex[:6]}"
        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
            result["online_postgresql"] = online(url, args.online_transactions, args.calls, args.seed)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    result["machine"]["load_after"] = os.getloadavg()  # type: ignore[index]
    print(json.dumps(result, indent=2))
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "bench_features.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
