"""The evaluation report: metrics with bootstrap intervals, per-pattern detection, top-k review precision,
single-feature AUCs, explanations, and plots — as JSON for machines and Markdown for people."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from ticketguard.ml import metrics
from ticketguard.ml.train import threshold_at_fpr

TARGETS = {"auc_roc": 0.947, "auc_pr": 0.823, "f1": 0.81, "detection_at_fpr_2pct": 0.95}
DAY_US = 86_400 * 1_000_000
SHAP_SAMPLE = 20_000


@dataclass
class EvaluationInput:
    y: np.ndarray
    scores: np.ndarray
    timestamp_us: np.ndarray
    wallet: np.ndarray
    pattern: np.ndarray
    features: np.ndarray
    feature_names: list[str]


def evaluate(
    data: EvaluationInput,
    booster: xgb.Booster,
    *,
    decision_thresholds: Mapping[str, float],
    f1_threshold: float,
    fpr_threshold: float,
    review_capacity: int,
    bootstrap_samples: int,
    seed: int,
    precision_k: int = 100,
) -> dict[str, Any]:
    """Every number of the report (JSON-ready). Thresholds chosen on validation are applied here as-is."""
    y, scores = data.y.astype(np.int8), data.scores.astype(np.float64)
    curve = metrics.SortedScores(y, scores).curve()
    point = metrics.curve_metrics(curve)
    f1_at = metrics.at_threshold(y, scores, f1_threshold)
    point["f1"] = f1_at.f1
    ci = metrics.bootstrap(y, scores, f1_threshold=f1_threshold, samples=bootstrap_samples, seed=seed)
    headline = {
        name: {"value": point[name], "ci95": list(ci[name])} for name in (*metrics.CURVE_METRICS, "f1")
    }
    headline["f1"]["threshold"] = f1_threshold
    headline["f1"]["threshold_source"] = "best F1 on the validation days"
    fpr_at = metrics.at_threshold(y, scores, fpr_threshold)
    report: dict[str, Any] = {
        "rows": len(y),
        "fraud": int(y.sum()),
        "fraud_rate": float(y.mean()),
        "metrics": headline,
        "targets": {
            name: {"target": target, "value": point[name], "met": bool(point[name] >= target)}
            for name, target in TARGETS.items()
        },
        "at_validation_fpr_2pct_threshold": fpr_at.to_dict(),
        "at_best_f1_threshold": f1_at.to_dict(),
        "decision_thresholds": {
            name: metrics.at_threshold(y, scores, t).to_dict() for name, t in decision_thresholds.items()
        },
        "top_k_per_day": metrics.top_k_per_day(
            data.timestamp_us // DAY_US, data.wallet, scores, y, review_capacity
        ),
        "wallet_precision_at_k": _wallet_precision(data, scores, y, precision_k),
        "patterns": _patterns(
            data,
            scores,
            {
                "validation_fpr_2pct": fpr_threshold,
                # the operating point behind the headline detection_at_fpr_2pct, read off the test rows
                "test_fpr_2pct": threshold_at_fpr(y, scores, 0.02),
                **decision_thresholds,
            },
        ),
        "single_feature_auc": _single_feature_auc(data, y),
        "mean_abs_shap": _mean_abs_shap(data, booster, seed),
    }
    strongest = max(report["single_feature_auc"].items(), key=lambda kv: kv[1])
    report["strongest_single_feature"] = {
        "feature": strongest[0],
        "auc_roc": strongest[1],
        "reaches_target_alone": bool(strongest[1] >= TARGETS["auc_roc"]),
    }
    return report


def _wallet_precision(data: EvaluationInput, scores: np.ndarray, y: np.ndarray, k: int) -> dict[str, Any]:
    """The handbook's card precision top-k with wallets as cards (`metrics.wallet_precision_at_k`), days
    as UTC calendar dates."""
    out = metrics.wallet_precision_at_k(data.timestamp_us // DAY_US, data.wallet, scores, y, k)
    for entry in out["per_day"]:
        entry["day"] = (np.datetime64(0, "D") + np.timedelta64(entry["day"], "D")).astype(str)
    out["definition"] = (
        "for each UTC day: the k wallets with the highest score that day (a wallet's score = its highest "
        "transaction score that day), not counting wallets already caught on an earlier day; precision = "
        "wallets among them with a fraud that day / k; mean over the days (Fraud Detection Handbook, "
        "card precision top-k, with wallets as cards)"
    )
    return out


def _patterns(data: EvaluationInput, scores: np.ndarray, thresholds: Mapping[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    patterns = np.array([p if p is not None else "unknown" for p in data.pattern], dtype=object)
    if (patterns == "unknown").all():
        return out
    for name in sorted(set(patterns)):
        rows = patterns == name
        out[str(name)] = {
            "rows": int(rows.sum()),
            "fraud": int(data.y[rows].sum()),
            "flagged_share": {key: float((scores[rows] > t).mean()) for key, t in thresholds.items()},
        }
    return out


def _single_feature_auc(data: EvaluationInput, y: np.ndarray) -> dict[str, float]:
    out = {}
    for j, name in enumerate(data.feature_names):
        auc = metrics.auc_roc(metrics.SortedScores(y, data.features[:, j].astype(np.float64)).curve())
        out[name] = max(auc, 1 - auc)  # a feature that separates "the other way round" separates as well
    return out


def _mean_abs_shap(data: EvaluationInput, booster: xgb.Booster, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    rows = np.arange(len(data.y))
    if len(rows) > SHAP_SAMPLE:
        rows = np.sort(rng.choice(rows, SHAP_SAMPLE, replace=False))
    matrix = xgb.DMatrix(data.features[rows], feature_names=data.feature_names)
    contributions = booster.predict(matrix, pred_contribs=True)[:, :-1]  # last column: bias
    mean_abs = np.abs(contributions).mean(axis=0)
    return {
        name: float(v)
        for name, v in sorted(zip(data.feature_names, mean_abs, strict=True), key=lambda kv: -kv[1])
    }


# ------------------------------------------------------------------------------------------ rendering
def write_report(
    report: Mapping[str, Any], data: EvaluationInput, out_dir: Path, *, title: str, context: Mapping[str, Any]
) -> dict[str, Path]:
    """metrics.json, report.md and the plots, in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = _plots(data, report, out_dir)
    payload = {"title": title, **context, **report}
    (out_dir / "metrics.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(_markdown(report, title, context, paths), encoding="utf-8")
    return {"json": out_dir / "metrics.json", "markdown": out_dir / "report.md", **paths}


def _plots(data: EvaluationInput, report: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, scores = data.y.astype(np.int8), data.scores
    curve = metrics.SortedScores(y, scores).curve()
    paths: dict[str, Path] = {}

    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot(np.concatenate([[0], curve.fpr]), np.concatenate([[0], curve.tpr]), lw=1.5)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.axvline(0.02, ls="--", c="tab:red", lw=1, label="FPR 2 %")
    ax.set(
        xlabel="false-positive rate",
        ylabel="detection rate",
        title=f"ROC (AUC {report['metrics']['auc_roc']['value']:.4f})",
    )
    ax.legend(loc="lower right")
    paths["roc"] = _save(fig, out_dir / "roc.png")

    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.step(curve.tpr, curve.precision, where="post", lw=1.5)
    ax.axhline(y.mean(), ls=":", c="grey", label=f"base rate {y.mean():.3%}")
    ax.set(
        xlabel="recall",
        ylabel="precision",
        ylim=(0, 1.02),
        title=f"Precision–recall (AP {report['metrics']['auc_pr']['value']:.4f})",
    )
    ax.legend(loc="lower left")
    paths["pr"] = _save(fig, out_dir / "pr.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = [i / 50 for i in range(51)]
    ax.hist(scores[y == 0], bins=bins, alpha=0.6, label="legitimate", log=True)
    ax.hist(scores[y == 1], bins=bins, alpha=0.6, label="fraud", log=True)
    for name, entry in report["decision_thresholds"].items():
        ax.axvline(entry["threshold"], ls="--", lw=1, c="black")
        ax.text(entry["threshold"], 0.35, name, rotation=90, fontsize=7, transform=ax.get_xaxis_transform())
    ax.set(xlabel="fraud score", ylabel="transactions (log)", title="Score distributions")
    ax.legend()
    paths["scores"] = _save(fig, out_dir / "scores.png")

    fig, ax = plt.subplots(figsize=(5, 4.5))
    # Fixed edges, finer near 0 where almost every transaction scores; empty bins are skipped.
    edges = np.array([0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0 + 1e-9])
    which = np.digitize(scores, edges) - 1
    used = [b for b in range(len(edges) - 1) if (which == b).any()]
    mean_score = [scores[which == b].mean() for b in used]
    observed = [y[which == b].mean() for b in used]
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.plot(mean_score, observed, marker="o")
    for b, xs, ys in zip(used, mean_score, observed, strict=True):
        ax.annotate(
            f"{int((which == b).sum()):,}", (xs, ys), fontsize=6, xytext=(3, -9), textcoords="offset points"
        )
    ax.set(
        xlabel="mean predicted score in bin",
        ylabel="observed fraud rate in bin",
        title="Calibration (n per bin)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    paths["calibration"] = _save(fig, out_dir / "calibration.png")

    shap = report["mean_abs_shap"]
    names = list(shap)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(names) + 1))
    ax.barh(names, [shap[n] for n in names])
    ax.set(xlabel="mean |SHAP| (log-odds)", title="Feature contributions (XGBoost pred_contribs)")
    ax.tick_params(axis="y", labelsize=7)
    paths["shap"] = _save(fig, out_dir / "shap.png")
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _fmt(entry: Mapping[str, Any]) -> str:
    lo, hi = entry["ci95"]
    return f"{entry['value']:.4f} [{lo:.4f}, {hi:.4f}]"


def _markdown(
    report: Mapping[str, Any], title: str, context: Mapping[str, Any], paths: Mapping[str, Path]
) -> str:
    m = report["metrics"]
    lines = [f"# {title}", ""]
    for key, value in context.items():
        if key != SELECTION_KEY:
            lines.append(f"- **{key}**: {value}")
    lines += [
        f"- **test rows**: {report['rows']:,} ({report['fraud']:,} fraud, {report['fraud_rate']:.3%})",
        "",
        "## Headline metrics (95 % bootstrap intervals)",
        "",
        "| metric | value [95 % CI] | target | met |",
        "| --- | --- | --- | --- |",
    ]
    for name in ("auc_roc", "auc_pr", "f1", "detection_at_fpr_2pct", "precision_at_90_recall"):
        target = report["targets"].get(name)
        lines.append(
            f"| {name} | {_fmt(m[name])} | {target['target'] if target else ''} | "
            f"{('yes' if target['met'] else '**no**') if target else ''} |"
        )
    lines += [
        "",
        f"F1 at threshold {m['f1']['threshold']:.4f} ({m['f1']['threshold_source']}). "
        "detection_at_fpr_2pct is read off the test ROC curve; the row below applies the threshold that "
        "flagged 2 % of validation legitimate transactions.",
        "",
        "## Decisions at thresholds",
        "",
        "| threshold | score > | detection | false-positive rate | precision | TP | FP | TN | FN |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = {
        "validation FPR 2 %": report["at_validation_fpr_2pct_threshold"],
        "best F1 (validation)": report["at_best_f1_threshold"],
        **report["decision_thresholds"],
    }
    for name, e in rows.items():
        c = e["confusion"]
        lines.append(
            f"| {name} | {e['threshold']:.4f} | {e['detection_rate']:.4f} | {e['false_positive_rate']:.4f} | "
            f"{e['precision']:.4f} | {c['tp']} | {c['fp']} | {c['tn']} | {c['fn']} |"
        )
    k = report["top_k_per_day"]
    lines += [
        "",
        f"## Review queue: top {k['k']} wallets per day",
        "",
        f"Over {k['days']} days: mean daily precision {k['precision_mean']:.4f} "
        f"(worst day {k['precision_min']:.4f}), pooled {k['precision_pooled']:.4f}; "
        f"{k['fraud_wallets_in_top_k_share']:.2%} of the fraudulent wallets of each day are in that day's "
        "top k.",
    ]
    w = report.get("wallet_precision_at_k")
    if w:
        lines += [
            "",
            f"## Wallet precision@{w['k']} per day",
            "",
            f"Mean over {w['days']} days: **{w['mean']:.4f}** — {w['definition']}.",
            "",
            "| day (UTC) | precision | wallets | fraudulent wallets | of them in the top k |",
            "| --- | --- | --- | --- | --- |",
        ]
        for d in w["per_day"]:
            lines.append(
                f"| {d['day']} | {d['precision']:.4f} | {d['wallets']} | {d['fraud_wallets']} | "
                f"{d['fraud_wallets_in_top_k']} |"
            )
    if report["patterns"]:
        keys = list(next(iter(report["patterns"].values()))["flagged_share"])
        lines += [
            "",
            "## Per pattern: share flagged",
            "",
            "| pattern | rows | fraud | " + " | ".join(keys) + " |",
            "| --- | --- | --- | " + " | ".join("---" for _ in keys) + " |",
        ]
        for name, e in report["patterns"].items():
            shares = " | ".join(f"{e['flagged_share'][key]:.4f}" for key in keys)
            lines.append(f"| {name} | {e['rows']} | {e['fraud']} | {shares} |")
    strongest = report["strongest_single_feature"]
    lines += [
        "",
        "## Single-feature AUC-ROC (test)",
        "",
        f"Strongest alone: `{strongest['feature']}` at {strongest['auc_roc']:.4f} — "
        + (
            "**reaches the AUC target by itself: the data is too easy**."
            if strongest["reaches_target_alone"]
            else "below the AUC target: no single signal solves the problem."
        ),
        "",
        "| feature | AUC | mean abs SHAP |",
        "| --- | --- | --- |",
    ]
    for name, auc in sorted(report["single_feature_auc"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {auc:.4f} | {report['mean_abs_shap'].get(name, 0.0):.4f} |")
    lines += _selection_markdown(context.get(SELECTION_KEY))
    lines += ["", "## Plots", ""]
    for name, path in paths.items():
        lines.append(f"![{name}]({path.name})")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ model selection (issue 13)
SELECTION_KEY = "model selection"


def _selection_markdown(selection: Mapping[str, Any] | None) -> list[str]:
    """The training's prequential selection (`ml.selection`): folds, every candidate, what was kept."""
    if not selection:
        return []
    lines = [
        "",
        "## Model selection (prequential folds, gap = label delay; AP and wallet precision@k per day)",
        "",
        "| fold | train | validation | train rows (fraud) | validation rows (fraud) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in selection.get("folds", []):
        lines.append(
            f"| {f['index']} | {f['train_start'][:10]} – {f['train_end'][:10]} | "
            f"{f['validation_start'][:10]} – {f['validation_end'][:10]} | "
            f"{f['train_rows']:,} ({f['train_fraud']:,}) | "
            f"{f['validation_rows']:,} ({f['validation_fraud']:,}) |"
        )
    lines += [
        "",
        "Ranked by the score: per fold the mean of AP and wallet precision@k per day (AP alone without k).",
        "",
        "Trees per fold: the early-stopped best / the fewest within the tolerance of it (the final model "
        "takes the median of the chosen candidate's second figures).",
        "",
        "| candidate | features | AP per fold | wallet P@k per fold | trees per fold (best / enough) "
        "| mean AP | score |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in selection.get("candidates", []):
        folds = ", ".join(f"{v:.4f}" for v in c["fold_ap"])
        wallets = ", ".join("–" if v is None else f"{v:.4f}" for v in c.get("fold_wallet_precision", []))
        trees = ", ".join(
            f"{b + 1} / {e + 1}"
            for b, e in zip(c.get("best_iterations", []), c.get("enough_iterations", []), strict=False)
        )
        score = c.get("score", c["mean_ap"])
        lines.append(
            f"| {c['name']} | {c['features']} ({c['n_features']}) | {folds} | {wallets or '–'} | "
            f"{trees or '–'} | {c['mean_ap']:.4f} | {score:.4f} |"
        )
    kept = selection.get("kept_features", [])
    dropped = selection.get("dropped_features", {})
    lines += [
        "",
        f"Chosen: **{selection.get('chosen')}**, {len(kept)} features kept. Dropped ({len(dropped)}): "
        + (", ".join(f"`{name}` ({why})" for name, why in dropped.items()) or "none")
        + ".",
    ]
    return lines
