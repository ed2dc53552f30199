"""The review queue's reads at scale on PostgreSQL: `queue`, `queue_stats`, `get_case`, `case_detail` over
1,000,000 scored transactions (30 days, 3 % MANUAL_REVIEW, a third of those already decided), through the
generic plans PostgreSQL switches to after a statement's fifth run — that is where a bound constant hurt.

    .venv/bin/python benchmarks/bench_reviews.py                     # PostgreSQL at 127.0.0.1:5432/test
    .venv/bin/python benchmarks/bench_reviews.py --rows 200000 --keep

It creates (and drops, unless --keep) a database of its own next to the admin URL's, migrates it, fills it
with generate_series (seconds), ANALYZEs, then times each read (median and p95 of --repeat runs).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime

from scratch_db import fill, scratch_database, timed

from ticketguard.kit.db import make_engine
from ticketguard.reviews.service import DEFAULT_HORIZON, case_detail, get_case, queue, queue_stats

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

FILL = """
INSERT INTO transactions (transaction_id, wallet_address, event_id, price_paid, "timestamp", source)
SELECT 'b-' || g, '0x' || lpad(to_hex(g % 50000), 40, '0'), 'ev-' || (g % 400), 50 + (g % 200),
       :now - (g * interval '1 second' * :span / :rows), 'api'
  FROM generate_series(1, :rows) g;
INSERT INTO fraud_predictions (transaction_id, fraud_score, decision, features, model_version, "timestamp",
                               top_features, reasons, degraded, request_hash)
SELECT 'b-' || g, (g % 1000) / 1000.0,
       CASE WHEN g % 100 < 3 THEN 'MANUAL_REVIEW' WHEN g % 100 < 5 THEN 'BLOCKED'
            WHEN g % 100 < 12 THEN 'REQUIRE_2FA' ELSE 'APPROVED' END,
       '{"is_resale": 0.0, "new_ip_for_wallet": 1.0}'::jsonb, 'bench',
       :now - (g * interval '1 second' * :span / :rows),
       '[{"feature": "new_ip_for_wallet", "contribution": 1.2, "value": 1.0}]'::jsonb,
       '["first purchase from this IP"]'::jsonb, false, repeat('0', 64)
  FROM generate_series(1, :rows) g;
INSERT INTO review_cases (transaction_id, status, claimed_by, claimed_at, outcome, decided_by, decided_at,
                          note, created_at, updated_at)
SELECT transaction_id, 'decided', 'bench', "timestamp", 'legitimate', 'bench',
       "timestamp" + interval '1 hour', 'bench', "timestamp", "timestamp"
  FROM fraud_predictions WHERE decision = 'MANUAL_REVIEW' AND id % 3 = 0;
INSERT INTO review_cases (transaction_id, status, claimed_by, claimed_at, claim_expires_at, created_at,
                          updated_at)
SELECT transaction_id, 'claimed', 'bench', :now, :now + interval '15 minutes', :now, :now
  FROM fraud_predictions WHERE decision = 'MANUAL_REVIEW' AND id % 3 = 1 AND id % 7 = 0;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="Keep the database (its name is printed).")
    args = parser.parse_args()

    with scratch_database(args.admin_url, "tg_bench_reviews", keep=args.keep) as url:
        engine = make_engine(url, statement_timeout_ms=600_000)
        try:
            params = {"now": NOW, "rows": args.rows, "span": args.days * 86_400}
            fill(engine, FILL, params, args.rows, args.days)
            with engine.connect() as conn:
                stats = queue_stats(conn, now=NOW)
                print(f"queue within {DEFAULT_HORIZON.days} days: {stats}")
                oldest = queue(conn, now=NOW, limit=1)[0].transaction_id
                reads: dict[str, Callable[[], object]] = {
                    "queue (first page of 50)": lambda: queue(conn, now=NOW),
                    "queue (page 20, offset 950)": lambda: queue(conn, now=NOW, offset=950),
                    "queue_stats": lambda: queue_stats(conn, now=NOW),
                    "get_case": lambda: get_case(conn, oldest, now=NOW),
                    "case_detail": lambda: case_detail(conn, oldest, now=NOW),
                }
                print(f"{'read':32} {'median ms':>10} {'p95 ms':>10}")
                for label, fn in reads.items():
                    median, p95 = timed(fn, args.repeat)
                    print(f"{label:32} {median:10.2f} {p95:10.2f}")
                # psycopg prepares a statement after 5 runs and PostgreSQL may then switch to a generic plan:
                # the timings above include those runs; this shows which plans they used.
                prepared = conn.exec_driver_sql(
                    "SELECT left(regexp_replace(statement, '\\s+', ' ', 'g'), 60), "
                    "generic_plans, custom_plans "
                    "FROM pg_prepared_statements ORDER BY generic_plans DESC"
                ).all()
                print("prepared statements (generic / custom plans):")
                for statement, generic, custom in prepared:
                    print(f"    {generic:3} / {custom:3}  {statement}…")
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
