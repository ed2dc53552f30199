"""Training: XGBoost on the time-ordered split, imbalance weight chosen on validation AUC-PR, early stopping.

Deterministic per seed: fixed ``seed`` and ``nthread``, the ``hist`` tree method, rows in time order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.metrics import average_precision_score, precision_recall_curve

from ticketguard.config import Settings

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class TrainingConfig:
    seed: int = 42
    nthread: int = 2
    max_rounds: int = 2000
    early_stopping_rounds: int = 100
    learning_rate: float = 0.05
    max_depth: int = 7
    min_child_weight: float = 1.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    max_bin: int = 256
    scale_pos_weight_options: tuple[float, ...] = (1.0, 5.0, 20.0)

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingConfig:
        return cls(
            seed=settings.train_seed,
            nthread=settings.train_nthread,
            max_rounds=settings.train_max_rounds,
            early_stopping_rounds=settings.train_early_stopping_rounds,
            learning_rate=settings.train_learning_rate,
            max_depth=settings.train_max_depth,
            min_child_weight=settings.train_min_child_weight,
            subsample=settings.train_subsample,
            colsample_bytree=settings.train_colsample_bytree,
            reg_lambda=settings.train_reg_lambda,
            max_bin=settings.train_max_bin,
            scale_pos_weight_options=tuple(settings.train_scale_pos_weight_options),
        )

    def booster_params(self, scale_pos_weight: float) -> dict[str, Any]:
        return {
            "objective": "binary:logistic",
            "eval_metric": ["logloss", "aucpr"],  # the last one drives early stopping
            "tree_method": "hist",
            "seed": self.seed,
            "nthread": self.nthread,
            "eta": self.learning_rate,
            "max_depth": self.max_depth,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "lambda": self.reg_lambda,
            "max_bin": self.max_bin,
            "scale_pos_weight": scale_pos_weight,
        }


@dataclass
class Candidate:
    scale_pos_weight: float
    validation_aucpr: float
    best_iteration: int


@dataclass
class TrainedModel:
    booster: xgb.Booster
    params: dict[str, Any]
    best_iteration: int
    candidates: list[Candidate]
    threshold_best_f1: float  # chosen on validation, reported on test
    threshold_fpr_2pct: float  # the validation score at which 2 % of legitimate transactions are flagged
    feature_names: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "best_iteration": self.best_iteration,
            "candidates": [asdict(c) for c in self.candidates],
            "threshold_best_f1": self.threshold_best_f1,
            "threshold_fpr_2pct": self.threshold_fpr_2pct,
        }


class _ProgressCallback(xgb.callback.TrainingCallback):
    def __init__(self, report: Progress, label: str, start: float, share: float, rounds: int) -> None:
        self.report, self.label, self.start, self.share, self.rounds = report, label, start, share, rounds

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if epoch % 10 == 0:
            aucpr = evals_log.get("validation", {}).get("aucpr", [float("nan")])[-1]
            self.report(
                f"{self.label} round {epoch} val AUC-PR {aucpr:.4f}",
                self.start + self.share * min(1.0, (epoch + 1) / self.rounds),
            )
        return False


def fit(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_validation: np.ndarray,
    y_validation: np.ndarray,
    feature_names: list[str],
    config: TrainingConfig,
    *,
    progress: Progress | None = None,
    rounds: int | None = None,
) -> TrainedModel:
    """Train one model per imbalance weight with early stopping; keep the best on validation AUC-PR.

    With ``rounds``, each model is trained for exactly that many rounds instead (no early stopping on the
    validation days: the number was chosen on the prequential folds, `ml.selection`)."""
    report = progress or (lambda _s, _f: None)
    train = xgb.DMatrix(x_train, label=y_train, feature_names=feature_names, nthread=config.nthread)
    validation = xgb.DMatrix(
        x_validation, label=y_validation, feature_names=feature_names, nthread=config.nthread
    )
    candidates: list[Candidate] = []
    best: tuple[float, xgb.Booster, float, int] | None = None
    share = 1.0 / len(config.scale_pos_weight_options)
    for i, weight in enumerate(config.scale_pos_weight_options):
        booster = xgb.train(
            config.booster_params(weight),
            train,
            num_boost_round=rounds or config.max_rounds,
            evals=[(validation, "validation")],
            early_stopping_rounds=None if rounds else config.early_stopping_rounds,
            verbose_eval=False,
            callbacks=[
                _ProgressCallback(
                    report, f"scale_pos_weight={weight:g}", i * share, share, rounds or config.max_rounds
                )
            ],
        )
        best_iteration = rounds - 1 if rounds else int(booster.best_iteration)
        trimmed = booster[: best_iteration + 1]
        score = float(average_precision_score(y_validation, trimmed.predict(validation)))
        candidates.append(Candidate(weight, score, best_iteration))
        if best is None or score > best[0]:
            best = (score, trimmed, weight, best_iteration)
    assert best is not None
    _, booster, weight, best_iteration = best
    scores = booster.predict(validation)
    report("trained", 1.0)
    return TrainedModel(
        booster=booster,
        params=config.booster_params(weight),
        best_iteration=best_iteration,
        candidates=candidates,
        threshold_best_f1=best_f1_threshold(y_validation, scores),
        threshold_fpr_2pct=threshold_at_fpr(y_validation, scores, 0.02),
        feature_names=feature_names,
    )


def best_f1_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    precision, recall, thresholds = precision_recall_curve(y, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def threshold_at_fpr(y: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """The smallest threshold flagging (score > threshold) at most ``fpr`` of the legitimate rows."""
    legit = np.sort(scores[y == 0])
    if len(legit) == 0:
        return 0.5
    index = min(len(legit) - 1, int(np.ceil((1 - fpr) * len(legit))) - 1)
    return float(legit[max(index, 0)])
