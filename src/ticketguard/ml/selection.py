"""Honest model selection: hyper-parameters and the feature set chosen by prequential validation.

The fit period (train + validation of the split, before the gap) is cut into time-ordered folds. Fold k
validates on a block of days and trains only on rows that end ``gap`` (the label delay) before that block,
with the labels as known at the block's start — what a model deployed then could have learnt from:

    fold 1:  | train ...... |gap| val 1 |
    fold 2:  | train ............... |gap| val 2 |
    fold 3:  | train ........................ |gap| val 3 |   (val 3 = the split's validation days)

Every candidate is scored on each fold's validation block (labels as known at deployment, the split's test
start) by what the platform is judged on: the mean of its **average precision** and its **wallet
precision@k per day** (`ml.metrics.wallet_precision_at_k`, k = `TRAIN_SELECTION_ALERTS_PER_DAY`, the
analysts' daily review capacity; the validation blocks keep every row, so k means the same as in
production). Candidates are ranked by the mean of that score over folds (AP alone when k is 0 or the folds
carry no wallets/days):

1. **Hyper-parameters**: each of `TRAIN_MAX_DEPTH_OPTIONS` × `TRAIN_SCALE_POS_WEIGHT_OPTIONS`, with early
   stopping on the fold's validation AUC-PR, on every non-constant feature; the first in the grid's order
   (shallower, then lower weight) within `TRAIN_SELECTION_TOLERANCE` of the best mean score wins.
2. **Feature set**, with the chosen parameters: all non-constant features against the features that carry
   the top gain share in the folds' models (`TRAIN_FEATURE_GAIN_SHARES`, e.g. the features covering 99 % of
   the total gain), and the compact sets of the `TRAIN_FEATURE_TOP_COUNTS` features of highest gain (e.g. 15
   and 30) — a small smooth model can win when the data favours it. A smaller set wins when its mean
   score is within `TRAIN_SELECTION_TOLERANCE` of the best.

Features that are constant over the fit period are dropped first (they cannot carry signal on this data).
Everything tried — the folds, every candidate's per-fold AP, the kept and dropped features with the
reason — is returned for the model's metadata and the evaluation report.

Deterministic per seed: the same ``hist`` trees, seeds and thread count as the final fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.metrics import average_precision_score

from ticketguard.ml.metrics import wallet_precision_at_k

Progress = Callable[[str, float], None]
US = 1_000_000
EPOCH_US = 0


@dataclass(frozen=True)
class Fold:
    """Train on [train_start, train_end), validate on [validation_start, validation_end); the labels of the
    training rows as known at validation_start."""

    index: int
    train_start: datetime
    train_end: datetime
    validation_start: datetime
    validation_end: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "train_start": self.train_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "validation_start": self.validation_start.isoformat(),
            "validation_end": self.validation_end.isoformat(),
        }


def plan_folds(
    train_start: datetime,
    validation_start: datetime,
    validation_end: datetime,
    *,
    count: int,
    gap: timedelta,
) -> list[Fold]:
    """Up to ``count`` folds whose validation blocks tile back from the split's validation days; a fold
    whose training part would be shorter than one validation block is not made. At least the last."""
    block = validation_end - validation_start
    folds: list[Fold] = []
    for k in range(count):
        v_end = validation_end - block * k
        v_start = v_end - block
        t_end = v_start - gap
        if k > 0 and t_end - train_start < block:
            break
        folds.append(Fold(0, train_start, max(t_end, train_start), v_start, v_end))
    folds.reverse()
    return [
        Fold(i + 1, f.train_start, f.train_end, f.validation_start, f.validation_end)
        for i, f in enumerate(folds)
    ]


@dataclass
class Candidate:
    """One configuration tried: its parameters, feature set, AP and wallet precision@k per fold."""

    name: str
    params: dict[str, Any]
    features: str
    n_features: int
    fold_ap: list[float]
    best_iterations: list[int]
    fold_wallet_precision: list[float | None] = field(default_factory=list)
    # per fold: the fewest trees whose validation AUC-PR is within the tolerance of that fold's best
    enough_iterations: list[int] = field(default_factory=list)

    @property
    def mean_ap(self) -> float:
        return float(np.mean(self.fold_ap)) if self.fold_ap else float("nan")

    @property
    def fold_score(self) -> list[float]:
        """Per fold: the mean of AP and wallet precision@k per day (AP alone where there is none)."""
        wp = self.fold_wallet_precision or [None] * len(self.fold_ap)
        return [ap if w is None else (ap + w) / 2.0 for ap, w in zip(self.fold_ap, wp, strict=True)]

    @property
    def score(self) -> float:
        """What selection ranks on: the mean over folds of `fold_score`."""
        return float(np.mean(self.fold_score)) if self.fold_ap else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "features": self.features,
            "n_features": self.n_features,
            "fold_ap": [round(v, 6) for v in self.fold_ap],
            "mean_ap": round(self.mean_ap, 6),
            "fold_wallet_precision": [None if v is None else round(v, 6) for v in self.fold_wallet_precision],
            "score": round(self.score, 6),
            "best_iterations": self.best_iterations,
            "enough_iterations": self.enough_iterations,
        }


@dataclass
class Selection:
    folds: list[dict[str, Any]]
    candidates: list[Candidate]
    chosen: Candidate
    kept: list[str]
    dropped: dict[str, str] = field(default_factory=dict)  # feature → why

    def to_dict(self) -> dict[str, Any]:
        return {
            "folds": self.folds,
            "candidates": [c.to_dict() for c in self.candidates],
            "chosen": self.chosen.name,
            "chosen_params": self.chosen.params,
            "kept_features": self.kept,
            "dropped_features": self.dropped,
        }


@dataclass(frozen=True)
class FoldData:
    """One fold's matrices (all features, in the catalogue order)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_validation: np.ndarray
    y_validation: np.ndarray
    w_train: np.ndarray | None = None  # row weights (legitimate rows subsampled: 1 / their sampling rate)
    day_validation: np.ndarray | None = None  # UTC day number of each validation row (wallet precision@k)
    wallet_validation: np.ndarray | None = None  # wallet of each validation row


