"""What each optional request field adds, and the resale farm sent without them — with and without training
on the serving path's missingness (`TRAIN_DROP_OPTIONAL_SHARE`).

    .venv/bin/python benchmarks/missing_fields.py                        # 200,000 transactions, seed 7

For each of the two models (share 0.3, the default, and 0): average precision on the held-out test days
with every field as sent, then with ip_address, payment_method, location, and all three left out of every
test transaction (features recomputed as the serving path computes them for such a request; the stored
history keeps its fields); and how many of the farm's 48 resales (12 new wallets × 4 at 8× face value
from one seller, `ticketguard.simulate.attacks.resale_farm`) are approved (score ≤ FRAUD_THRESHOLD_2FA)
when sent without the three fields, and with them. Results: docs/ml/missing_fields.json, docs/ml.md §2.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from ticketguard.config import Settings
from ticketguard.features.offline import OfflineFeatures
from ticketguard.frames import History
from ticketguard.ml.dataset import feature_params
from ticketguard.ml.service import train_model
from ticketguard.simulate import SimulationConfig, simulate
from ticketguard.simulate.attacks import Farm, resale_farm

DOCS = Path(__file__).resolve().parent.parent / "docs" / "ml"
DROPS = {
    "as sent": (),
    "no ip_address": ("ip_address",),
    "no payment_method": ("payment_method",),
    "no location": ("latitude", "longitude", "country"),
    "none of the three": ("ip_address", "payment_method", "latitude", "longitude", "country"),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=DOCS / "missing_fields.json")
    args = parser.parse_args()
    load = os.getloadavg()
    history = simulate(SimulationConfig(transactions=args.transactions, seed=args.seed))
    out: dict[str, object] = {
        "transactions": args.transactions,
        "seed": args.seed,
        "load_average_before": load,
    }
    for share in (0.3, 0.0):
        settings = Settings(train_drop_optional_share=share)
        params = feature_params(settings)
        started = time.perf_counter()
        run = train_model(settings, history, source="bench")
        seconds = time.perf_counter() - started
        test = run.splits.test
        tx = history.transactions[test]
        y = run.splits.y_test
        ap = {}
        for label, columns in DROPS.items():
            queries = tx.assign(**{c: None for c in columns}) if columns else tx
            features = OfflineFeatures(params).compute(history, queries)
            scores = run.model.booster.inplace_predict(features[run.card.feature_names].to_numpy(np.float32))
            ap[label] = round(float(average_precision_score(y, scores)), 4)
        farm_approved = {}
        for with_fields in (False, True):
            farm, resale = resale_farm(history, Farm(seed=0, with_optional_fields=with_fields))
            full = History(
                history.events, pd.concat([history.transactions, farm], ignore_index=True), history.labels
            )
            features = OfflineFeatures(params).compute(full, farm)
            scores = run.model.booster.inplace_predict(features[run.card.feature_names].to_numpy(np.float32))
            farm_approved["with the three fields" if with_fields else "without them"] = int(
                (scores[resale] <= settings.fraud_threshold_2fa).sum()
            )
        result = {"train_seconds": round(seconds, 1), "test_ap": ap, "farm_approved_of_48": farm_approved}
        print(share, json.dumps(result), flush=True)
        out[f"share_{share}"] = result
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
