"""The marketplace simulator: deterministic per seed, exact size, realistic labels and structure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ticketguard.simulate import FRAUD_PATTERNS, SimulationConfig, simulate, summarize
from ticketguard.simulate.domain import window_end

CONFIG = SimulationConfig(transactions=30_000, seed=11, days=60)


@pytest.fixture(scope="module")
def history():  # type: ignore[no-untyped-def]
    return simulate(CONFIG)


def test_same_seed_gives_identical_history(history) -> None:  # type: ignore[no-untyped-def]
    again = simulate(CONFIG)
    pd.testing.assert_frame_equal(history.transactions, again.transactions)
    pd.testing.assert_frame_equal(history.labels, again.labels)
    pd.testing.assert_frame_equal(history.events, again.events)


def test_another_seed_gives_another_history(history) -> None:  # type: ignore[no-untyped-def]
    other = simulate(SimulationConfig(transactions=30_000, seed=12, days=60))
    assert len(other.transactions) == len(history.transactions)
    assert not other.transactions["transaction_id"].equals(history.transactions["transaction_id"])
    assert other.transactions["price_paid"].sum() != history.transactions["price_paid"].sum()


@pytest.mark.parametrize("n", [1_000, 7_777, 30_000])
def test_exact_number_of_transactions_inside_the_window(n: int) -> None:
    config = SimulationConfig(transactions=n, seed=3, days=30)
    made = simulate(config).transactions
    assert len(made) == n
    assert made["transaction_id"].is_unique
    assert made["timestamp"].min() >= pd.Timestamp(config.start)
    assert made["timestamp"].max() < pd.Timestamp(window_end(config))


def test_fraud_rate_and_every_pattern_present(history) -> None:  # type: ignore[no-untyped-def]
    labels = history.labels
    assert len(labels) == len(history.transactions)
    rate = labels["is_fraud"].mean()
    assert 0.009 <= rate <= 0.015, rate
    fraud_patterns = set(labels.loc[labels["is_fraud"], "pattern"])
    assert fraud_patterns == set(FRAUD_PATTERNS)
    legit_patterns = set(labels.loc[~labels["is_fraud"], "pattern"])
    assert {"normal", "power_buyer", "honest_reseller", "traveller"} <= legit_patterns
    assert not fraud_patterns & legit_patterns  # a pattern is fraud or legit, never both


def test_fraud_rate_follows_the_setting() -> None:
    high = simulate(SimulationConfig(transactions=20_000, seed=5, days=30, fraud_rate=0.05))
    assert 0.04 <= high.labels["is_fraud"].mean() <= 0.06


def test_labels_arrive_after_the_transaction_fraud_sooner_than_legit(history) -> None:  # type: ignore[no-untyped-def]
    merged = history.transactions.merge(history.labels, on="transaction_id")
    delay = merged["labelled_at"] - merged["timestamp"]
    assert (delay > pd.Timedelta(0)).all()
    fraud_delay = delay[merged["is_fraud"]].median()
    legit_delay = delay[~merged["is_fraud"]].min()
    assert pd.Timedelta(days=2) < fraud_delay < pd.Timedelta(days=15)
    assert legit_delay >= pd.Timedelta(days=45)  # after the chargeback window


def test_resales_are_of_tickets_their_seller_held(history) -> None:  # type: ignore[no-untyped-def]
    tx = history.transactions.sort_values(["timestamp", "transaction_id"])
    primary = tx[~tx["is_resale"]]
    resale = tx[tx["is_resale"]]
    assert primary["seller_address"].isna().all()
    assert resale["seller_address"].notna().all()
    assert (resale["seller_address"] != resale["wallet_address"]).all()
    assert primary["ticket_id"].is_unique  # each ticket is minted once
    # the window starts mid-stream: some resold tickets were minted before it; those minted inside it
    # are resold only after their mint
    first_sale = primary.set_index("ticket_id")["timestamp"]
    minted_inside = resale[resale["ticket_id"].isin(first_sale.index)]
    assert len(minted_inside) > len(resale) / 2
    assert (
        minted_inside["timestamp"].to_numpy() > first_sale.loc[minted_inside["ticket_id"]].to_numpy()
    ).all()
    # the seller of each resale held the ticket: it was the previous buyer of that ticket
    previous_owner = tx.groupby("ticket_id")["wallet_address"].shift(1)
    known = tx["is_resale"] & previous_owner.notna()
    assert known.sum() > len(resale) / 2
    assert (previous_owner[known] == tx.loc[known, "seller_address"]).all()


def test_events_have_capacity_and_sales_stay_within_it(history) -> None:  # type: ignore[no-untyped-def]
    events = history.events.set_index("event_id")
    assert (events["capacity"] > 0).all()
    assert (events["face_value"] > 0).all()
    assert (events["on_sale_at"] < events["starts_at"]).all()
    primary = history.transactions[~history.transactions["is_resale"]]
    sold = primary.groupby("event_id").size()
    assert (sold <= events.loc[sold.index, "capacity"]).all()
    assert primary["event_id"].isin(events.index).all()


def test_wallets_ips_and_geo_are_filled(history) -> None:  # type: ignore[no-untyped-def]
    tx = history.transactions
    for column in ("wallet_address", "ip_address", "country", "payment_method"):
        assert tx[column].notna().all(), column
    assert tx["wallet_address"].str.fullmatch(r"0x[0-9a-f]{40}").all()
    assert tx["latitude"].between(-90, 90).all()
    assert tx["longitude"].between(-180, 180).all()
    assert (tx["price_paid"] >= 0).all()
    assert np.allclose(tx["price_paid"], tx["price_paid"].round(2))


def test_summary_counts_match(history) -> None:  # type: ignore[no-untyped-def]
    summary = summarize(history)
    assert summary["transactions"] == 30_000
    assert summary["resales"] == int(history.transactions["is_resale"].sum()) > 0
    patterns = summary["patterns"]
    assert isinstance(patterns, dict)
    assert sum(patterns.values()) == 30_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"transactions": 10}, "transactions must be >= 1000"),
        ({"days": 3}, "days must be >= 14"),
        ({"fraud_rate": 0.5}, "fraud_rate must be in"),
        ({"start": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_bad_configuration_names_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulationConfig(**kwargs)  # type: ignore[arg-type]


def test_start_moves_the_whole_history() -> None:
    later = datetime(2026, 6, 1, tzinfo=UTC)
    made = simulate(SimulationConfig(transactions=2_000, seed=1, days=20, start=later)).transactions
    assert made["timestamp"].min() >= pd.Timestamp(later)
    assert made["timestamp"].max() < pd.Timestamp(later + timedelta(days=20))
