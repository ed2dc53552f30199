"""Training and evaluation runs: data → features → split → model → registry → report.

Used by the CLI (`ticketguard train`, `ticketguard evaluate`) and the retraining job (`ml.jobs.retrain`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sqlalchemy import Engine

from ticketguard.config import Settings
from ticketguard.features.specs import FEATURE_NAMES
from ticketguard.history import History
from ticketguard.ml import metrics
from ticketguard.ml.dataset import (
    DatasetError,
    LabelledFeatures,
    SplitPlan,
    Splits,
    feature_params,
    labelled_features,
    split,
    time_range,
)
from ticketguard.ml.evaluate import EvaluationInput, evaluate, write_report
from ticketguard.ml.registry import (
    ModelCard,
    ModelRegistry,
    artifact_store,
    check_version,
    new_version,
    sha256_hex,
    write_model_file,
)
from ticketguard.ml.train import TrainedModel, TrainingConfig, fit

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]


def registry_for(settings: Settings) -> ModelRegistry:
    return ModelRegistry(artifact_store(settings))


def decision_thresholds(settings: Settings) -> dict[str, float]:
    return {
        "REQUIRE_2FA": settings.fraud_threshold_2fa,
        "MANUAL_REVIEW": settings.fraud_threshold_review,
        "BLOCKED": settings.fraud_threshold_block,
    }


@dataclass
class TrainingRun:
    card: ModelCard
    model: TrainedModel
    data: LabelledFeatures
    splits: Splits
    test_scores: np.ndarray
    exported: tuple[Path, Path] | None = None


def _noop(_stage: str, _fraction: float) -> None:
    return None


def _stage(progress: Progress, lo: float, hi: float) -> Progress:
    return lambda message, fraction: progress(message, lo + (hi - lo) * fraction)


def headline(
    y: np.ndarray, scores: np.ndarray, f1_threshold: float, fpr_threshold: float
) -> dict[str, float]:
    curve = metrics.SortedScores(y, scores).curve()
    out = metrics.curve_metrics(curve)
    out["f1"] = metrics.at_threshold(y, scores, f1_threshold).f1
    fpr = metrics.at_threshold(y, scores, fpr_threshold)
    out["detection_at_validation_fpr_2pct_threshold"] = fpr.detection_rate
    out["fpr_at_validation_fpr_2pct_threshold"] = fpr.false_positive_rate
    return out


def train_model(
    settings: Settings,
    history: History,
    *,
    blacklist: pd.DataFrame | None = None,
    source: str,
    version: str | None = None,
    output: Path | None = None,
    register_with: Engine | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    test_from: date | None = None,
    test_to: date | None = None,
) -> TrainingRun:
    """Train on ``history`` with the settings' split and hyper-parameters; register it when an engine is
    given (the model row and its artifact), export it to ``output`` when given. ``test_from``/``test_to``
    (UTC dates, inclusive) choose the test days instead of the last TRAIN_TEST_DAYS."""
    report = progress or _noop
    created = now or datetime.now(UTC)
    if version:
        check_version(version)
    params = feature_params(settings)
    data = labelled_features(history, params, blacklist=blacklist, progress=_stage(report, 0.0, 0.3))
    plan = SplitPlan.from_settings(*time_range(data), settings, test_from=test_from, test_to=test_to)
    parts = split(data, plan)
    config = TrainingConfig.from_settings(settings)
    model = fit(
        data.matrix(parts.train),
        parts.y_train,
        data.matrix(parts.validation),
        parts.y_validation,
        list(FEATURE_NAMES),
        config,
        progress=_stage(report, 0.3, 0.95),
    )
    if not version:
        # Time to the second plus the model's own hash: two runs in one second get different names.
        version = f"{new_version(created)}-{sha256_hex(bytes(model.booster.save_raw('ubj')))[:6]}"
    test_scores = np.asarray(model.booster.inplace_predict(data.matrix(parts.test)), dtype=np.float64)
    validation_scores = np.asarray(
        model.booster.inplace_predict(data.matrix(parts.validation)), dtype=np.float64
    )
    test_metrics = headline(parts.y_test, test_scores, model.threshold_best_f1, model.threshold_fpr_2pct)
    card = ModelCard(
        version=version,
        created_at=created,
        sha256="",
        artifact_uri="",
        feature_names=list(FEATURE_NAMES),
        params={
            **model.summary(),
            "split": plan.to_dict(),
            "feature_params": {
                "label_delay_days": settings.feature_label_delay_days,
                "risk_window_days": settings.feature_risk_window_days,
                "geo_window_minutes": settings.feature_geo_window_minutes,
                "geo_distance_km": settings.feature_geo_distance_km,
            },
            "data_source": source,
        },
        metrics={
            "test": test_metrics,
            "validation": headline(
                parts.y_validation, validation_scores, model.threshold_best_f1, model.threshold_fpr_2pct
            ),
            "test_rows": int(parts.test.sum()),
            "test_fraud": int(parts.y_test.sum()),
        },
        training_window_start=plan.train_start,
        training_window_end=plan.gap_start,
        n_rows=int(parts.train.sum() + parts.validation.sum()),
        n_fraud=int(parts.y_train.sum() + parts.y_validation.sum()),
    )
    if register_with is not None:
        with register_with.begin() as conn:
            registry_for(settings).register(conn, model.booster, card)
    exported = write_model_file(output, model.booster, card) if output is not None else None
    report("registered" if register_with is not None else "trained", 1.0)
    log.info("model trained", extra={"version": version, "test": test_metrics})
    return TrainingRun(card, model, data, parts, test_scores, exported)


def evaluation_rows(data: LabelledFeatures, plan: SplitPlan) -> np.ndarray:
    rows = plan.mask(data.timestamp_us, "test") & data.has_label
    if rows.sum() == 0:
        raise DatasetError(
            f"no labelled transactions in the evaluation window {plan.test_start.isoformat()} – "
            f"{plan.end.isoformat()}: evaluate on the data the model was trained from, "
            "or pass --since/--until"
        )
    if data.is_fraud[rows].sum() == 0:
        raise DatasetError("the evaluation window holds no fraud: detection cannot be measured there")
    return rows


def evaluate_model(
    settings: Settings,
    booster: xgb.Booster,
    card: ModelCard,
    data: LabelledFeatures,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    out_dir: Path,
    context: dict[str, Any],
    progress: Progress | None = None,
    precision_k: int = 100,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The full report of ``booster`` on its test window (from its card) or on [since, until), with the
    per-row scores beside it (``scores.parquet``, see `write_row_scores`)."""
    report = progress or _noop
    plan = SplitPlan.from_dict(card.params["split"]) if "split" in card.params else None
    first, last = time_range(data)
    start = since or (plan.test_start if plan else None)
    end = until or (plan.end if plan else None)
    if start is None or end is None:
        raise DatasetError("the model has no recorded test window: pass --since and --until")
    window = SplitPlan(first, first, first, start, start, end)
    rows = evaluation_rows(data, window)
    x = data.matrix(rows)
    report("scoring", 0.1)
    scores = np.asarray(booster.inplace_predict(x), dtype=np.float64)
    inputs = EvaluationInput(
        y=data.is_fraud[rows].astype(np.int8),
        scores=scores,
        timestamp_us=data.timestamp_us[rows],
        wallet=data.wallet[rows],
        pattern=data.pattern[rows],
        features=x,
        feature_names=list(card.feature_names),
    )
    report("metrics and bootstrap", 0.3)
    numbers = evaluate(
        inputs,
        booster,
        decision_thresholds=decision_thresholds(settings),
        f1_threshold=float(card.params.get("threshold_best_f1", 0.5)),
        fpr_threshold=float(card.params.get("threshold_fpr_2pct", 0.5)),
        review_capacity=settings.review_capacity_per_day,
        bootstrap_samples=settings.eval_bootstrap_samples,
        seed=settings.train_seed,
        precision_k=precision_k,
    )
    report("plots", 0.8)
    context = {
        **context,
        "model": card.version,
        "evaluation window": f"{start.isoformat()} – {end.isoformat()}",
        "training window": f"{card.training_window_start} – {card.training_window_end}",
        "data span": f"{first.isoformat()} – {last.isoformat()}",
    }
    context["per-row scores"] = f"{ROW_SCORES_FILE} ({', '.join(ROW_SCORE_COLUMNS)})"
    paths = write_report(
        numbers, inputs, out_dir, title=f"Fraud model {card.version}: evaluation", context=context
    )
    paths["row_scores"] = write_row_scores(
        out_dir / ROW_SCORES_FILE, data, rows, scores, decision_thresholds(settings)
    )
    report("report written", 1.0)
    return numbers, paths


