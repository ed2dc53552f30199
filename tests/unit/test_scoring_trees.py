"""The numpy tree walker reproduces XGBoost: margin, and approx_contribs with the bias, on random models
with missing values; models it cannot reproduce are refused."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from ticketguard.scoring.trees import FastTrees


def _booster(
    objective: str = "binary:logistic", depth: int = 6, rounds: int = 40
) -> tuple[xgb.Booster, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 12)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take each split's default direction
    y = ((np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) * np.nan_to_num(x[:, 2])) > 0.5).astype(float)
    params = {"objective": objective, "max_depth": depth, "eta": 0.2, "nthread": 1, "seed": 1}
    return xgb.train(params, xgb.DMatrix(x, label=y), rounds), x


def test_margin_and_contributions_equal_xgboost() -> None:
    booster, x = _booster()
    fast = FastTrees.from_booster(booster)
    rows = x[:300]
    margins = booster.inplace_predict(rows, predict_type="margin")
    contribs = booster.predict(xgb.DMatrix(rows), pred_contribs=True, approx_contribs=True)
    for i, row in enumerate(rows):
        margin, values = fast.explain(row)
        assert margin == pytest.approx(float(margins[i]), abs=1e-4)
        np.testing.assert_allclose(values, contribs[i, :-1], atol=1e-4)
        assert fast.bias == pytest.approx(float(contribs[i, -1]), abs=1e-4)
        assert fast.bias + values.sum() == pytest.approx(margin, abs=1e-9)


def test_unsupported_objective_is_refused() -> None:
    booster, _ = _booster(objective="reg:squarederror", rounds=5)
    with pytest.raises(ValueError, match="fast path supports"):
        FastTrees.from_booster(booster)
