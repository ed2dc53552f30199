"""What this machine charges for the scoring path's basic steps, so that API benchmarks from different
machines (each session may get another one) can be compared — and the part of a request's latency that is
the machine's, not the code's, is known.

    python benchmarks/probe_machine.py --database-url postgresql://postgres@127.0.0.1:5432/test \
        --redis-url redis://127.0.0.1:6379/0 [--out docs/benchmarks/machine.json]

Each round trip is timed twice: back to back (the server process is awake, as under load) and after 5 ms
of idleness (as at the guide's 100 users, where a request arrives every ~20 ms). On a virtual machine whose
idle vCPUs halt, every wake-up of a sleeping process costs scheduler and hypervisor latency; a request that
crosses processes many times (client → API → Redis → PostgreSQL → Redis → client) pays it at every hop.
Also: one-row XGBoost predict and a pure-Python loop (CPU speed). Medians of 200 tries; nothing else should
run meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

IDLE_S = 0.005
TRIES = 200


def median_ms(fn: Callable[[], object], idle_s: float = 0.0, tries: int = TRIES) -> float:
    fn()
    times = []
    for _ in range(tries):
        if idle_s:
            time.sleep(idle_s)
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 3)


def both(fn: Callable[[], object]) -> dict[str, float]:
    return {"busy_ms": median_ms(fn), "after_idle_ms": median_ms(fn, IDLE_S)}


def probe_postgres(url: str) -> dict[str, dict[str, float]]:
    import psycopg

    table = f"tg_probe_{os.getpid()}"  # a logged table: a temporary one would skip the WAL flush
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (x int)")
        try:
            out = {
                "select_1": both(lambda: conn.execute("SELECT 1").fetchone()),
                "insert_commit": both(lambda: conn.execute(f"INSERT INTO {table} VALUES (1)")),
            }
        finally:
            conn.execute(f"DROP TABLE {table}")
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("server_version", "shared_buffers", "synchronous_commit", "wal_sync_method")
        }
    return {**out, "settings": settings}  # type: ignore[dict-item]


def probe_redis(url: str) -> dict[str, dict[str, float]]:
    import redis

    client = redis.Redis.from_url(url)
    return {"ping": both(client.ping)}


def probe_cpu() -> dict[str, float]:
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.random((2000, 32), dtype=np.float32)
    y = (rng.random(2000) > 0.9).astype(int)
    booster = xgb.train({"max_depth": 6, "nthread": 1, "verbosity": 0}, xgb.DMatrix(x, y), 150)
    row = x[:1]
    return {
        "xgboost_inplace_predict_1row_ms": median_ms(lambda: booster.inplace_predict(row), tries=1000),
        "python_loop_1e6_ms": median_ms(lambda: sum(i * i for i in range(1_000_000)), tries=20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parents[1] / "docs/benchmarks/machine.json"
    )
    args = parser.parse_args()
    result: dict[str, object] = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "cpu": platform.processor()},
        "cpu": probe_cpu(),
    }
    if args.database_url and args.database_url.startswith("postgresql"):
        result["postgres"] = probe_postgres(args.database_url)
    if args.redis_url:
        result["redis"] = probe_redis(args.redis_url)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
