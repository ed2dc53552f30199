"""Training and evaluation runs: data → features → split → model → registry → report.

Used by the CLI (`ticketguard train`, `ticketguard evaluate`) and the retraining job (`ml.jobs.retrain`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sqlalchemy import Engine

from ticketguard.config import Settings
from ticketguard.features.specs import FeatureParams, window_label
from ticketguard.history import History
from ticketguard.ml import metrics
from ticketguard.ml.dataset import (
    DatasetError,
    LabelledFeatures,
    SplitPlan,
    Splits,
    _us,
    drop_optional_rows,
    feature_params,
    labelled_features,
    split,
    time_range,
)
from ticketguard.ml.evaluate import SELECTION_KEY, EvaluationInput, evaluate, write_report
from ticketguard.ml.registry import (
    ModelCard,
    ModelRegistry,
    artifact_store,
    check_version,
    new_version,
    sha256_hex,
    write_model_file,
)
from ticketguard.ml.selection import FoldData, plan_folds, select, subsample_legit
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
    """Train on ``history`` with the settings' split; parameters and features chosen by prequential
    validation (`ml.selection`), optional fields dropped on a share of the training rows; register it when
    an engine is given (the model row and its artifact), export it to ``output`` when given.
    ``test_from``/``test_to`` (UTC dates, inclusive) choose the test days instead of the last
    TRAIN_TEST_DAYS."""
    report = progress or _noop
    created = now or datetime.now(UTC)
    if version:
        check_version(version)
    params = feature_params(settings)
    data = labelled_features(history, params, blacklist=blacklist, progress=_stage(report, 0.0, 0.25))
    plan = SplitPlan.from_settings(*time_range(data), settings, test_from=test_from, test_to=test_to)
    parts = split(data, plan)
    config = TrainingConfig.from_settings(settings)
    names = list(data.features.columns)
    x_clean = data.matrix()
    x_train_source, augmentation = _augmented(settings, history, data, plan, params, blacklist, x_clean)
    report("features without optional fields", 0.3)
    deploy_us = _us(plan.test_start)
    folds = plan_folds(
        plan.train_start,
        plan.validation_start,
        plan.gap_start,
        count=settings.train_folds,
        gap=timedelta(days=settings.feature_label_delay_days),
    )
    fold_data = []
    final_labels = data.labels_known_at(deploy_us)
    sampler = np.random.default_rng(settings.train_seed)
    for fold in folds:
        train_rows = np.flatnonzero(_window(data, fold.train_start, fold.train_end))
        y_fold = data.labels_known_at(_us(fold.validation_start))[train_rows]
        train_rows, weights = subsample_legit(train_rows, y_fold, settings.train_selection_max_rows, sampler)
        validation_rows = _window(data, fold.validation_start, fold.validation_end)
        fold_data.append(
            FoldData(
                x_train=x_train_source[train_rows],
                y_train=data.labels_known_at(_us(fold.validation_start))[train_rows],
                x_validation=x_clean[validation_rows],
                y_validation=final_labels[validation_rows],
                w_train=weights,
                day_validation=data.timestamp_us[validation_rows] // (86_400 * 1_000_000),
                wallet_validation=data.wallet[validation_rows],
            )
        )
    grid = [
        {
            **replace(config, max_depth=depth).booster_params(weight),
        }
        for depth in settings.train_max_depth_options
        for weight in config.scale_pos_weight_options
    ]
    chosen = select(
        fold_data,
        folds,
        names,
        grid,
        rounds=config.max_rounds,
        early_stopping_rounds=config.early_stopping_rounds,
        gain_shares=settings.train_feature_gain_shares,
        tolerance=settings.train_selection_tolerance,
        alerts_per_day=settings.train_selection_alerts_per_day,
        top_counts=settings.train_feature_top_counts,
        nthread=config.nthread,
        progress=_stage(report, 0.3, 0.75),
    )
    del fold_data
    kept = chosen.kept
    columns = [names.index(n) for n in kept]
    # The final model: the chosen parameters (same learning rate), for the median over the folds of the
    # chosen candidate's "enough" iterations (the fewest trees within the tolerance of the fold's best
    # validation AUC-PR: trees that bought less than that on a fold cost variance on new days) — not
    # early-stopped on the validation days alone, whose one block of days can end the fit after a handful
    # of trees (seen: a merchant breach that started in those days stopped it at a near-constant model).
    final = replace(
        config,
        max_depth=int(chosen.chosen.params["max_depth"]),
        scale_pos_weight_options=(float(chosen.chosen.params["scale_pos_weight"]),),
    )
    final_rounds = int(np.median(chosen.chosen.enough_iterations)) + 1
    model = fit(
        x_train_source[parts.train][:, columns],
        parts.y_train,
        x_clean[parts.validation][:, columns],
        parts.y_validation,
        kept,
        final,
        progress=_stage(report, 0.75, 0.95),
        rounds=final_rounds,
    )
    del x_train_source
    if not version:
        # Time to the second plus the model's own hash: two runs in one second get different names.
        version = f"{new_version(created)}-{sha256_hex(bytes(model.booster.save_raw('ubj')))[:6]}"
    test_scores = np.asarray(model.booster.inplace_predict(x_clean[parts.test][:, columns]), dtype=np.float64)
    validation_scores = np.asarray(
        model.booster.inplace_predict(x_clean[parts.validation][:, columns]), dtype=np.float64
    )
    test_metrics = headline(parts.y_test, test_scores, model.threshold_best_f1, model.threshold_fpr_2pct)
    card = ModelCard(
        version=version,
        created_at=created,
        sha256="",
        artifact_uri="",
        feature_names=kept,
        params={
            **model.summary(),
            "split": plan.to_dict(),
            "feature_params": {
                "label_delay_days": settings.feature_label_delay_days,
                "risk_window_days": settings.feature_risk_window_days,
                "geo_window_minutes": settings.feature_geo_window_minutes,
                "geo_distance_km": settings.feature_geo_distance_km,
                "windows": [window_label(w) for w in params.windows],
                "risk_windows": [window_label(w) for w in params.risk_windows],
            },
            "selection": chosen.to_dict(),
            "missing_fields_augmentation": augmentation,
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


def _window(data: LabelledFeatures, start: datetime, end: datetime) -> np.ndarray:
    return (data.timestamp_us >= _us(start)) & (data.timestamp_us < _us(end)) & data.has_label


def _augmented(
    settings: Settings,
    history: History,
    data: LabelledFeatures,
    plan: SplitPlan,
    params: FeatureParams,
    blacklist: pd.DataFrame | None,
    x_clean: np.ndarray,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The training matrix with `TRAIN_DROP_OPTIONAL_SHARE` of the rows before the validation days
    featurised without their optional fields (`dataset.drop_optional_rows`); validation and test rows stay
    as they are. Also what was done, for the model's metadata."""
    share = settings.train_drop_optional_share
    info: dict[str, Any] = {"share": share, "rows": 0}
    if share <= 0:
        return x_clean, info
    candidates = np.flatnonzero(_window(data, plan.train_start, plan.validation_start))
    rng = np.random.default_rng(settings.train_seed)
    rows = candidates[rng.random(len(candidates)) < share]
    if len(rows) == 0:
        return x_clean, info
    rows, features, dropped = drop_optional_rows(
        history, rows, params, seed=settings.train_seed, blacklist=blacklist
    )
    out = x_clean.copy()
    out[rows] = features[list(data.features.columns)].to_numpy(dtype=np.float32)
    info.update({"rows": len(rows), "dropped": dropped})
    return out, info


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
    x = data.matrix(rows, card.feature_names)
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
    if card.params.get("selection"):
        context[SELECTION_KEY] = card.params["selection"]
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
    y = candidate.splits.y_test
    names = list(incumbent.feature_names or candidate.data.features.columns)
    x = candidate.data.matrix(candidate.splits.test, names)
    incumbent_scores = np.asarray(incumbent.inplace_predict(x), dtype=np.float64)
    cand = metrics.auc_pr(metrics.SortedScores(y, candidate.test_scores).curve())
    inc = metrics.auc_pr(metrics.SortedScores(y, incumbent_scores).curve())
    return cand, inc
