"""Wallet precision@k per day — the Fraud Detection Handbook's card precision top-k with wallets as cards
(issue 13) — against a hand-computed example, and the evaluation's per-row scores file."""

from __future__ import annotations

import numpy as np
import pytest

from ticketguard.ml import metrics


def test_wallet_precision_at_k_by_hand() -> None:
    # day 0: wallets a (0.9, fraud), b (0.8 and 0.95 → 0.95, legit), c (0.1, fraud), d (0.7, legit)
    # day 1: a again (0.99, fraud: already caught on day 0, so not counted again), e (0.6, fraud), f (0.5)
    day = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    wallet = np.array(["a", "b", "b", "c", "d", "a", "e", "f"], dtype=object)
    score = np.array([0.9, 0.8, 0.95, 0.1, 0.7, 0.99, 0.6, 0.5])
    fraud = np.array([1, 0, 0, 1, 0, 1, 1, 0])
    out = metrics.wallet_precision_at_k(day, wallet, score, fraud, k=2)
    # day 0 top 2: b (0.95), a (0.9) → 1 fraud / 2; day 1 without a: e (0.6), f (0.5) → 1 / 2
    assert [d["precision"] for d in out["per_day"]] == [0.5, 0.5]
    assert out["mean"] == 0.5
    assert [d["fraud_wallets"] for d in out["per_day"]] == [2, 1]
    # Without the handbook's removal, day 1's top 2 are a (0.99, fraud) and e (0.6, fraud).
    kept = metrics.wallet_precision_at_k(day, wallet, score, fraud, k=2, remove_detected=False)
    assert [d["precision"] for d in kept["per_day"]] == [0.5, 1.0]


def test_divides_by_k_even_on_a_day_with_fewer_wallets() -> None:
    out = metrics.wallet_precision_at_k(
        np.array([3, 3]), np.array(["a", "b"], dtype=object), np.array([0.5, 0.4]), np.array([1, 1]), k=100
    )
    assert out["per_day"][0]["precision"] == pytest.approx(0.02)  # 2 fraudulent wallets / k = 100
    with pytest.raises(ValueError, match="k must be >= 1"):
        metrics.wallet_precision_at_k(
            np.array([0]), np.array(["a"], dtype=object), np.array([0.5]), np.array([1]), k=0
        )


def test_evaluation_writes_per_row_scores_that_reproduce_the_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd
    from sklearn.metrics import average_precision_score

    from ticketguard.config import Settings
    from ticketguard.ml.service import evaluate_model, train_model
    from ticketguard.simulate import SimulationConfig, simulate

    settings = Settings(  # type: ignore[call-arg]
        train_max_rounds=40,
        train_early_stopping_rounds=10,
        train_learning_rate=0.3,
        train_max_depth=3,
        train_scale_pos_weight_options=[1.0],
        eval_bootstrap_samples=10,
    )
    run = train_model(
        settings, simulate(SimulationConfig(transactions=5000, seed=5, fraud_rate=0.05)), source="t"
    )
    numbers, paths = evaluate_model(
        settings, run.model.booster, run.card, run.data, out_dir=tmp_path, context={}, precision_k=10
    )
    rows = pd.read_parquet(paths["row_scores"])
    assert paths["row_scores"] == tmp_path / "scores.parquet"
    assert list(rows.columns) == [
        "transaction_id",
        "timestamp",
        "wallet",
        "event",
        "score",
        "label",
        "decision",
    ]
    assert len(rows) == numbers["rows"]
    assert int(rows["label"].sum()) == numbers["fraud"]
    assert str(rows["timestamp"].dtype) == "datetime64[us, UTC]"
    assert rows["timestamp"].is_monotonic_increasing
    assert average_precision_score(rows["label"], rows["score"]) == pytest.approx(
        numbers["metrics"]["auc_pr"]["value"], abs=1e-9
    )
    blocked = rows["score"] > settings.fraud_threshold_block
    assert (rows.loc[blocked, "decision"] == "BLOCKED").all()
    assert (rows.loc[rows["score"] <= settings.fraud_threshold_2fa, "decision"] == "APPROVED").all()
    # The report's wallet precision@k is recomputable from the file alone.
    day = (rows["timestamp"] - pd.Timestamp(0, tz="UTC")).dt.days.to_numpy()
    again = metrics.wallet_precision_at_k(
        day, rows["wallet"].to_numpy(dtype=object), rows["score"].to_numpy(), rows["label"].to_numpy(), k=10
    )
    reported = numbers["wallet_precision_at_k"]
    assert reported["k"] == 10
    assert again["mean"] == pytest.approx(reported["mean"])
    assert reported["days"] == rows["timestamp"].dt.date.nunique()
    markdown = (tmp_path / "report.md").read_text()
    assert "## Wallet precision@10 per day" in markdown
    assert "scores.parquet" in markdown
