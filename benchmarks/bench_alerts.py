"""Alerting figures for docs/alerts.md, on the local PostgreSQL:

1. evaluation cost per cycle with the packaged rules at 1 M stored predictions (30 days, a busy last window)
   and 200 k security events — and the query plans, to show the metrics read index ranges, not tables;
2. time from condition to notification: the worker's own jobs (evaluate-alerts, deliver-outbox) at test
   intervals against a real receiver on 127.0.0.1, repeated; the production figure follows from it.

    .venv/bin/python benchmarks/bench_alerts.py [--rows 1000000] [--cycles 20] [--trials 8]

Creates (and drops) the database ticketguard_bench_alerts; prints a JSON summary and writes
docs/alerts/cycle.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import Engine, insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from alert_fixtures import start_alert_worker  # noqa: E402
from delivery_fixtures import start_receiver  # noqa: E402
from ticketguard import tables  # noqa: E402
from ticketguard.alerts.catalogue import METRICS  # noqa: E402
from ticketguard.alerts.service import (  # noqa: E402
    DEFAULT_RULES_PATH,
    evaluate_rules,
    load_rules_file,
    metric_context,
    read_metrics,
)
from ticketguard.config import Settings  # noqa: E402
from ticketguard.kit import migrate  # noqa: E402
from ticketguard.kit.db import make_engine  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB = "ticketguard_bench_alerts"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB}"


def fresh_database() -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    migrate.upgrade(URL, "head")


def drop_database() -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def load(engine: Engine, rows: int, now: datetime) -> float:
    """``rows`` predictions over 30 days (3,000 of them in the last 5 minutes) and 200 k security events,
    written by PostgreSQL itself (generate_series)."""
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))  # the engine's request-path timeout
        conn.execute(
            text(
                """
                INSERT INTO fraud_predictions
                    (transaction_id, fraud_score, decision, model_version, timestamp, degraded, latency_ms)
                SELECT 'b-' || g, (g % 1000) / 1000.0,
                       CASE WHEN g % 1000 > 850 THEN 'BLOCKED' WHEN g % 1000 > 650 THEN 'MANUAL_REVIEW'
                            WHEN g % 1000 > 400 THEN 'REQUIRE_2FA' ELSE 'APPROVED' END,
                       'bench',
                       CASE WHEN g <= 3000 THEN :now - (g * interval '100 milliseconds')
                            ELSE :now - interval '5 minutes' - ((g % 2592000) * interval '1 second') END,
                       g % 97 = 0, 3 + (g % 40)
                FROM generate_series(1, :rows) AS g
                """
            ),
            {"now": now, "rows": rows},
        )
        conn.execute(
            text(
                """
                INSERT INTO security_events (event_type, severity, source_ip, metadata, timestamp)
                SELECT CASE WHEN g % 3 = 0 THEN 'login_failed' WHEN g % 3 = 1 THEN 'rate_limited'
                            ELSE 'auth_failed' END,
                       'medium', 'ip:' || (g % 5000), '{}'::jsonb,
                       :now - ((g % 2592000) * interval '1 second')
                FROM generate_series(1, 200000) AS g
                """
            ),
            {"now": now},
        )
        conn.execute(text("ANALYZE fraud_predictions"))
        conn.execute(text("ANALYZE security_events"))
    return time.perf_counter() - started


def plans(engine: Engine, now: datetime) -> dict[str, str]:
    """EXPLAIN of each metric query as the catalogue issues it (captured from the engine)."""
    from sqlalchemy import event

    captured: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "EXPLAIN" not in statement:
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    settings = Settings(database_url=URL, _env_file=None)  # type: ignore[call-arg]
    names = [n for n in METRICS if n not in ("error_rate", "review_queue_age_minutes")]
    read_metrics(engine, names, metric_context(settings, now))
    event.remove(engine, "before_cursor_execute", grab)
    out: dict[str, str] = {}
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        for i, (statement, parameters) in enumerate(captured):
            with raw.cursor() as cur:
                cur.execute("EXPLAIN " + statement, parameters)  # type: ignore[arg-type]
                plan = "\n".join(r[0] for r in cur.fetchall())
            out[f"query {i + 1}"] = plan
    return out


def cycle_cost(engine: Engine, cycles: int) -> dict[str, object]:
    ruleset = load_rules_file(DEFAULT_RULES_PATH)
    settings = Settings(database_url=URL, _env_file=None)  # type: ignore[call-arg]
    totals: list[float] = []
    metric_times: list[float] = []
    for _ in range(cycles):
        now = datetime.now(UTC)
        started = time.perf_counter()
        report = evaluate_rules(engine, settings, ruleset, now=now)
        totals.append(time.perf_counter() - started)
        metric_times.append(report.seconds_metrics)
    values = {k: v.value for k, v in report.metrics.items()}
    return {
        "rules": len(ruleset.rules),
        "cycle_ms_median": round(statistics.median(totals) * 1000, 1),
        "cycle_ms_max": round(max(totals) * 1000, 1),
        "metrics_ms_median": round(statistics.median(metric_times) * 1000, 1),
        "cycles": cycles,
        "values": values,
        "samples_ms": [round(t * 1000, 2) for t in totals],
    }


RULE = """\
alerts:
  - name: bench_spike
    condition: fraud_rate > 0.5
    duration: 0s
    severity: high
    action: pagerduty
