"""`ticketguard simulate` for N transactions: generation, files, the whole command into SQLite and PostgreSQL.

    .venv/bin/python benchmarks/bench_simulate.py                       # 1,000,000 transactions, seed 7
    .venv/bin/python benchmarks/bench_simulate.py --postgres postgresql://postgres@127.0.0.1:5432/test

Target (issue 2): `ticketguard simulate` for 1,000,000 transactions in under 2 minutes on the 2-core
reference machine, identical output for the same seed. Measures, each as wall time:

- generation in process (`simulate()`), twice, and checks both histories are equal;
- `ticketguard simulate --output FILE.parquet` as a subprocess, twice, and compares the files' sha256;
- `ticketguard simulate` as a subprocess into a freshly migrated SQLite database and (with --postgres) into
  a fresh PostgreSQL database created for the run and dropped after.

Results: docs/simulator/bench_simulate.json and docs/simulator/bench_simulate.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from sqlalchemy import create_engine, make_url, text

from ticketguard.kit import migrate
from ticketguard.simulate import SimulationConfig, simulate

DOCS = Path(__file__).resolve().parent.parent / "docs" / "simulator"
TARGET_S = 120.0


def cli(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ticketguard", *args],
        env={**os.environ, **env},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return round(time.perf_counter() - started, 2)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server to benchmark against")
    args = parser.parse_args()
    n, seed = args.transactions, str(args.seed)
    results: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "transactions": n,
        "seed": args.seed,
        "target_s": TARGET_S,
    }
    timings: dict[str, float] = {}

    print(f"generating {n:,} transactions twice in process …", flush=True)
    config = SimulationConfig(transactions=n, seed=args.seed)
    started = time.perf_counter()
    first = simulate(config)
    timings["generate (in process)"] = round(time.perf_counter() - started, 2)
    second = simulate(config)
    for name in ("events", "transactions", "labels"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    results["fraud_rate"] = round(float(first.labels["is_fraud"].mean()), 5)
    results["same_seed_same_history"] = True
    del first, second

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("CLI into Parquet twice …", flush=True)
        a, b = work / "a.parquet", work / "b.parquet"
        timings["simulate --output parquet"] = cli(
            ["simulate", "-n", str(n), "--seed", seed, "-o", str(a)], {}
        )
        cli(["simulate", "-n", str(n), "--seed", seed, "-o", str(b)], {})
        results["parquet_sha256_equal"] = sha256(a) == sha256(b)

        print("CLI into a fresh SQLite database …", flush=True)
        sqlite_url = f"sqlite:///{work / 'bench.db'}"
        migrate.upgrade(sqlite_url)
        timings["simulate into SQLite"] = cli(
            ["simulate", "-n", str(n), "--seed", seed], {"DATABASE_URL": sqlite_url, "DATA_DIR": str(work)}
        )

    if args.postgres:
        print("CLI into a fresh PostgreSQL database …", flush=True)
        admin_url = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1)
        name = f"tg_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
            migrate.upgrade(url)
            timings["simulate into PostgreSQL"] = cli(
                ["simulate", "-n", str(n), "--seed", seed], {"DATABASE_URL": url}
            )
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    results["seconds"] = timings
    results["all_under_target"] = all(v < TARGET_S for v in timings.values())
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "bench_simulate.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels = list(timings)
    ax.barh(labels, [timings[k] for k in labels], color="#3b6ea5")
    ax.axvline(TARGET_S, color="#c0392b", linestyle="--", label=f"target {TARGET_S:.0f} s")
    for i, k in enumerate(labels):
        ax.text(timings[k] + 1, i, f"{timings[k]:.1f} s", va="center")
    ax.set_xlabel("wall time, seconds")
    ax.set_title(f"ticketguard simulate, {n:,} transactions (2 cores)")
    ax.invert_yaxis()
    ax.set_xlim(0, max(TARGET_S, *timings.values()) * 1.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(DOCS / "bench_simulate.png", dpi=110)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
