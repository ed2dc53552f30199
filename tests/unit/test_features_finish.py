"""`specs.finish_one` (one transaction, plain floats: the online path) equals `specs.finish` (numpy arrays:
the offline path and training) feature by feature — on random primitives and on the edge cases each
definition branches on: NaN (never seen), zeros (nothing to divide by), infinities, negatives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ticketguard.features.specs import (
    FEATURE_NAMES,
    QUERY_FIELDS,
    FeatureParams,
    finish,
    finish_one,
    primitive_names,
)

PARAMS = FeatureParams()
EDGES = (math.nan, 0.0, 1.0, -1.0, math.inf, -math.inf, 1e-300, 3.5e9)


def _random_case(rng: np.random.Generator) -> tuple[dict[str, float], dict[str, float]]:
    def value(scale: float) -> float:
        roll = rng.random()
        if roll < 0.15:
            return float(rng.choice(EDGES))
        if roll < 0.3:
            return 0.0
        return float(rng.normal(0, scale)) if roll < 0.4 else float(rng.random() * scale)

    now = 1.8e9 + rng.random() * 1e7
    p = {name: value(1e3) for name in primitive_names(PARAMS)}
    for name in ("w_first_buy_ts", "w_first_sell_ts", "w_last_ts", "k_first_ts", "k_last_ts", "ev_starts_s"):
        p[name] = float(rng.choice([math.nan, now - rng.random() * 1e7, now + rng.random() * 1e7]))
    for name in ("w_lat_sum", "e_lat_sum"):
        p[name] = float(rng.uniform(-80, 80)) * max(p[name.replace("lat_sum", "located_n")], 0.0)
    q = {
        "timestamp_s": now,
        "price_paid": float(rng.choice([0.0, rng.random() * 500])),
        "latitude": float(rng.choice([math.nan, rng.uniform(-90, 90)])),
        "longitude": float(rng.choice([math.nan, rng.uniform(-180, 180)])),
    }
    for flag in ("is_resale", "has_seller", "has_payment_method", "has_ticket", "has_ip"):
        q[flag] = float(rng.random() < 0.5)
    assert set(q) == set(QUERY_FIELDS)
    return p, q


def _vector(p: dict[str, float], q: dict[str, float]) -> dict[str, float]:
    with np.errstate(all="ignore"):
        out = finish(
            {k: np.array([v]) for k, v in p.items()}, {k: np.array([v]) for k, v in q.items()}, PARAMS
        )
    return {name: float(out[name][0]) for name in FEATURE_NAMES}


@pytest.mark.parametrize("seed", range(4))
def test_finish_one_equals_finish_feature_by_feature(seed: int) -> None:
    rng = np.random.default_rng(seed)
    branches: dict[str, set[str]] = {name: set() for name in FEATURE_NAMES}
    for _ in range(2500):
        p, q = _random_case(rng)
        one, many = finish_one(p, q, PARAMS), _vector(p, q)
        assert list(one) == list(FEATURE_NAMES)
        for name in FEATURE_NAMES:
            a, b = one[name], many[name]
            assert (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=1e-12), (
                name,
                a,
                b,
                p,
                q,
            )
            branches[name].add("nan" if math.isnan(b) else "zero" if b == 0 else "-1" if b == -1 else "value")
    # The cases reach every feature's different outcomes, so the comparison means something.
    assert all(len(kinds) >= 2 for kinds in branches.values()), branches