def constant_features(x: np.ndarray, names: Sequence[str]) -> list[str]:
    """Features with a single value over every row of ``x``."""
    if len(x) == 0:
        return list(names)
    lo = np.nanmin(x, axis=0)
    hi = np.nanmax(x, axis=0)
    return [name for name, a, b in zip(names, lo, hi, strict=True) if a == b]


def _wallet_precision(data: FoldData, scores: np.ndarray, k: int) -> float | None:
    if k < 1 or data.day_validation is None or data.wallet_validation is None:
        return None
    out = wallet_precision_at_k(data.day_validation, data.wallet_validation, scores, data.y_validation, k)
    return float(out["mean"])


def _fit_one(
    params: dict[str, Any],
    train: xgb.DMatrix,
    validation: xgb.DMatrix,
    y_validation: np.ndarray,
    rounds: int,
    early: int,
    tolerance: float,
) -> tuple[float, int, int, xgb.Booster, np.ndarray]:
    """One fold's fit, early-stopped on the validation days: its AP, best iteration, the fewest iterations
    within ``tolerance`` of the best validation AUC-PR (`enough_iteration`), the booster and its scores."""
    curves: dict[str, dict[str, list[float]]] = {}
    booster = xgb.train(
        params,
        train,
        num_boost_round=rounds,
        evals=[(validation, "validation")],
        early_stopping_rounds=early,
        evals_result=curves,
        verbose_eval=False,
    )
    best = int(booster.best_iteration)
    scores = booster.predict(validation, iteration_range=(0, best + 1))
    enough = enough_iteration(curves["validation"]["aucpr"][: best + 1], tolerance)
    return float(average_precision_score(y_validation, scores)), best, enough, booster, scores


