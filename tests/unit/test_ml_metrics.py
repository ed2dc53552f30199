"""Evaluation metrics: the fast weighted curves agree with scikit-learn; top-k and thresholds by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from ticketguard.ml import metrics
from ticketguard.ml.train import best_f1_threshold, threshold_at_fpr


def _data(seed: int = 0, n: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.05).astype(np.int8)
    scores = np.clip(rng.normal(0.3 + 0.3 * y, 0.2), 0, 1).round(2)  # rounded: many ties
    return y, scores


def test_curve_metrics_match_scikit_learn_with_ties() -> None:
    y, scores = _data()
    curve = metrics.SortedScores(y, scores).curve()
    assert metrics.auc_roc(curve) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert metrics.auc_pr(curve) == pytest.approx(average_precision_score(y, scores), abs=1e-12)


def test_weighted_curve_equals_repeating_rows() -> None:
    y, scores = _data(1, 800)
    weights = np.random.default_rng(2).integers(0, 4, len(y)).astype(float)
    ranked = metrics.SortedScores(y, scores)
    order = np.argsort(-scores, kind="stable")
    weighted = metrics.curve_metrics(ranked.curve(weights[order]))
    repeated = np.repeat(np.arange(len(y)), weights.astype(int))
    plain = metrics.curve_metrics(metrics.SortedScores(y[repeated], scores[repeated]).curve())
    for name in metrics.CURVE_METRICS:
        assert weighted[name] == pytest.approx(plain[name], abs=1e-12)


def test_detection_at_fpr_and_precision_at_recall_by_hand() -> None:
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    c = metrics.SortedScores(y, s).curve()
    assert metrics.recall_at_fpr(c, 0.0) == pytest.approx(2 / 3)  # above 0.7: two of three frauds, no legit
    assert metrics.recall_at_fpr(c, 1 / 7) == pytest.approx(1.0)
    assert metrics.precision_at_recall(c, 0.9) == pytest.approx(3 / 4)
    at = metrics.at_threshold(y, s, 0.55)
    assert (at.tp, at.fp, at.tn, at.fn) == (3, 1, 6, 0)
    assert at.f1 == pytest.approx(2 * 0.75 / 1.75)


def test_bootstrap_interval_contains_the_point_estimate() -> None:
    y, scores = _data(3)
    ci = metrics.bootstrap(y, scores, f1_threshold=0.5, samples=60, seed=1)
    auc = roc_auc_score(y, scores)
    assert ci["auc_roc"][0] < auc < ci["auc_roc"][1]
    assert ci["auc_roc"][1] - ci["auc_roc"][0] < 0.1
    assert set(ci) == {*metrics.CURVE_METRICS, "f1"}


def test_top_k_per_day_counts_each_wallet_once_by_its_best_score() -> None:
    day = np.array([0, 0, 0, 0, 1, 1, 1])
    wallet = np.array(["a", "a", "b", "c", "a", "d", "e"], dtype=object)
    score = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.95, 0.5])
    fraud = np.array([0, 1, 0, 1, 0, 1, 0])
    out = metrics.top_k_per_day(day, wallet, score, fraud, k=2)
    # day 0: top wallets a (0.9, one fraud row) and b (0.8, legit) -> 1/2; day 1: d (fraud), e -> 1/2
    assert out["precision_mean"] == pytest.approx(0.5)
    assert out["days"] == 2
    assert out["fraud_wallets_in_top_k_share"] == pytest.approx(2 / 3)  # c on day 0 is missed


def test_thresholds_chosen_on_validation() -> None:
    y = np.array([0] * 100 + [1] * 10)
    s = np.concatenate([np.linspace(0, 0.5, 100), np.linspace(0.45, 0.95, 10)])
    t = threshold_at_fpr(y, s, 0.02)
    assert ((s[y == 0] > t).mean()) <= 0.02
    assert ((s[y == 0] >= t).mean()) > 0  # the smallest such threshold
    assert 0.4 < best_f1_threshold(y, s) < 0.6


def test_threshold_at_fpr_is_the_lowest_with_fpr_at_most_the_limit() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(5000) < 0.05).astype(np.int8)
    scores = np.round(np.where(y == 1, rng.beta(5, 2, 5000), rng.beta(2, 5, 5000)), 3)  # ties on purpose
    t = threshold_at_fpr(y, scores, 0.02)
    legit = scores[y == 0]
    assert (legit > t).mean() <= 0.02
    lower = legit[legit < t].max()  # the next candidate threshold down flags more than 2 %
    assert (legit > lower).mean() > 0.02
