"""The feature families (`specs.FAMILIES`): hand-computed values on a small history, the declaration's
shape (one declaration → primitives, features, windows from the parameters) and the range-max kernel."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ticketguard.features.kernels import range_max
from ticketguard.features.offline import build_features
from ticketguard.features.specs import (
    FEATURE_NAMES,
    HAND_FEATURE_NAMES,
    FeatureParams,
    aggregates,
    feature_names,
    window_label,
)
from ticketguard.history import EVENT_COLUMNS, LABEL_COLUMNS, TRANSACTION_COLUMNS, History, conform

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
W1, W2, S1 = "0x" + "1" * 40, "0x" + "2" * 40, "0x" + "5" * 40
PARAMS = FeatureParams(
    label_delay=timedelta(days=1),
    windows=(timedelta(hours=1), timedelta(days=7)),
    risk_windows=(timedelta(days=2),),
    risk_prior_weight=2.0,
)


def _tx(
    tid: str,
    hours: float,
    wallet: str,
    price: float,
    *,
    event: str = "E1",
    ip: str | None = "9.9.9.9",
    pm: str | None = "card",
    seller: str | None = None,
) -> dict:
    return {
        "transaction_id": tid,
        "wallet_address": wallet,
        "event_id": event,
        "ticket_id": f"K{tid}",
        "price_paid": price,
        "payment_method": pm,
        "is_resale": seller is not None,
        "status": "completed",
        "timestamp": T0 + timedelta(hours=hours),
        "seller_address": seller,
        "ip_address": ip,
        "country": None,
        "latitude": None,
        "longitude": None,
        "source": "import",
    }


def _history() -> History:
    rows = [
        _tx("A", -100.0, W1, 10.0),
        _tx("B", -50.0, W1, 30.0),
        _tx("C", -0.5, W1, 20.0),
        _tx("D", 0.0, W1, 100.0),  # scored: W1 has A, B, C before it
        _tx("F1", -60.0, W2, 40.0, event="E2", ip="6.6.6.6", pm="gift"),  # fraud, labelled at -40 h
        _tx("F2", -30.0, W2, 40.0, event="E2", ip="6.6.6.6", pm="gift"),  # fraud, labelled at +10 h
        _tx("G", 0.0, W2, 50.0, event="E2", ip="6.6.6.6", pm="gift", seller=S1),
        _tx("H", 0.0, W2, 50.0, event="E2", ip=None, pm=None),
    ]
    labels = pd.DataFrame(
        [
            {
                "transaction_id": "F1",
                "is_fraud": True,
                "labelled_at": T0 - timedelta(hours=40),
                "pattern": None,
            },
            {
                "transaction_id": "F2",
                "is_fraud": True,
                "labelled_at": T0 + timedelta(hours=10),
                "pattern": None,
            },
        ]
        + [
            {"transaction_id": t, "is_fraud": False, "labelled_at": T0 - timedelta(days=20), "pattern": None}
            for t in ("A", "B", "C")
        ]
    )
    return History(
        transactions=conform(pd.DataFrame(rows), TRANSACTION_COLUMNS),
        labels=conform(labels, LABEL_COLUMNS),
        events=conform(pd.DataFrame(columns=list(EVENT_COLUMNS)), EVENT_COLUMNS),
    )


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    history = _history()
    return build_features(history, PARAMS).set_index(history.transactions["transaction_id"])


def test_the_amount_is_a_feature(features: pd.DataFrame) -> None:
    assert features.loc["D", "amount"] == 100.0
    assert features.loc["H", "amount"] == 50.0


def test_wallet_windows_count_sum_mean_std_max_and_z(features: pd.DataFrame) -> None:
    d = features.loc["D"]
    # 1 h window: only C (20) at -0.5 h
    assert d["txn_velocity_1h"] == 1
    assert d["spend_1h"] == 20.0
    assert d["wallet_amount_mean_1h"] == 20.0
    assert d["wallet_amount_std_1h"] == 0.0
    assert d["amount_z_wallet_1h"] == 0.0  # one row: no spread to measure against
    assert d["amount_vs_wallet_mean_1h"] == pytest.approx(5.0)
    # 7 d window: A, B, C = 10, 30, 20
    assert d["txn_velocity_7d"] == 3
    assert d["spend_7d"] == 60.0
    assert d["wallet_amount_mean_7d"] == pytest.approx(20.0)
    std = math.sqrt(((10 - 20) ** 2 + (30 - 20) ** 2 + 0) / 3)
    assert d["wallet_amount_std_7d"] == pytest.approx(std)
    assert d["wallet_amount_max_7d"] == 30.0
    assert d["amount_z_wallet_7d"] == pytest.approx((100 - 20) / std)
    # A wallet with no history: the "none" values, never NaN
    a = features.loc["A"]
    assert a["wallet_amount_mean_7d"] == -1
    assert a["wallet_amount_max_7d"] == -1
    assert a["amount_z_wallet_7d"] == 0


def test_delayed_label_risk_is_smoothed_toward_the_global_rate_and_point_in_time(
    features: pd.DataFrame,
) -> None:
    # At t = 0 the risk window (2 d, delay 1 d) is [-72 h, -24 h): it holds B (-50 h), F1 (-60 h) and
    # F2 (-30 h); only F1's label is known before t (at -40 h; F2's comes at +10 h): global rate 1/3.
    g = features.loc["G"]
    prior = 1 / 3
    # E2's window holds F1 and F2, one known fraud: (1 + 2·prior) / (2 + 2)
    assert g["event_risk_2d"] == pytest.approx((1 + 2 * prior) / 4)
    assert g["event_risk_n_2d"] == 2
    assert g["event_risk_fraud_2d"] == 1
    assert g["ip_risk_2d"] == pytest.approx((1 + 2 * prior) / 4)
    assert g["payment_method_risk_2d"] == pytest.approx((1 + 2 * prior) / 4)
    assert g["wallet_risk_2d"] == pytest.approx((1 + 2 * prior) / 4)
    # The seller was never seen: the prior itself
    assert g["seller_risk_2d"] == pytest.approx(prior)
    # E1's window holds B (legitimate): (0 + 2·prior) / (1 + 2)
    assert features.loc["D", "event_risk_2d"] == pytest.approx(2 * prior / 3)
    # Fields left out: −1, not the prior (the model can tell "not sent" from "unknown")
    h = features.loc["H"]
    assert h["ip_risk_2d"] == -1
    assert h["payment_method_risk_2d"] == -1
    assert h["seller_risk_2d"] == -1


def test_a_label_not_yet_known_does_not_count() -> None:
    history = _history()
    labels = history.labels.copy()
    # F1's label arrives after t = 0: the event's risk at G falls to the (now zero) prior.
    labels.loc[labels["transaction_id"] == "F1", "labelled_at"] = T0 + timedelta(hours=1)
    late = History(history.events, history.transactions, conform(labels, LABEL_COLUMNS))
    f = build_features(late, PARAMS).set_index(history.transactions["transaction_id"])
    assert f.loc["G", "event_risk_2d"] == 0.0
    assert f.loc["G", "event_risk_n_2d"] == 2
    assert f.loc["G", "event_risk_fraud_2d"] == 0


def _with_recent_fraud(labelled_at: datetime) -> History:
    """The history plus F3: a fraud at E2 10 h before t, too recent for the risk window (delay 1 d)."""
    history = _history()
    tx = pd.concat(
        [
            history.transactions,
            conform(
                pd.DataFrame([_tx("F3", -10.0, W1, 45.0, event="E2", ip="6.6.6.6", pm="gift")]),
                TRANSACTION_COLUMNS,
            ),
        ],
        ignore_index=True,
    )
    label = pd.DataFrame(
        [{"transaction_id": "F3", "is_fraud": True, "labelled_at": labelled_at, "pattern": None}]
    )
    labels = pd.concat([history.labels, conform(label, LABEL_COLUMNS)], ignore_index=True)
    return History(history.events, conform(tx, TRANSACTION_COLUMNS), conform(labels, LABEL_COLUMNS))


REPORTED = replace(PARAMS, reported_windows=(timedelta(days=3),))


def test_reported_fraud_counts_labels_known_before_t_with_no_maturity_offset() -> None:
    history = _with_recent_fraud(T0 - timedelta(hours=2))
    f = build_features(history, REPORTED).set_index(history.transactions["transaction_id"])
    g = f.loc["G"]
    # E2's transactions in [t − 3 d, t): F1, F2, F3; known before t: F1 (at −40 h) and F3 (at −2 h).
    assert g["event_fraud_reported_3d"] == 2
    assert g["event_fraud_reported_share_3d"] == pytest.approx(2 / 3)
    # The risk window [t − 3 d, t − 1 d) does not see F3: reported fraud reads what the risk cannot yet.
    assert g["event_risk_fraud_2d"] == 1
    assert g["ip_fraud_reported_3d"] == 2
    assert g["payment_method_fraud_reported_share_3d"] == pytest.approx(2 / 3)
    # W2 made F1 and F2 (F3 is W1's): one known.
    assert g["wallet_fraud_reported_3d"] == 1
    assert g["wallet_fraud_reported_share_3d"] == pytest.approx(1 / 2)
    # A seller never seen: 0. No seller (a primary sale), no IP: −1, not 0.
    assert g["seller_fraud_reported_share_3d"] == 0
    assert f.loc["D", "seller_fraud_reported_share_3d"] == -1
    assert f.loc["H", "ip_fraud_reported_share_3d"] == -1
    assert f.loc["H", "ip_fraud_reported_3d"] == 0
    # A label known after t does not count.
    late = _with_recent_fraud(T0 + timedelta(hours=1))
    f = build_features(late, REPORTED).set_index(late.transactions["transaction_id"])
    assert f.loc["G", "event_fraud_reported_3d"] == 1
    assert f.loc["G", "event_fraud_reported_share_3d"] == pytest.approx(1 / 3)


def test_one_declaration_gives_primitives_and_features_for_any_windows() -> None:
    assert feature_names(FeatureParams())[: len(HAND_FEATURE_NAMES)] == HAND_FEATURE_NAMES
    assert feature_names(FeatureParams()) == FEATURE_NAMES
    names = feature_names(PARAMS)
    assert "txn_velocity_7d" in names
    assert "event_risk_2d" in names
    assert "txn_velocity_30d" not in names
    assert len(names) == len(set(names))
    # The guide's ten keep their names
    for guide in (
        "txn_velocity_1h",
        "wallet_age_days",
        "avg_ticket_hold_time",
        "event_popularity_score",
        "price_deviation_ratio",
        "cross_event_attendance",
        "geo_velocity_flag",
        "payment_method_diversity",
        "social_graph_centrality",
        "time_to_first_resale",
    ):
        assert guide in names
    prims = {a.name for a in aggregates(PARAMS)}
    assert {
        "w_n_7d",
        "w_sq_7d",
        "w_max_7d",
        "e_rn_2d",
        "pm_rf_2d",
        "g_rn",
        "g_rf",
        "e_kf_7d",
        "pm_n_30d",
    } <= prims
    assert "event_fraud_reported_30d" in names
    assert "event_fraud_reported_3d" in feature_names(REPORTED)
    assert "event_fraud_reported_30d" not in feature_names(replace(PARAMS, reported_windows=()))
    assert window_label(timedelta(hours=24)) == "24h"
    assert window_label(timedelta(days=30)) == "30d"
    with pytest.raises(ValueError, match="windows"):
        FeatureParams(windows=())
    with pytest.raises(ValueError, match="distinct"):
        FeatureParams(windows=(timedelta(hours=24), timedelta(days=1)))


def test_range_max_equals_a_loop() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=500)
    lo = rng.integers(0, 500, 2000)
    hi = np.minimum(lo + rng.integers(0, 200, 2000), 500)
    got = range_max(values, lo, hi)
    want = np.array([values[a:b].max() if b > a else np.nan for a, b in zip(lo, hi, strict=True)])
    np.testing.assert_array_equal(got, want)