def enough_iteration(curve: Sequence[float], tolerance: float) -> int:
    """The first iteration whose validation score is within ``tolerance`` of the curve's best: the trees
    after it bought less than the tolerance on the fold, and the final model does without them (the rule
    of `best_candidate`, applied to the number of trees)."""
    values = np.asarray(curve, dtype=np.float64)
    return int(np.flatnonzero(values >= values.max() - tolerance)[0])


def select(
    folds: Sequence[FoldData],
    fold_plans: Sequence[Fold],
    feature_names: Sequence[str],
    param_grid: Sequence[dict[str, Any]],
    *,
    rounds: int,
    early_stopping_rounds: int,
    gain_shares: Sequence[float],
    tolerance: float,
    nthread: int,
    alerts_per_day: int = 0,
    top_counts: Sequence[int] = (),
    progress: Progress | None = None,
) -> Selection:
    """Choose parameters, then the feature set, by the folds' mean score (see the module doc)."""
    report = progress or (lambda _s, _f: None)
    names = list(feature_names)
    stacked = np.concatenate([f.x_train for f in folds] + [f.x_validation for f in folds])
    constant = set(constant_features(stacked, names))
    del stacked
    usable = [i for i, n in enumerate(names) if n not in constant]
    if not usable:
        raise ValueError("every feature is constant over the training period: nothing to learn from")
    dropped = {n: "constant over the training period" for n in names if n in constant}
    fold_info = []
    for plan, data in zip(fold_plans, folds, strict=True):
        fold_info.append(
            {
                **plan.to_dict(),
                "train_rows": len(data.y_train),
                "train_legit_weight": 1.0 if data.w_train is None else float(data.w_train.max()),
                "train_fraud": int(data.y_train.sum()),
                "validation_rows": len(data.y_validation),
                "validation_fraud": int(data.y_validation.sum()),
            }
        )
    total = len(param_grid) * len(folds) + (len(gain_shares) + len(top_counts)) * len(folds)
    done = [0]

    def tick(label: str) -> None:
        done[0] += 1
        report(label, done[0] / max(total, 1))

    def matrices(columns: list[int]) -> list[tuple[xgb.DMatrix, xgb.DMatrix, np.ndarray]]:
        out: list[tuple[xgb.DMatrix, xgb.DMatrix, np.ndarray]] = []
        cols = [names[i] for i in columns]
        for data in folds:
            train = xgb.QuantileDMatrix(
                data.x_train[:, columns],
                label=data.y_train,
                weight=data.w_train,
                feature_names=cols,
                nthread=nthread,
            )
            validation = xgb.QuantileDMatrix(
                data.x_validation[:, columns],
                label=data.y_validation,
                feature_names=cols,
                nthread=nthread,
                ref=train,
            )
            out.append((train, validation, data.y_validation))
        return out

    candidates: list[Candidate] = []
    # 1. hyper-parameters on every usable feature
    full = matrices(usable)
    gains: dict[int, list[dict[str, Any]]] = {}
    for i, params in enumerate(param_grid):
        cand = Candidate(_describe(params), dict(params), "all non-constant", len(usable), [], [])
        gains[i] = []
        for k, (train, validation, y) in enumerate(full):
            ap, best, enough, booster, scores = _fit_one(
                params, train, validation, y, rounds, early_stopping_rounds, tolerance
            )
            wp = _wallet_precision(folds[k], scores, alerts_per_day)
            cand.fold_ap.append(ap)
            cand.fold_wallet_precision.append(wp)
            cand.best_iterations.append(best)
            cand.enough_iterations.append(enough)
            gains[i].append(booster.get_score(importance_type="total_gain"))
            shown = "" if wp is None else f" wallet P@k {wp:.4f}"
            tick(f"selection: {cand.name} fold {k + 1} AP {ap:.4f}{shown}")
        candidates.append(cand)
    best_index = best_candidate(candidates, tolerance)
    best_params = candidates[best_index]
    del full
    # 2. the feature set, with those parameters: the features carrying the top gain share
    gain = {names[i]: 0.0 for i in usable}
    for fold_gain in gains[best_index]:
        for name, value in fold_gain.items():
            gain[name] += float(value)
    ranked = sorted(gain, key=lambda n: (-gain[n], names.index(n)))
    total_gain = sum(gain.values()) or 1.0
    sets: list[tuple[str, list[int], Candidate]] = [("all non-constant", usable, best_params)]
    positive = [n for n in ranked if gain[n] > 0]
    proposals: list[tuple[str, list[str]]] = []
    for share in gain_shares:
        keep: list[str] = []
        covered = 0.0
        for name in positive:
            if covered >= share * total_gain:
                break
            keep.append(name)
            covered += gain[name]
        proposals.append((f"top {share:.1%} of the gain", keep))
    for count in top_counts:
        proposals.append((f"top {count} by gain", positive[:count]))
    for label, keep in proposals:
        columns = [i for i in usable if names[i] in keep]
        if not columns or len(columns) == len(usable) or any(len(columns) == len(s[1]) for s in sets):
            continue
        cand = Candidate(best_params.name, dict(best_params.params), label, len(columns), [], [])
        for k, (train, validation, y) in enumerate(matrices(columns)):
            ap, best, enough, _booster, scores = _fit_one(
                best_params.params, train, validation, y, rounds, early_stopping_rounds, tolerance
            )
            wp = _wallet_precision(folds[k], scores, alerts_per_day)
            cand.fold_ap.append(ap)
            cand.fold_wallet_precision.append(wp)
            cand.best_iterations.append(best)
            cand.enough_iterations.append(enough)
            tick(f"selection: {label} ({len(columns)} features) fold {k + 1} AP {ap:.4f}")
        candidates.append(cand)
        sets.append((label, columns, cand))
    top = max(c.score for _l, _c, c in sets)
    # The smallest set within the tolerance of the best mean score.
    label, columns, chosen = min(
        ((lab, cols, c) for lab, cols, c in sets if c.score >= top - tolerance), key=lambda s: len(s[1])
    )
    kept = [names[i] for i in columns]
    for name in names:
        if name not in kept and name not in dropped:
            dropped[name] = (
                "no gain in the folds' models"
                if gain.get(name, 0.0) <= 0
                else f"outside the chosen set ({label})"
            )
    report("selection done", 1.0)
    return Selection(fold_info, candidates, chosen, kept, dropped)


