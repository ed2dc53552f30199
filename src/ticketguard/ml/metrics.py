"""Evaluation metrics as pure functions of labels and scores (numpy only).

Curves are computed once on scores sorted high to low; a bootstrap resample only changes row weights
(Poisson(1) weights: the standard large-sample bootstrap), so 200 resamples of a million rows stay cheap.
AUC-PR is average precision (the step-wise sum of precision × recall increments, as scikit-learn's
`average_precision_score`), flagged means ``score > threshold`` (the decision rule of the API).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Curve:
    """Cumulative weighted counts at each distinct score, from the highest score down."""

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    positives: float
    negatives: float

    @property
    def tpr(self) -> np.ndarray:
        return self.tp / max(self.positives, 1e-12)

    @property
    def fpr(self) -> np.ndarray:
        return self.fp / max(self.negatives, 1e-12)

    @property
    def precision(self) -> np.ndarray:
        return self.tp / np.maximum(self.tp + self.fp, 1e-12)


class SortedScores:
    def __init__(self, y: np.ndarray, scores: np.ndarray) -> None:
        order = np.argsort(-scores, kind="stable")
        self.y = np.asarray(y, dtype=np.float64)[order]
        self.scores = np.asarray(scores, dtype=np.float64)[order]
        # Last index of each run of equal scores: the curve only has points between distinct scores.
        change = np.flatnonzero(np.diff(self.scores) != 0)
        self.ends = np.concatenate([change, [len(self.scores) - 1]]) if len(self.scores) else change

    def curve(self, weights: np.ndarray | None = None) -> Curve:
        w = np.ones(len(self.y)) if weights is None else weights
        tp = np.cumsum(w * self.y)[self.ends]
        fp = np.cumsum(w * (1 - self.y))[self.ends]
        return Curve(self.scores[self.ends], tp, fp, float(tp[-1]), float(fp[-1]))


def auc_roc(c: Curve) -> float:
    fpr = np.concatenate([[0.0], c.fpr])
    tpr = np.concatenate([[0.0], c.tpr])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def auc_pr(c: Curve) -> float:
    recall = np.concatenate([[0.0], c.tpr])
    return float(np.sum(np.diff(recall) * c.precision))


def recall_at_fpr(c: Curve, max_fpr: float) -> float:
    ok = c.fpr <= max_fpr
    return float(c.tpr[ok].max()) if ok.any() else 0.0


def precision_at_recall(c: Curve, min_recall: float) -> float:
    ok = c.tpr >= min_recall
    return float(c.precision[ok].max()) if ok.any() else 0.0


@dataclass(frozen=True)
class AtThreshold:
    threshold: float
    tp: float
    fp: float
    tn: float
    fn: float

    @property
    def detection_rate(self) -> float:
        return self.tp / max(self.tp + self.fn, 1e-12)

    @property
    def false_positive_rate(self) -> float:
        return self.fp / max(self.fp + self.tn, 1e-12)

    @property
    def precision(self) -> float:
        return self.tp / max(self.tp + self.fp, 1e-12) if self.tp + self.fp > 0 else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.detection_rate
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    def to_dict(self) -> dict[str, float | dict[str, int]]:
        return {
            "threshold": self.threshold,
            "detection_rate": self.detection_rate,
            "false_positive_rate": self.false_positive_rate,
            "precision": self.precision,
            "f1": self.f1,
            "confusion": {"tp": int(self.tp), "fp": int(self.fp), "tn": int(self.tn), "fn": int(self.fn)},
        }


def at_threshold(
    y: np.ndarray, scores: np.ndarray, threshold: float, weights: np.ndarray | None = None
) -> AtThreshold:
    w = np.ones(len(y)) if weights is None else weights
    flagged = scores > threshold
    fraud = y.astype(bool)
    return AtThreshold(
        threshold=float(threshold),
        tp=float(w[flagged & fraud].sum()),
        fp=float(w[flagged & ~fraud].sum()),
        tn=float(w[~flagged & ~fraud].sum()),
        fn=float(w[~flagged & fraud].sum()),
    )


CURVE_METRICS = ("auc_roc", "auc_pr", "detection_at_fpr_2pct", "precision_at_90_recall")


def curve_metrics(c: Curve) -> dict[str, float]:
    return {
        "auc_roc": auc_roc(c),
        "auc_pr": auc_pr(c),
        "detection_at_fpr_2pct": recall_at_fpr(c, 0.02),
        "precision_at_90_recall": precision_at_recall(c, 0.90),
    }


def bootstrap(
    y: np.ndarray, scores: np.ndarray, *, f1_threshold: float, samples: int, seed: int
) -> dict[str, tuple[float, float]]:
    """95 % percentile intervals of the curve metrics and of F1 at ``f1_threshold``."""
    rng = np.random.default_rng(seed)
    ranked = SortedScores(y, scores)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    flagged = np.asarray(scores)[order] > f1_threshold
    fraud = ranked.y.astype(bool)
    draws: dict[str, list[float]] = {name: [] for name in (*CURVE_METRICS, "f1")}
    for _ in range(samples):
        w = rng.poisson(1.0, len(y)).astype(np.float64)
        for name, value in curve_metrics(ranked.curve(w)).items():
            draws[name].append(value)
        tp = w[flagged & fraud].sum()
        fp = w[flagged & ~fraud].sum()
        fn = w[~flagged & fraud].sum()
        draws["f1"].append(2 * tp / max(2 * tp + fp + fn, 1e-12))
    return {name: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for name, v in draws.items()}


def top_k_per_day(
    day: np.ndarray, wallet: np.ndarray, scores: np.ndarray, y: np.ndarray, k: int
) -> dict[str, float | int]:
    """Precision of the k highest-scoring wallets of each day (a wallet counts once, by its top score;
    it is a hit when it made a fraudulent transaction that day) — what a review team of k a day sees."""
    import pandas as pd

    frame = pd.DataFrame({"day": day, "wallet": wallet, "score": scores, "fraud": y.astype(bool)})
    per_wallet = frame.groupby(["day", "wallet"], sort=False).agg(
        score=("score", "max"), fraud=("fraud", "any")
    )
    per_wallet = per_wallet.reset_index().sort_values(
        ["day", "score"], ascending=[True, False], kind="stable"
    )
    top = per_wallet.groupby("day", sort=True).head(k)
    daily = top.groupby("day")["fraud"].mean()
    fraud_wallets = per_wallet.groupby("day")["fraud"].sum()
    caught = top.groupby("day")["fraud"].sum()
    return {
        "k": int(k),
        "days": len(daily),
        "precision_mean": float(daily.mean()) if len(daily) else 0.0,
        "precision_min": float(daily.min()) if len(daily) else 0.0,
        "precision_pooled": float(top["fraud"].mean()) if len(top) else 0.0,
        "fraud_wallets_in_top_k_share": float(caught.sum() / max(fraud_wallets.sum(), 1)),
    }


def wallet_precision_at_k(
    day: np.ndarray,
    wallet: np.ndarray,
    scores: np.ndarray,
    y: np.ndarray,
    k: int = 100,
    *,
    remove_detected: bool = True,
) -> dict[str, Any]:
    """Wallet precision@k per day: the "card precision top-k" of the Fraud Detection Handbook (Le Borgne et
    al., "Precision top-k metrics"), with wallets in place of cards (issue 13).

    Days in order; on each day d, among the wallets with a transaction that day (less those detected on
    an earlier day when ``remove_detected``, as the handbook does: a compromised card found is blocked):

    - a wallet's score is its highest transaction score that day, and it is fraudulent that day when any
      of its transactions that day is a fraud;
    - the k highest-scoring wallets are the day's alerts (ties broken by wallet id, for determinism);
    - P@k(d) = fraudulent wallets among them / k — divided by k even on a day with fewer than k wallets;
    - the fraudulent wallets among them count as detected from then on.

    The metric is the mean of P@k(d) over the days. ``day`` is an integer day number (UTC days).
    """
    import pandas as pd

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    frame = pd.DataFrame(
        {"day": day, "wallet": wallet.astype(str), "score": scores, "fraud": np.asarray(y).astype(bool)}
    )
    per_wallet = (
        frame.groupby(["day", "wallet"], sort=True)
        .agg(score=("score", "max"), fraud=("fraud", "any"))
        .reset_index()
        .sort_values(["day", "score", "wallet"], ascending=[True, False, True], kind="stable")
    )
    detected: set[str] = set()
    per_day = []
    for value, rows in per_wallet.groupby("day", sort=True):
        if remove_detected and detected:
            rows = rows[~rows["wallet"].isin(detected)]
        top = rows.head(k)
        hits = top.loc[top["fraud"], "wallet"]
        if remove_detected:
            detected.update(hits)
        per_day.append(
            {
                "day": int(value),  # type: ignore[arg-type]
                "precision": len(hits) / k,
                "wallets": len(rows),
                "fraud_wallets": int(rows["fraud"].sum()),
                "fraud_wallets_in_top_k": len(hits),
            }
        )
    precisions = [d["precision"] for d in per_day]
    return {
        "k": int(k),
        "days": len(per_day),
        "mean": float(np.mean(precisions)) if precisions else 0.0,
        "remove_detected": remove_detected,
        "per_day": per_day,
    }
