"""Robustness to what the caller leaves out: training sees the serving path's missingness, and the resale
farm (12 new wallets × 4 resales at 8× face value from one seller) sent without ip_address,
payment_method and location is mostly not approved."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ticketguard.config import Settings
from ticketguard.features.offline import OfflineFeatures
from ticketguard.frames import History
from ticketguard.ml.dataset import drop_optional_rows, feature_params
from ticketguard.ml.service import train_model
from ticketguard.simulate import SimulationConfig, simulate
from ticketguard.simulate.attacks import Farm, resale_farm


def _settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "train_folds": 2,
        "train_max_depth_options": [5],
        "train_scale_pos_weight_options": [5.0],
        "train_learning_rate": 0.15,
        "train_early_stopping_rounds": 30,
        "train_max_rounds": 300,
        "eval_bootstrap_samples": 20,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def history() -> History:
    return simulate(SimulationConfig(transactions=25_000, seed=5))


def test_dropped_fields_give_the_features_of_a_request_without_them(history: History) -> None:
    params = feature_params(Settings())
    rows = np.arange(5000, 5400)
    rows_out, features, dropped = drop_optional_rows(history, rows, params, seed=3)
    assert list(rows_out) == list(rows)
    # Half of the rows lose all three together, the rest each with probability 1/2.
    assert 200 <= dropped["ip_address"] <= 400
    assert min(dropped["payment_method"], dropped["location"]) >= 200
    # The same as featurising those requests sent without the fields (history unchanged).
    tx = history.transactions.iloc[rows]
    no_ip = features["ip_risk_24h"].to_numpy() == -1
    assert no_ip.sum() == dropped["ip_address"]
    queries = tx[no_ip].assign(ip_address=None)
    again = OfflineFeatures(params).compute(history, queries)
    np.testing.assert_array_equal(
        again["wallets_per_ip_24h"].to_numpy(), features.loc[no_ip, "wallets_per_ip_24h"].to_numpy()
    )
    assert (features.loc[no_ip, "new_ip_for_wallet"] == 0).all()
    clean = OfflineFeatures(params).compute(history, tx)
    assert (clean["ip_risk_24h"] >= 0).all()  # the simulator always sends an IP


def test_the_resale_farm_without_optional_fields_is_mostly_not_approved(history: History) -> None:
    settings = _settings()
    run = train_model(settings, history, source="test")
    assert run.card.params["missing_fields_augmentation"]["rows"] > 0
    approved = []
    for seed in range(2):
        farm, resale = resale_farm(history, Farm(seed=seed, with_optional_fields=False))
        assert resale.sum() == 48
        assert farm.loc[resale, ["ip_address", "payment_method", "latitude"]].isna().all().all()
        full = History(
            history.events, pd.concat([history.transactions, farm], ignore_index=True), history.labels
        )
        features = OfflineFeatures(feature_params(settings)).compute(full, farm)
        scores = run.model.booster.inplace_predict(features[run.card.feature_names].to_numpy(np.float32))
        approved.append(int((scores[resale] <= settings.fraud_threshold_2fa).sum()))
    assert max(approved) < 24, f"approved {approved} of 48"