def best_candidate(candidates: Sequence[Candidate], tolerance: float = 0.0) -> int:
    """Index of the first candidate (the grid's order: shallower trees, then lower imbalance weight)
    whose mean score over folds is within ``tolerance`` of the highest — with ``tolerance`` 0, the best
    (the first on a tie). Fold scores differ by more than the tolerance from one block of days to the
    next, so a deeper model that wins by less is not preferred over the simpler one."""
    if not candidates:
        raise ValueError("no candidate to choose from")
    top = max(c.score for c in candidates)
    return next(j for j, c in enumerate(candidates) if c.score >= top - tolerance)


def _describe(params: dict[str, Any]) -> str:
    return f"max_depth={params.get('max_depth')} scale_pos_weight={params.get('scale_pos_weight'):g}"


def subsample_legit(
    rows: np.ndarray, y: np.ndarray, cap: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """At most about ``cap`` of ``rows``: every fraud row, legitimate rows sampled uniformly, weighted by
    the inverse of their sampling rate (the loss and the imbalance weight keep their meaning)."""
    positives = int(y.sum())
    negatives = len(rows) - positives
    if len(rows) <= cap or negatives == 0:
        return rows, None
    rate = max(cap - positives, cap // 10) / negatives
    keep = (y == 1) | (rng.random(len(rows)) < rate)
    weights = np.where(y[keep] == 1, 1.0, 1.0 / rate).astype(np.float32)
    return rows[keep], weights
