"""Training speed and quality on N simulated transactions, plus serving latency of the trained model.

    .venv/bin/python benchmarks/bench_train.py                  # 1,000,000 transactions, default settings

Target: training on the features of 1,000,000 transactions in under 5 minutes on the 2-core reference
machine (all imbalance-weight candidates with early stopping). Then the full evaluation report on the
held-out test days (docs/ml/report/), and one-row serving latencies: `inplace_predict`, exact and
approximate contributions. Results go to docs/ml/bench_train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ticketguard.config import Settings
from ticketguard.ml.registry import ModelCard
from ticketguard.ml.service import evaluate_model, train_model
from ticketguard.ml.serving import ServingModel
from ticketguard.simulate import SimulationConfig, simulate

DOCS = Path(__file__).resolve().parent.parent / "docs" / "ml"


def latency(fn, rows: np.ndarray, repeat: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    for row in rows[:50]:
        fn(row)
    timings = []
    for i in range(repeat):
        row = rows[i % len(rows)]
        started = time.perf_counter()
        fn(row)
        timings.append((time.perf_counter() - started) * 1000)
    ms = np.array(timings)
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()

    load_before = os.getloadavg()
    history = simulate(SimulationConfig(transactions=args.transactions, seed=args.seed))
    settings = Settings()
    marks: dict[str, float] = {}
    last = [time.perf_counter(), 0.0]

    stage_ends = (("features", 0.25), ("augmentation", 0.3), ("selection", 0.75))

    def progress(stage: str, fraction: float) -> None:
        # train_model reports features in [0, 0.25), the missing-field augmentation up to 0.3, the
        # prequential selection in [0.3, 0.75) and the final XGBoost fit in [0.75, 0.95).
        for name, end in stage_ends:
            if fraction >= end and name not in marks:
                marks[name] = time.perf_counter() - last[0]
                last[0] = time.perf_counter()
                last[1] = time.perf_counter()

    started = time.perf_counter()
    run = train_model(settings, history, source="simulator", progress=progress, now=datetime.now(UTC))
    total = time.perf_counter() - started
    fit_s = time.perf_counter() - last[1]
    card: ModelCard = run.card
    result: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": load_before},
        "transactions": args.transactions,
        "features_s": round(marks.get("features", float("nan")), 2),
        "augmentation_s": round(marks.get("augmentation", float("nan")), 2),
        "selection_s": round(marks.get("selection", float("nan")), 2),
        "final_fit_s": round(fit_s, 2),
        "training_s": round(total - marks.get("features", 0.0), 2),
        "selection": card.params["selection"],
        "features_kept": len(card.feature_names),
        "features_and_training_s": round(total, 2),
        "train_rows": card.n_rows,
        "train_fraud": card.n_fraud,
        "best_iteration": card.params["best_iteration"],
        "candidates": card.params["candidates"],
        "chosen_scale_pos_weight": card.params["params"]["scale_pos_weight"],
        "test": card.metrics["test"],
        "validation": card.metrics["validation"],
    }
    print(json.dumps(result, indent=2), flush=True)

    report_dir = DOCS / "report"
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        numbers, _ = evaluate_model(
            settings,
            run.model.booster,
            card,
            run.data,
            out_dir=Path(tmp),
            context={"data": f"simulator, {args.transactions:,} transactions, seed {args.seed}"},
        )
        result["evaluation_s"] = round(time.perf_counter() - started, 2)
        shutil.rmtree(report_dir, ignore_errors=True)
        shutil.copytree(tmp, report_dir)
    result["report"] = {
        "metrics": numbers["metrics"],
        "targets": numbers["targets"],
        "top_k_per_day": numbers["top_k_per_day"],
        "strongest_single_feature": numbers["strongest_single_feature"],
        "patterns": numbers["patterns"],
    }

    model = ServingModel(run.model.booster, card)
    rows = run.data.matrix(run.splits.test, card.feature_names)[:5000]
    result["serving"] = {
        "predict_inplace": latency(model.predict, rows, args.repeat),
        "explain_approximate": latency(lambda r: model.explain(r, approximate=True), rows, args.repeat // 4),
        "explain_exact": latency(model.explain, rows, args.repeat // 4),
    }
    result["machine"]["load_after"] = os.getloadavg()  # type: ignore[index]
    print(json.dumps({k: result[k] for k in ("serving", "evaluation_s", "machine")}, indent=2))
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "bench_train.json").write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
