"""The online path's feature cost per request and the in-memory state's memory per transaction.

    .venv/bin/python benchmarks/bench_online_features.py                     # 200,000 transactions
    PYTHONPATH=/tmp/base/src .venv/bin/python benchmarks/bench_online_features.py --output /tmp/base.json

Builds the scoring path's `FeatureState` (features/state.py) from a simulated history with its fraud
labels, then times, for 5,000 transactions of the last week each at its own time: ``state.primitives``
(the in-memory primitives) and ``specs.finish_one`` (the features) — what a request spends on features —
and the whole state's traced memory divided by the transactions it holds. Run against an older checkout
(second line, ``git archive <commit> src | tar -x -C /tmp/base``) for the before/after in docs/ml.md §6.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import sys
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ticketguard.features.repository import TransactionFacts
from ticketguard.features.specs import FeatureParams, finish_one
from ticketguard.features.state import FeatureState, FraudLabel, Row, to_us
from ticketguard.simulate import SimulationConfig, simulate

DOCS = Path(__file__).resolve().parent.parent / "docs" / "ml"


def rows_of(tx: pd.DataFrame) -> list[Row]:
    out = []
    for r in tx.itertuples(index=False):
        out.append(
            Row(
                r.transaction_id,
                to_us(r.timestamp.to_pydatetime()),
                sys.intern(r.wallet_address),
                sys.intern(r.event_id),
                None if pd.isna(r.ticket_id) else sys.intern(r.ticket_id),
                float(r.price_paid),
                None if pd.isna(r.payment_method) else sys.intern(r.payment_method),
                bool(r.is_resale),
                None if pd.isna(r.seller_address) else sys.intern(r.seller_address),
                None if pd.isna(r.ip_address) else sys.intern(r.ip_address),
                None if pd.isna(r.latitude) else float(r.latitude),
                None if pd.isna(r.longitude) else float(r.longitude),
            )
        )
    return out


def labels_of(tx: pd.DataFrame, labels: pd.DataFrame) -> list[FraudLabel]:
    fraud = labels[labels["is_fraud"]].merge(tx, on="transaction_id")
    extended = "ip" in inspect.signature(FraudLabel).parameters
    out = []
    for r in fraud.itertuples(index=False):
        args = [
            r.transaction_id,
            to_us(r.timestamp.to_pydatetime()),
            to_us(r.labelled_at.to_pydatetime()),
            r.wallet_address,
            r.event_id,
            None if pd.isna(r.seller_address) else r.seller_address,
        ]
        if extended:
            args += [
                None if pd.isna(r.ip_address) else r.ip_address,
                None if pd.isna(r.payment_method) else r.payment_method,
            ]
        out.append(FraudLabel(*args))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--output", type=Path, default=DOCS / "bench_online_features.json")
    args = parser.parse_args()
    load = os.getloadavg()
    history = simulate(SimulationConfig(transactions=args.transactions, seed=7))
    tx = history.transactions.sort_values("timestamp", kind="stable").reset_index(drop=True)
    params = FeatureParams()
    rows = rows_of(tx)
    labels = labels_of(tx, history.labels)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    state = FeatureState(params)
    state.add_all(rows)
    state.set_labels(labels)
    gc.collect()
    state_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # Rows themselves are shared with `rows`; count them as part of the state (the keeper holds only it).
    del rows
    last_week = tx[tx["timestamp"] >= tx["timestamp"].max() - timedelta(days=7)]
    sample = last_week.sample(min(args.requests, len(last_week)), random_state=1)
    facts = [TransactionFacts.from_mapping(r) for r in sample.to_dict("records")]
    timings_p, timings_f = [], []
    for txn in facts[:200]:
        state.primitives(txn)
    for txn in facts:
        q = {
            "timestamp_s": to_us(txn.timestamp) / 1e6,
            "price_paid": float(txn.price_paid),
            "is_resale": float(txn.is_resale),
            "has_seller": float(txn.seller_address is not None),
            "has_payment_method": float(txn.payment_method is not None),
            "has_ticket": float(txn.ticket_id is not None),
            "has_ip": float(txn.ip_address is not None),
            "latitude": float("nan") if txn.latitude is None else float(txn.latitude),
            "longitude": float("nan") if txn.longitude is None else float(txn.longitude),
        }
        t0 = time.perf_counter()
        p = state.primitives(txn)
        t1 = time.perf_counter()
        features = finish_one(p, q, params)
        t2 = time.perf_counter()
        timings_p.append((t1 - t0) * 1000)
        timings_f.append((t2 - t1) * 1000)
    tp, tf = np.array(timings_p), np.array(timings_f)
    result = {
        "transactions": args.transactions,
        "requests": len(facts),
        "features": len(features),
        "load_average_before": [round(v, 2) for v in load],
        "state_bytes_per_transaction": round(state_bytes / len(tx), 1),
        "primitives_ms": {f"p{q}": round(float(np.percentile(tp, q)), 4) for q in (50, 95, 99)},
        "finish_ms": {f"p{q}": round(float(np.percentile(tf, q)), 4) for q in (50, 95, 99)},
        "total_ms_mean": round(float((tp + tf).mean()), 4),
    }
    print(json.dumps(result, indent=1))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
