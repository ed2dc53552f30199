"""Offline features against hand-computed values, point-in-time leakage, and the counting kernel."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ticketguard.features.kernels import positions
from ticketguard.features.offline import build_features
from ticketguard.features.online import HistoryFeatureSource, OnlineFeatures
from ticketguard.features.repository import TransactionFacts
from ticketguard.features.specs import FEATURE_NAMES, FeatureParams, haversine_km
from ticketguard.history import EVENT_COLUMNS, LABEL_COLUMNS, TRANSACTION_COLUMNS, History, conform

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
BERLIN, MADRID, NEW_YORK = (52.52, 13.405), (40.4168, -3.7038), (40.7128, -74.006)
A, B, C, D = (f"0x{c * 40}" for c in "abcd")
PARAMS = FeatureParams(label_delay=timedelta(hours=1), risk_window=timedelta(hours=48))


def _at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def _tx(
    tid: str,
    hours: float,
    wallet: str,
    event: str,
    ticket: str,
    price: float,
    *,
    seller: str | None = None,
    pm: str | None = "card_a",
    ip: str | None = "1.1.1.1",
    loc: tuple[float, float] | None = None,
) -> dict:
    return {
        "transaction_id": tid,
        "wallet_address": wallet,
        "event_id": event,
        "ticket_id": ticket,
        "price_paid": price,
        "payment_method": pm,
        "is_resale": seller is not None,
        "status": "completed",
        "timestamp": _at(hours),
        "seller_address": seller,
        "ip_address": ip,
        "country": None,
        "latitude": None if loc is None else loc[0],
        "longitude": None if loc is None else loc[1],
        "source": "import",
    }


def small_history() -> History:
    events = conform(
        pd.DataFrame(
            [
                {
                    "event_id": "E1",
                    "name": "E1",
                    "organizer_id": "o",
                    "capacity": 100,
                    "face_value": 50.0,
                    "on_sale_at": datetime(2026, 1, 1, tzinfo=UTC),
                    "starts_at": datetime(2026, 1, 11, tzinfo=UTC),
                },
                {
                    "event_id": "E2",
                    "name": "E2",
                    "organizer_id": "o",
                    "capacity": 10,
                    "face_value": 0.0,
                    "on_sale_at": datetime(2026, 1, 1, tzinfo=UTC),
                    "starts_at": datetime(2026, 1, 20, tzinfo=UTC),
                },
            ]
        ),
        EVENT_COLUMNS,
    )
    rows = [
        _tx("T1", 0, A, "E1", "K1", 50, pm="card_a", loc=BERLIN),
        _tx("T2", 1 / 6, A, "E1", "K2", 60, pm="card_b", loc=BERLIN),
        _tx("T3", 2 / 6, B, "E1", "K3", 55, pm="card_c", loc=MADRID),
        _tx("T4", 0.5, A, "E2", "K4", 100, pm="card_a", ip="2.2.2.2", loc=NEW_YORK),
        _tx("T5", 2, B, "E1", "K1", 80, seller=A, pm="card_c", ip="3.3.3.3"),
        _tx("T6", 26, A, "E1", "K1", 90, seller=B, pm="card_a", ip="1.1.1.1"),
        _tx("T7", 26, C, "E1", "K3", 70, seller=B, pm=None, ip=None),
        _tx("T8", 30, D, "E1", "K2", 65, seller=A, pm="card_d", ip="4.4.4.4"),
    ]
    transactions = conform(pd.DataFrame(rows), TRANSACTION_COLUMNS)
    fraud = {"T3": 25.0, "T4": 3.0, "T5": 10.0}
    labels = conform(
        pd.DataFrame(
            [
                {
                    "transaction_id": r["transaction_id"],
                    "is_fraud": r["transaction_id"] in fraud,
                    "pattern": None,
                    "source": "import",
                    "labelled_at": _at(fraud.get(r["transaction_id"], 24 * 45)),
                }
                for r in rows
            ]
        ),
        LABEL_COLUMNS,
    )
    return History(events=events, transactions=transactions, labels=labels)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    history = small_history()
    return build_features(history, PARAMS).set_axis(history.transactions["transaction_id"])


def test_catalogue_order_and_no_nan(features: pd.DataFrame) -> None:
    assert tuple(features.columns) == FEATURE_NAMES
    assert np.isfinite(features.to_numpy()).all()


def test_wallet_velocity_and_history_of_second_purchase(features: pd.DataFrame) -> None:
    row = features.loc["T2"]  # A, 10 minutes after its first purchase T1 (50.00, card_a, Berlin)
    assert row.txn_velocity_1h == 1
    assert row.txn_velocity_24h == 1
    assert row.spend_24h == pytest.approx(50.0)
    assert row.seconds_since_last_txn == pytest.approx(600.0)
    assert row.wallet_age_days == pytest.approx(600 / 86400)
    assert row.cross_event_attendance == 1
    assert row.payment_method_diversity == 2
    assert row.new_payment_method == 1
    assert row.new_ip_for_wallet == 0
    assert row.wallets_per_ip_24h == 0
    assert row.ip_txn_1h == 1
    assert row.same_event_tickets_1h == 1
    assert row.events_24h == 1
    assert row.price_deviation_ratio == pytest.approx((60 - 50) / 50)
    assert row.price_vs_wallet_mean == pytest.approx(60 / 50)
    days_until = (datetime(2026, 1, 11, tzinfo=UTC) - _at(1 / 6)).total_seconds() / 86400
    assert row.event_popularity_score == pytest.approx(1 / 100 * days_until**-0.5)
    assert row.km_from_usual_location == pytest.approx(0.0)
    assert row.km_from_event_crowd == pytest.approx(0.0)
    assert row.geo_velocity_flag == 0
    assert row.is_resale == 0


def test_first_purchase_of_a_new_wallet_uses_missing_values(features: pd.DataFrame) -> None:
    row = features.loc["T3"]  # B's first transaction, same IP as A's two purchases
    assert row.wallet_age_days == 0
    assert row.seconds_since_last_txn == -1
    assert row.price_vs_wallet_mean == -1
    assert row.avg_ticket_hold_time == -1
    assert row.km_from_usual_location == -1
    assert row.new_payment_method == 1
    assert row.payment_method_diversity == 1
    assert row.new_ip_for_wallet == 1
    assert row.wallets_per_ip_24h == 1
    assert row.ip_txn_1h == 2
    berlin_to_madrid = haversine_km(*(np.array([v]) for v in (*MADRID, *BERLIN)))[0]
    assert row.km_from_event_crowd == pytest.approx(berlin_to_madrid)
    assert row.event_popularity_score > 0


def test_geo_velocity_flags_a_continent_jump_within_the_hour(features: pd.DataFrame) -> None:
    row = features.loc["T4"]  # A in New York 20 minutes after Berlin
    assert row.geo_velocity_flag == 1
    assert row.km_from_usual_location == pytest.approx(
        haversine_km(*(np.array([v]) for v in (*NEW_YORK, *BERLIN)))[0]
    )
    assert row.txn_velocity_1h == 2
    assert row.events_24h == 1
    assert row.same_event_tickets_1h == 0
    assert row.new_payment_method == 0
    assert row.payment_method_diversity == 2
    assert row.price_deviation_ratio == 0  # E2 has no face value and no earlier sale: no reference
    assert row.event_popularity_score == 0  # nothing sold for E2 yet
    assert row.km_from_event_crowd == -1


def test_resale_ticket_features(features: pd.DataFrame) -> None:
    t5 = features.loc["T5"]  # B buys K1 from A two hours after its mint
    assert t5.is_resale == 1
    assert t5.ticket_hold_hours == pytest.approx(2.0)
    assert t5.time_to_first_resale == pytest.approx(120.0)
    assert t5.ticket_prior_transfers == 1
    assert t5.repeat_pair_count == 0
    assert t5.ticket_returns_to_owner == 0
    assert t5.social_graph_centrality == 0  # no transfer before 2026-01-05 00:00
    t6 = features.loc["T6"]  # A buys K1 back from B a day later
    assert t6.ticket_returns_to_owner == 1
    assert t6.repeat_pair_count == 1
    assert t6.ticket_hold_hours == pytest.approx(24.0)
    assert t6.time_to_first_resale == pytest.approx(120.0)
    assert t6.ticket_prior_transfers == 2
    assert t6.avg_ticket_hold_time == pytest.approx(2.0)  # A resold K1 (T5) after holding it 2 h
    # Snapshot of 2026-01-06: one edge A → B; B dangling. r_A = 0.5 / 1.425, scaled by 2 nodes.
    assert t6.social_graph_centrality == pytest.approx(2 * 0.5 / 1.425, rel=1e-6)
    assert features.loc["T1", "time_to_first_resale"] == -1
    assert features.loc["T1", "ticket_hold_hours"] == -1


def test_rows_at_the_same_instant_do_not_see_each_other(features: pd.DataFrame) -> None:
    t7 = features.loc["T7"]  # same timestamp as T6, also sold by B
    assert t7.repeat_pair_count == 0
    assert t7.avg_ticket_hold_time == -1  # C never resold
    assert t7.payment_method_diversity == 0
    assert t7.new_payment_method == 0
    assert t7.wallets_per_ip_24h == 0
    assert t7.ip_txn_1h == 0
    assert t7.new_ip_for_wallet == 0


def test_label_features_only_use_labels_known_before_t(features: pd.DataFrame) -> None:
    # E1 window for T5 (+2 h): [−47 h, +1 h) holds T1–T3; T3's fraud label arrives at +25 h: not known.
    assert features.loc["T5", "event_fraud_rate"] == 0
    assert features.loc["T5", "counterparty_known_fraud"] == 0  # A's fraud T4 is known only at +3 h
    # For T6 (+26 h): window [−23 h, +25 h) holds T1, T2, T3, T5; T3 (known +25 h) and T5 (+10 h) are fraud.
    assert features.loc["T6", "event_fraud_rate"] == pytest.approx(0.5)
    assert features.loc["T6", "counterparty_known_fraud"] == 1  # B bought T3, known fraud by +25 h
    # T8 (+30 h), seller A: A's sales in [−19 h, +29 h) = T5, fraud known at +10 h.
    assert features.loc["T8", "seller_fraud_rate"] == pytest.approx(1.0)
    assert features.loc["T8", "counterparty_known_fraud"] == 1


def test_blacklisted_counterparty_is_point_in_time() -> None:
    history = small_history()
    blacklist = pd.DataFrame(
        {
            "wallet_address": [B, A],
            "timestamp": pd.to_datetime([_at(25), _at(0)], utc=True),
            "expires_at": pd.to_datetime([None, _at(30)], utc=True),
        }
    )
    f = build_features(history, PARAMS, blacklist=blacklist).set_axis(history.transactions["transaction_id"])
    assert f.loc["T6", "counterparty_blacklisted"] == 1
    assert f.loc["T7", "counterparty_blacklisted"] == 1
    assert f.loc["T5", "counterparty_blacklisted"] == 1  # A listed from 0 h until 30 h
    assert f.loc["T8", "counterparty_blacklisted"] == 0  # A's listing expired at 30 h, exactly T8's time
    assert f.loc["T1", "counterparty_blacklisted"] == 0  # primary sale: no counterparty


# ------------------------------------------------------------------------------------------ leakage
def random_history(seed: int, n: int = 600) -> History:
    """Dense, collision-heavy history: few wallets/IPs/tickets, repeated timestamps, nulls everywhere."""
    rng = np.random.default_rng(seed)
    wallets = np.array([f"0x{i:040x}" for i in range(25)], dtype=object)
    base = T0.timestamp()
    seconds = np.sort(rng.integers(0, 10 * 86400, n)).astype(float)
    seconds[rng.random(n) < 0.1] = seconds[0]  # ties
    seconds = np.sort(seconds)
    resale = rng.random(n) < 0.4
    seller = np.where(resale, wallets[rng.integers(0, 25, n)], None)
    tx = pd.DataFrame(
        {
            "transaction_id": [f"R{i:05d}" for i in range(n)],
            "wallet_address": wallets[rng.integers(0, 25, n)],
            "event_id": np.array(["E1", "E2", "E3"], dtype=object)[rng.integers(0, 3, n)],
            "ticket_id": np.where(rng.random(n) < 0.9, [f"K{i}" for i in rng.integers(0, 60, n)], None),
            "price_paid": np.round(rng.uniform(5, 200, n), 2),
            "payment_method": np.where(rng.random(n) < 0.9, [f"pm{i}" for i in rng.integers(0, 8, n)], None),
            "is_resale": resale,
            "timestamp": pd.to_datetime(base + seconds, unit="s", utc=True),
            "seller_address": seller,
            "ip_address": np.where(rng.random(n) < 0.9, [f"10.0.0.{i}" for i in rng.integers(0, 6, n)], None),
            "latitude": np.where(rng.random(n) < 0.8, rng.uniform(-60, 60, n), np.nan),
            "longitude": rng.uniform(-170, 170, n),
            "source": "import",
        }
    )
    tx = conform(tx, TRANSACTION_COLUMNS)
    events = conform(
        pd.DataFrame(
            {
                "event_id": ["E1", "E2", "E3"],
                "name": ["1", "2", "3"],
                "organizer_id": "o",
                "capacity": [50, 80, 200],
                "face_value": [40.0, 0.0, 90.0],
                "on_sale_at": pd.Timestamp(T0 - timedelta(days=3)),
                "starts_at": pd.to_datetime([T0 + timedelta(days=d) for d in (4, 8, 30)], utc=True),
            }
        ),
        EVENT_COLUMNS,
    )
    delay = rng.uniform(0.1, 6, n) * 86400
    labels = conform(
        pd.DataFrame(
            {
                "transaction_id": tx["transaction_id"],
                "is_fraud": rng.random(n) < 0.15,
                "pattern": None,
                "source": "import",
                "labelled_at": tx["timestamp"] + pd.to_timedelta(delay, unit="s"),
            }
        ),
        LABEL_COLUMNS,
    )
    return History(events=events, transactions=tx, labels=labels)


LEAK_PARAMS = FeatureParams(label_delay=timedelta(hours=12), risk_window=timedelta(days=3))


def test_future_transactions_never_change_past_features() -> None:
    history = random_history(1)
    full = build_features(history, LEAK_PARAMS)
    cutoff = history.transactions["timestamp"].iloc[350]
    past = history.transactions["timestamp"] < cutoff
    truncated = History(history.events, history.transactions[past], history.labels)
    before = build_features(truncated, LEAK_PARAMS)
    pd.testing.assert_frame_equal(before, full[past.to_numpy()], check_exact=False, rtol=1e-9)


def test_labels_not_known_yet_never_change_a_feature() -> None:
    history = random_history(2)
    cutoff = history.transactions["timestamp"].iloc[400]
    base = build_features(history, LEAK_PARAMS)
    flipped_labels = history.labels.copy()
    later = flipped_labels["labelled_at"] >= cutoff
    assert later.sum() > 20
    flipped_labels.loc[later, "is_fraud"] = ~flipped_labels.loc[later, "is_fraud"]
    flipped = build_features(History(history.events, history.transactions, flipped_labels), LEAK_PARAMS)
    known = (history.transactions["timestamp"] <= cutoff).to_numpy()
    pd.testing.assert_frame_equal(base[known], flipped[known])
    # ... while labels do matter once known: the flip changes some later label feature.
    label_features = ["event_fraud_rate", "seller_fraud_rate", "counterparty_known_fraud"]
    assert not base.loc[~known, label_features].equals(flipped.loc[~known, label_features])


# ------------------------------------------------------------------------------------------ kernel
def test_fast_and_merge_paths_agree_on_ties_and_groups() -> None:
    rng = np.random.default_rng(3)
    groups = np.sort(rng.integers(0, 30, 2000))
    values = rng.integers(0, 50, 2000)
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    qg, qv = rng.integers(0, 32, 500), rng.integers(-5, 55, 500)
    for strict in (True, False):
        fast = positions(g, v, qg, qv, strict=strict)
        merged = positions(g, v, qg, qv, strict=strict, force_merge=True)
        brute = np.array(
            [
                np.sum((g < a) | ((g == a) & ((v < b) if strict else (v <= b))))
                for a, b in zip(qg, qv, strict=True)
            ]
        )
        np.testing.assert_array_equal(fast, brute)
        np.testing.assert_array_equal(merged, brute)


def test_params_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="risk_window"):
        FeatureParams(risk_window=timedelta(0))
    with pytest.raises(ValueError, match="pagerank_damping"):
        FeatureParams(pagerank_damping=1.0)
    assert math.isclose(FeatureParams().geo_distance_km, 500.0)


def test_in_memory_source_answers_like_the_offline_engine(features: pd.DataFrame) -> None:
    history = small_history()
    online = OnlineFeatures(HistoryFeatureSource(history, PARAMS), PARAMS)
    for row in history.transactions.to_dict("records"):
        got = online.compute(TransactionFacts.from_mapping(row))
        expected = features.loc[row["transaction_id"]]
        assert list(got) == list(FEATURE_NAMES)
        np.testing.assert_allclose(
            list(got.values()), expected.to_numpy(), rtol=1e-9, err_msg=row["transaction_id"]
        )


def test_free_tickets_price_0_never_divide_by_zero() -> None:
    # Issue 13: price 0 (comps) is accepted everywhere a price enters. Documented fallbacks: a reference
    # price of 0 (face value 0 and an event mean of 0) gives price_deviation_ratio 0; a wallet whose
    # earlier purchases average 0 gives price_vs_wallet_mean −1 (as without history).
    history = small_history()
    history.transactions["price_paid"] = 0.0
    history.events["face_value"] = 0.0
    features = build_features(history, PARAMS).set_axis(history.transactions["transaction_id"])
    assert np.isfinite(features.to_numpy()).all()
    assert (features["price_deviation_ratio"] == 0).all()
    assert features.loc["T2", "price_vs_wallet_mean"] == -1.0  # A's earlier purchase cost 0
    history.transactions.loc[history.transactions["transaction_id"] == "T2", "price_paid"] = 30.0
    paid = build_features(history, PARAMS).set_axis(history.transactions["transaction_id"])
    assert np.isfinite(paid.to_numpy()).all()
    assert paid.loc["T2", "price_deviation_ratio"] == 0.0  # reference: mean of 0-priced sales, i.e. none
    assert paid.loc["T6", "price_vs_wallet_mean"] == 0.0  # 0 / mean(0, 30, 0)
