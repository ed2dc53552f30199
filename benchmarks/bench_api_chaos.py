"""Chaos run: kill Redis and cut PostgreSQL off mid-load, then check that every 200 answer has exactly one
prediction row and one audit row, and that no answer during the outages was a silent APPROVED.

    python benchmarks/bench_api_chaos.py --database-url postgresql://postgres@127.0.0.1:5432/tg_api_bench \
        --data-dir /tmp/tgbench

The machine's PostgreSQL and Redis are shared with other work, so the outages are made without touching
them: the API gets its **own** Redis (``redis-server`` on a free port, started and killed here by its pid),
and PostgreSQL is cut off for the benchmark database only (``ALLOW_CONNECTIONS false`` and every backend of
that database terminated — what a restart does to the API's connections — then allowed again).

Timeline (``--seconds``, default 60): load from 16 client threads at ~``--rate`` requests/s; at 25 % Redis is
killed (SIGKILL) and stays down; at 50 % PostgreSQL is cut off for ``--outage`` seconds (default 5).
Writes ``docs/benchmarks/api_chaos.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from bench_api import Server, free_port, write_samples
from rich.console import Console
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
console = Console()


def start_redis() -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="tg-chaos-redis-"))
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0", workdir


def set_connections(admin_url: str, name: str, allow: bool) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allow else "false"}'))
        if not allow:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )
    admin.dispose()


def restart_postgres() -> None:
    """A real server restart: every connection of every client is dropped, then the server comes back."""
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"], check=True
    )
    subprocess.run(["pg_isready", "-h", "127.0.0.1", "-t", "30"], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=60)
    parser.add_argument("--outage", type=float, default=5)
    parser.add_argument(
        "--restart-postgres",
        action="store_true",
        help="Restart the PostgreSQL server itself (pg_ctlcluster … restart) instead of cutting one database "
        "off — only when nothing else uses this server.",
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server not found")
    url = args.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    db_name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    samples = ROOT / "docs" / "benchmarks" / ".samples_chaos.csv"
    samples.parent.mkdir(parents=True, exist_ok=True)
    write_samples(url, samples)
    rows = [line.split(",") for line in samples.read_text().splitlines() if line]
    redis_proc, redis_url, redis_dir = start_redis()
    server_args = argparse.Namespace(
        name="chaos", data_dir=args.data_dir, pool_size=20, workers=args.workers, redis_url=redis_url
    )
    server = Server(server_args, args.database_url)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    stop = threading.Event()
    phase = {"name": "normal"}
    events: list[tuple[float, str]] = []
    started = time.monotonic()

    def client() -> None:
        interval = 16 / args.rate
        with httpx.Client(base_url=server.base, timeout=10) as http:
            while not stop.is_set():
                wallet, event, ticket = random.choice(rows)
                body = {
                    "transaction_id": f"chaos-{uuid.uuid4().hex}",
                    "wallet_address": wallet,
                    "ticket_id": ticket,
                    "event_id": event,
                    "price_paid": round(random.uniform(20, 400), 2),
                }
                t0 = time.monotonic()
                try:
                    r = http.post("/api/v1/ml/predict/fraud", json=body)
                    status, answer = r.status_code, r.json()
                except (httpx.HTTPError, ValueError) as exc:
                    status, answer = 0, {"error": type(exc).__name__}
                with lock:
                    results.append(
                        {
                            "id": body["transaction_id"],
                            "status": status,
                            "decision": answer.get("decision"),
                            "degraded": answer.get("degraded"),
                            "phase": phase["name"],
                            "ms": (time.monotonic() - t0) * 1000,
                        }
                    )
                time.sleep(max(0.0, interval - (time.monotonic() - t0)))

    try:
        server.wait_healthy()
        threads = [threading.Thread(target=client) for _ in range(16)]
        for t in threads:
            t.start()
        time.sleep(args.seconds * 0.25)
        os.kill(redis_proc.pid, signal.SIGKILL)
        phase["name"] = "redis down"
        events.append((time.monotonic() - started, "redis killed"))
        console.print("redis killed")
        time.sleep(args.seconds * 0.25)
        if args.restart_postgres:
            phase["name"] = "redis down, postgres restarting"
            events.append((time.monotonic() - started, "postgres restart begins"))
            console.print("restarting postgres")
            restart_postgres()
        else:
            set_connections(admin_url, db_name, allow=False)
            phase["name"] = "redis down, postgres cut off"
            events.append((time.monotonic() - started, "postgres cut off"))
            console.print("postgres cut off")
            time.sleep(args.outage)
            set_connections(admin_url, db_name, allow=True)
        phase["name"] = "redis down, postgres back"
        events.append((time.monotonic() - started, "postgres back"))
        console.print("postgres back")
        time.sleep(max(0.0, args.seconds * 0.5 - args.outage))
        stop.set()
        for t in threads:
            t.join()
        health = httpx.get(f"{server.base}/health", timeout=5).json()
    finally:
        stop.set()
        if not args.restart_postgres:
            set_connections(admin_url, db_name, allow=True)
        server.stop()
        if redis_proc.poll() is None:
            redis_proc.kill()
        shutil.rmtree(redis_dir, ignore_errors=True)

    ok_ids = [r["id"] for r in results if r["status"] == 200]
    engine = create_engine(url)
    with engine.connect() as conn:
        counts = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                text(
                    "SELECT t.transaction_id, "
                    "(SELECT count(*) FROM fraud_predictions p WHERE p.transaction_id = t.transaction_id), "
                    "(SELECT count(*) FROM scoring_audit a WHERE a.transaction_id = t.transaction_id) "
                    "FROM transactions t WHERE t.transaction_id LIKE 'chaos-%'"
                )
            )
        }
    engine.dispose()
    missing = [i for i in ok_ids if counts.get(i) != (1, 1)]
    by_phase: dict[str, Counter[str]] = {}
    for r in results:
        key = f"{r['status']} {r['decision']}{' degraded' if r['degraded'] else ''}"
        by_phase.setdefault(r["phase"], Counter())[key] += 1
    approved_during_outage = sum(1 for r in results if r["status"] != 200 and r["decision"] == "APPROVED")
    summary = {
        "requests": len(results),
        "answered_200": len(ok_ids),
        "200_without_exactly_one_prediction_and_audit": len(missing),
        "rows_written_for_chaos_ids": len(counts),
        "non_200_answers_saying_APPROVED": approved_during_outage,
        "by_phase": {k: dict(v) for k, v in by_phase.items()},
        "events_s": events,
        "health_at_end": health,
        "postgres_outage": "server restart (pg_ctlcluster restart -m fast)"
        if args.restart_postgres
        else f"database cut off for {args.outage} s (connections refused, backends terminated)",
    }
    out = ROOT / "docs" / "benchmarks" / "api_chaos.json"
    out.write_text(json.dumps(summary, indent=2))
    console.print(summary)
    if missing or approved_during_outage:
        sys.exit(1)


if __name__ == "__main__":
    main()
