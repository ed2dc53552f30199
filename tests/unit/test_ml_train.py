"""Training: time-ordered split, imbalance weight chosen on validation, deterministic per seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ticketguard.config import Settings
from ticketguard.frames import History
from ticketguard.ml.dataset import DatasetError, SplitPlan, _us
from ticketguard.ml.service import evaluate_model, train_model
from ticketguard.simulate import SimulationConfig, simulate


def small_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "train_max_rounds": 60,
        "train_early_stopping_rounds": 15,
        "train_learning_rate": 0.2,
        "train_max_depth": 4,
        "train_scale_pos_weight_options": [1.0, 8.0],
        "eval_bootstrap_samples": 20,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def history():  # type: ignore[no-untyped-def]
    return simulate(SimulationConfig(transactions=6000, seed=21, fraud_rate=0.05))


def test_split_is_by_time_with_a_gap_and_never_random(history) -> None:  # type: ignore[no-untyped-def]
    run = train_model(small_settings(), history, source="test")
    ts = run.data.timestamp_us
    parts = run.splits
    assert ts[parts.train].max() < ts[parts.validation].min()
    plan = parts.plan
    assert ts[parts.validation].max() < _us(plan.gap_start) <= _us(plan.test_start) <= ts[parts.test].min()
    assert plan.test_start - plan.gap_start == timedelta(days=14)
    assert not (parts.train & parts.test).any()
    # Rows in the gap and the warm-up are used by nobody.
    gap = (ts >= _us(plan.gap_start)) & (ts < _us(plan.test_start))
    assert gap.any()
    assert not (gap & (parts.train | parts.validation | parts.test)).any()


def test_training_labels_are_those_known_at_deployment(history) -> None:  # type: ignore[no-untyped-def]
    # Make every other chargeback slow (40 days): some frauds of the validation weeks are then only known
    # after the test start, whatever the seed drew.
    labels = history.labels.copy()
    slow = labels["is_fraud"] & (np.arange(len(labels)) % 2 == 0)
    when = history.transactions.set_index("transaction_id")["timestamp"]
    labels.loc[slow, "labelled_at"] = when.loc[labels.loc[slow, "transaction_id"]].to_numpy() + pd.Timedelta(
        days=40
    )
    history = History(events=history.events, transactions=history.transactions, labels=labels)
    run = train_model(small_settings(), history, source="test")
    data, parts = run.data, run.splits
    late = data.is_fraud & (data.labelled_us >= _us(parts.plan.test_start))
    # A fraud whose chargeback arrived after the test start is still legitimate for training.
    assert (late & parts.validation).any()
    assert run.splits.y_validation[late[parts.validation]].sum() == 0


def test_parameters_and_features_are_chosen_by_prequential_folds(history, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = small_settings(train_max_depth_options=[2, 4])
    run = train_model(settings, history, source="test")
    selection = run.card.params["selection"]
    # Folds: time-ordered, each trains only on rows ending the label delay before its validation block.
    folds = selection["folds"]
    assert len(folds) >= 2
    for fold in folds:
        gap = datetime.fromisoformat(fold["validation_start"]) - datetime.fromisoformat(fold["train_end"])
        assert gap == timedelta(days=7)
        assert fold["validation_fraud"] > 0
    starts = [fold["validation_start"] for fold in folds]
    assert starts == sorted(starts)
    assert folds[-1]["validation_start"] == run.splits.plan.validation_start.isoformat()
    # The grid: every depth × imbalance weight, each scored on every fold; the best mean AP is chosen.
    grid = [c for c in selection["candidates"] if c["features"] == "all non-constant"]
    assert sorted((c["params"]["max_depth"], c["params"]["scale_pos_weight"]) for c in grid) == [
        (2, 1.0),
        (2, 8.0),
        (4, 1.0),
        (4, 8.0),
    ]
    assert all(len(c["fold_ap"]) == len(folds) for c in selection["candidates"])
    # Ranked on the mean over folds of (AP + wallet precision@k per day) / 2, not AP alone.
    for c in selection["candidates"]:
        assert all(w is not None and 0 <= w <= 1 for w in c["fold_wallet_precision"])
        per_fold = [(a + w) / 2 for a, w in zip(c["fold_ap"], c["fold_wallet_precision"], strict=True)]
        assert c["score"] == pytest.approx(float(np.mean(per_fold)), abs=1e-5)
    best = max(grid, key=lambda c: c["score"])
    assert run.model.params["max_depth"] == best["params"]["max_depth"]
    assert run.model.params["scale_pos_weight"] == best["params"]["scale_pos_weight"]
    assert run.model.params["nthread"] == 2
    # The final model has as many trees as the chosen candidate's folds needed to come within the tolerance
    # of their best validation AUC-PR (the median over folds) — fewer than their best iterations here.
    (chosen,) = [
        c
        for c in selection["candidates"]
        if c["name"] == selection["chosen"] and c["n_features"] == len(run.card.feature_names)
    ]
    assert run.model.booster.num_boosted_rounds() == int(np.median(chosen["enough_iterations"])) + 1
    assert np.median(chosen["enough_iterations"]) < np.median(chosen["best_iterations"])
    # Kept features are the model's; constant ones (the blacklist is empty here) are dropped with a reason.
    assert run.card.feature_names == selection["kept_features"]
    assert list(run.model.booster.feature_names) == run.card.feature_names
    assert "counterparty_blacklisted" not in run.card.feature_names
    assert selection["dropped_features"]["counterparty_blacklisted"] == "constant over the training period"
    assert run.card.metrics["test"]["auc_roc"] > 0.8
    # The evaluation report shows the folds, every candidate and what was kept.
    run.card.sha256 = "x"
    _numbers, paths = evaluate_model(
        settings, run.model.booster, run.card, run.data, out_dir=tmp_path, context={}
    )
    report = paths["markdown"].read_text(encoding="utf-8")
    assert "## Model selection" in report
    assert f"Chosen: **{selection['chosen']}**, {len(run.card.feature_names)} features kept" in report
    assert report.count("| max_depth=") >= 4
    per_fold = zip(chosen["best_iterations"], chosen["enough_iterations"], strict=True)
    trees = ", ".join(f"{b + 1} / {e + 1}" for b, e in per_fold)
    assert f"| {trees} |" in report
    assert "`counterparty_blacklisted` (constant over the training period)" in report


def test_training_is_deterministic_per_seed(history) -> None:  # type: ignore[no-untyped-def]
    first = train_model(small_settings(), history, source="test")
    second = train_model(small_settings(), history, source="test")
    assert bytes(first.model.booster.save_raw("ubj")) == bytes(second.model.booster.save_raw("ubj"))
    other_seed = train_model(small_settings(train_seed=7), history, source="test")
    assert not np.array_equal(first.test_scores, other_seed.test_scores)


def test_split_refuses_too_little_history_with_the_numbers() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(DatasetError, match=r"spans 31\.0 days; the split needs at least 70\.0"):
        SplitPlan.plan(
            start,
            start + timedelta(days=30),
            test=timedelta(days=21),
            gap=timedelta(days=14),
            validation=timedelta(days=14),
            warmup=timedelta(days=7),
        )
