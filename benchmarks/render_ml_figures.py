"""Rewrite docs/ml.md §6 (Figures) from the benchmark results, so the prose never drifts from the numbers.

    .venv/bin/python benchmarks/bench_train.py && .venv/bin/python benchmarks/bench_features.py
    .venv/bin/python benchmarks/render_ml_figures.py

Reads docs/ml/bench_train.json, docs/ml/bench_features.json and docs/ml/report/metrics.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent / "docs"
START = "## 6. Figures"
END = "## 7. "
FRAUD = {"scalper_bot", "stolen_payment", "account_takeover", "wash_trading", "price_manipulation"}
KIND = {
    "power_buyer": "legit look-alike",
    "honest_reseller": "legit look-alike",
    "traveller": "legit look-alike",
    "scalped_resale": "legit (victim buyer)",
    "normal": "legit",
}


def load(path: str) -> Any:
    return json.loads((DOCS / path).read_text(encoding="utf-8"))


def ci(metric: dict[str, Any]) -> str:
    lo, hi = metric["ci95"]
    return f"{metric['value']:.4f} [{lo:.4f}, {hi:.4f}]"


def main() -> None:
    train, feats, report = (
        load("ml/bench_train.json"),
        load("ml/bench_features.json"),
        load("ml/report/metrics.json"),
    )
    m = report["metrics"]
    serving = train["serving"]
    off = feats["offline"]
    slow = ", ".join(f"{k} {v:.1f} s" for k, v in list(off["slowest_stages_s"].items())[:1])
    lines = [
        f"{START} (1,000,000 simulated transactions, seed 7, default settings)",
        "",
        "Reference machine: 2 cores. Load average before the runs: "
        f"{feats['machine']['load_before'][0]:.2f} (features), {train['machine']['load_before'][0]:.2f} "
        "(training). Raw numbers: `docs/ml/bench_features.json`, `docs/ml/bench_train.json`; the full "
        "report: `docs/ml/report/`. `benchmarks/render_ml_figures.py` writes this section from those files.",
        "",
        "| step | time |",
        "| --- | --- |",
        f"| simulate 1,000,000 transactions (in memory) | {off['simulate_s']:.1f} s |",
        "| **offline features, 1,000,000 transactions** (target < 2 min) | "
        f"**{off['offline_features_s']:.1f} s** ({off['rows_per_s']:,} rows/s; slowest stage: {slow}) |",
        f"| **training** on {train['train_rows']:,} rows ({train['train_fraud']:,} fraud): missing-field "
        f"augmentation {train.get('augmentation_s', 0):.0f} s, prequential selection of "
        f"{len(train.get('selection', {}).get('candidates', []))} candidates × "
        f"{len(train.get('selection', {}).get('folds', []))} folds {train.get('selection_s', 0):.0f} s, "
        f"final fit {train.get('final_fit_s', 0):.0f} s (target < 5 min) | "
        f"**{train['training_s']:.1f} s** |",
        f"| evaluation report (bootstrap resamples of {report['rows']:,} rows, SHAP, plots) | "
        f"{train['evaluation_s']:.0f} s |",
    ]
    for name, label in (("online_sqlite", "SQLite"), ("online_postgresql", "PostgreSQL")):
        if name in feats:
            o = feats[name]
            lines.append(
                f"| online features, one request, {o['database_rows']:,}-row database, {label} | "
                f"p50 {o['p50_ms']:.1f} ms, p95 {o['p95_ms']:.1f} ms, p99 {o['p99_ms']:.1f} ms |"
            )
    lines += [
        f"| serving: one-row `inplace_predict` | p50 {serving['predict_inplace']['p50_ms']:.2f} ms, "
        f"p99 {serving['predict_inplace']['p99_ms']:.2f} ms |",
        f"| serving: approximate contributions / exact TreeSHAP | p50 "
        f"{serving['explain_approximate']['p50_ms']:.2f} ms / {serving['explain_exact']['p50_ms']:.1f} ms |",
        "",
        f"Quality on the held-out test days ({report['rows']:,} transactions, {report['fraud']:,} fraud), "
        "95 % bootstrap intervals:",
        "",
        "| metric | value [95 % CI] | guide's target |",
        "| --- | --- | --- |",
        f"| AUC-ROC | {ci(m['auc_roc'])} | 0.947 |",
        f"| AUC-PR | {ci(m['auc_pr'])} | 0.823 |",
        f"| F1 (threshold {m['f1']['threshold']:.2f}, chosen on validation) | {ci(m['f1'])} | 0.81 |",
        f"| detection at FPR ≤ 2 % (test ROC) | {ci(m['detection_at_fpr_2pct'])} | ≥ 0.95 |",
        f"| precision at 90 % recall | {ci(m['precision_at_90_recall'])} | |",
    ]
    v = report["at_validation_fpr_2pct_threshold"]
    top = report["top_k_per_day"]
    lines += [
        f"| validation 2 %-FPR threshold applied to test | detection {v['detection_rate']:.4f} at FPR "
        f"{v['false_positive_rate']:.4f} | |",
        f"| top-{top['k']} wallets per day | mean daily precision {top['precision_mean']:.3f}; "
        f"{top['fraud_wallets_in_top_k_share']:.0%} of each day's fraudulent wallets in the top "
        f"{top['k']} | |",
        "",
    ]
    d = report["decision_thresholds"]
    lines += [
        "At the decision thresholds: "
        + ", ".join(
            f"`{name}` (> {d[name]['threshold']:.2f}) detects {d[name]['detection_rate']:.1%} at FPR "
            f"{d[name]['false_positive_rate']:.3%}"
            for name in ("REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED")
        )
        + f". Chosen by the prequential folds: {train.get('selection', {}).get('chosen', '?')}, "
        f"{train.get('features_kept', '?')} features kept.",
        "",
        "Per pattern, share flagged: at the test 2 %-FPR operating point (the one behind the headline "
        "detection), at the validation 2 %-FPR threshold applied to test, and at `REQUIRE_2FA`:",
        "",
        "| pattern | kind | test rows | @ test FPR 2 % | @ validation FPR 2 % | > 0.40 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, p in sorted(report["patterns"].items(), key=lambda kv: (kv[0] not in FRAUD, kv[0])):
        share = p["flagged_share"]
        lines.append(
            f"| {name} | {'fraud' if name in FRAUD else KIND.get(name, 'legit')} | {p['rows']:,} | "
            f"{share.get('test_fpr_2pct', float('nan')):.3f} | {share['validation_fpr_2pct']:.3f} | "
            f"{share['REQUIRE_2FA']:.4f} |"
        )
    single = sorted(report["single_feature_auc"].items(), key=lambda kv: -kv[1])[:4]
    lines += [
        "",
        "| | |",
        "| --- | --- |",
        "| ![ROC](ml/report/roc.png) | ![Precision–recall](ml/report/pr.png) |",
        "| ![Score distributions](ml/report/scores.png) | ![Calibration](ml/report/calibration.png) |",
        "",
        "![Mean |SHAP| per feature](ml/report/shap.png)",
        "",
        "**Is the simulator too easy?** No single feature reaches the targets: the strongest alone are "
        + ", ".join(f"`{k}` {v:.3f}" for k, v in single)
        + " (AUC-ROC; all in the report's table). The model needs combinations: travellers trip the location "
        "features, power buyers the velocity ones, honest resellers the resale ones. The hardest fraud is "
        "`stolen_payment`: a quarter of it is friendly fraud by established wallets with one new card, which "
        "ordinary buyers with the odd new card also show.",
        "",
        "What the calibration plot shows: mid-range scores under-predict the observed fraud rate on test. "
        "That is the label-maturity rule at work — late chargebacks count as legitimate in training, as they "
        "would in production — not a bug; rank metrics are unaffected.",
        "",
    ]
    doc = (DOCS / "ml.md").read_text(encoding="utf-8")
    start, end = doc.index(START), doc.index(END)
    (DOCS / "ml.md").write_text(doc[:start] + "\n".join(lines) + "\n" + doc[end:], encoding="utf-8")
    print("docs/ml.md §6 rewritten")


if __name__ == "__main__":
    main()