"""


def condition_to_notification(trials: int, tmp: Path) -> dict[str, object]:
    """Insert a burst at t0; time until the receiver holds the page. The worker runs the production jobs
    at 1 s intervals; between trials the burst ages out of a 2 s window and the alert resolves."""
    fresh_database()
    engine = make_engine(URL)
    receiver, server = start_receiver()
    rules = tmp / "bench_rules.yaml"
    rules.write_text(textwrap.dedent(RULE))
    settings = Settings(  # type: ignore[call-arg]
        database_url=URL,
        data_dir=tmp,
        _env_file=None,
        alert_rules_path=rules,
        alert_metric_window_seconds=2,
        pagerduty_api_key="bench-routing-key-000000000000000",
        pagerduty_events_url=receiver.url,
    )
    stop = threading.Event()
    thread = start_alert_worker(settings, engine, stop)
    time.sleep(2)
    delays: list[float] = []
    try:
        for trial in range(trials):
            expected = len([r for r in receiver.requests if b'"trigger"' in r.body]) + 1
            t0 = time.monotonic()
            now = datetime.now(UTC)
            with engine.begin() as conn:
                conn.execute(
                    insert(tables.fraud_predictions),
                    [
                        {
                            "transaction_id": f"n-{trial}-{i}",
                            "fraud_score": 0.99,
                            "decision": "BLOCKED",
                            "timestamp": now,
                            "degraded": False,
                        }
                        for i in range(20)
                    ],
                )
            while len([r for r in receiver.requests if b'"trigger"' in r.body]) < expected:
                time.sleep(0.01)
            delays.append(time.monotonic() - t0)
            while sum(1 for r in receiver.requests if b'"resolve"' in r.body) < trial + 1:
                time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
        server.shutdown()
        engine.dispose()
    return {
        "trials": trials,
        "eval_interval_s": 1,
        "outbox_poll_s": 1,
        "seconds": [round(d, 3) for d in delays],
        "median_s": round(statistics.median(delays), 3),
        "max_s": round(max(delays), 3),
    }


def plot(cost: dict[str, object], notify: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(cost["samples_ms"], marker="o")  # type: ignore[arg-type]
    a.set_title("evaluation cycle, 8 rules, 1 M predictions (PostgreSQL)")
    a.set_xlabel("cycle")
    a.set_ylabel("ms")
    b.bar(range(len(notify["seconds"])), notify["seconds"])  # type: ignore[arg-type]
    b.set_title("condition → PagerDuty receiver (1 s eval / 1 s poll)")
    b.set_xlabel("trial")
    b.set_ylabel("s")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    import tempfile

    fresh_database()
    engine = make_engine(URL)
    now = datetime.now(UTC)
    print(f"loading {args.rows:,} predictions ...", file=sys.stderr)
    load_s = load(engine, args.rows, now)
    print(f"loaded in {load_s:.1f} s; evaluating {args.cycles} cycles ...", file=sys.stderr)
    cost = cycle_cost(engine, args.cycles)
    query_plans = plans(engine, datetime.now(UTC))
    engine.dispose()
    seq_scans = [name for name, plan in query_plans.items() if "Seq Scan" in plan]
    print(f"timing condition → notification ({args.trials} trials) ...", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        notify = condition_to_notification(args.trials, Path(tmp))
    drop_database()
    plot(cost, notify, ROOT / "docs/alerts/cycle.png")
    summary = {
        "rows": args.rows,
        "load_s": round(load_s, 1),
        "cycle": {k: v for k, v in cost.items() if k != "samples_ms"},
        "seq_scans": seq_scans,
        "plans": query_plans,
        "condition_to_notification": notify,
    }
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