ROW_SCORES_FILE = "scores.parquet"
ROW_SCORE_COLUMNS = ("transaction_id", "timestamp", "wallet", "event", "score", "label", "decision")


def write_row_scores(
    path: Path,
    data: LabelledFeatures,
    rows: np.ndarray,
    scores: np.ndarray,
    thresholds: dict[str, float],
) -> Path:
    """One row per evaluated transaction (issue 13), for any metric the report does not compute:
    transaction_id, timestamp (UTC), wallet, event, score (the model's), label (1 = fraud, as finally
    known), decision (the score ladder of `scoring.domain.ladder` at the configured thresholds, without
    list overrides). Time order, as the data."""
    from ticketguard.scoring.domain import Thresholds, ladder

    ladder_at = Thresholds(
        block=thresholds["BLOCKED"], review=thresholds["MANUAL_REVIEW"], twofa=thresholds["REQUIRE_2FA"]
    )
    frame = pd.DataFrame(
        {
            "transaction_id": data.transaction_id[rows].astype(str),
            "timestamp": pd.to_datetime(data.timestamp_us[rows], unit="us", utc=True),
            "wallet": data.wallet[rows].astype(str),
            "event": data.event[rows].astype(str),
            "score": scores.astype(np.float64),
            "label": data.is_fraud[rows].astype(np.int8),
            "decision": [ladder(float(s), ladder_at) for s in scores],
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def holdout_compare(candidate: TrainingRun, incumbent: xgb.Booster) -> tuple[float, float]:
    """AUC-PR of the candidate and the incumbent on the candidate's test rows (the same recent holdout)."""
    x = candidate.data.matrix(candidate.splits.test)
    y = candidate.splits.y_test
    incumbent_scores = np.asarray(incumbent.inplace_predict(x), dtype=np.float64)
    cand = metrics.auc_pr(metrics.SortedScores(y, candidate.test_scores).curve())
    inc = metrics.auc_pr(metrics.SortedScores(y, incumbent_scores).curve())
    return cand, inc
