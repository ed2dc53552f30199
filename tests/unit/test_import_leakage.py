"""Issue 13 (leak): without an events file, an imported event's capacity, face value and start used to be
derived from the whole file, so the features of its early sales saw the later ones. They are now marked
derived and treated as unknown by every feature execution; the reference price is the mean of the event's
earlier sales (point-in-time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ticketguard.features.offline import build_features
from ticketguard.features.specs import FeatureParams
from ticketguard.ingest import read_labelled_file

NOW = datetime(2026, 6, 1, tzinfo=UTC)
START = datetime(2026, 1, 5, 10, tzinfo=UTC)
PARAMS = FeatureParams(label_delay=timedelta(days=1), risk_window=timedelta(days=10))


def sales(n: int, *, offset: int = 0, price: float = 50.0, hours: float = 6.0) -> pd.DataFrame:
    """``n`` primary sales of two events, one every ``hours`` from START + offset * hours."""
    i = np.arange(offset, offset + n)
    return pd.DataFrame(
        {
            "transaction_id": [f"t{k}" for k in i],
            "wallet_address": [f"0x{k % 9 + 1:040x}" for k in i],
            "event_id": ["ev-a" if k % 3 else "ev-b" for k in i],
            "ticket_id": [f"tk-{k}" for k in i],
            "price_paid": [f"{price + k % 5}" for k in i],
            "timestamp": [(START + timedelta(hours=hours * k)).isoformat() for k in i],
            "is_fraud": ["1" if k % 7 == 0 else "0" for k in i],
        }
    )


def features_of(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    frame.to_csv(path, index=False)
    history = read_labelled_file(path, now=NOW)
    return build_features(history, PARAMS).set_axis(history.transactions["transaction_id"])


def test_appending_future_rows_never_changes_earlier_rows_features(tmp_path: Path) -> None:
    early = sales(60)
    # Later sales of the same events at ten times the price, with many more tickets: under the old
    # derivation they moved the median face value, the capacity and the start of both events.
    later = sales(120, offset=60, price=500.0)
    before = features_of(early, tmp_path / "early.csv")
    after = features_of(pd.concat([early, later]), tmp_path / "all.csv").loc[before.index]
    pd.testing.assert_frame_equal(before, after)


def test_derived_events_are_marked_and_given_facts_are_kept(tmp_path: Path) -> None:
    rows = sales(12)
    path = tmp_path / "h.csv"
    rows.to_csv(path, index=False)
    events = read_labelled_file(path, now=NOW).events.set_index("event_id")
    assert events["facts_derived"].tolist() == [True, True]
    described = rows.assign(
        event_capacity="500", event_face_value="40", event_starts_at="2026-03-01T20:00:00Z"
    )
    described.to_csv(path, index=False)
    history = read_labelled_file(path, now=NOW)
    assert not history.events["facts_derived"].any()
    features = build_features(history, PARAMS)
    assert (features["event_popularity_score"] > 0).any()  # real facts are used


def test_reference_price_of_a_derived_event_is_the_mean_of_earlier_sales(tmp_path: Path) -> None:
    rows = sales(6, hours=1.0).assign(event_id="ev-a", price_paid=["10", "20", "30", "40", "50", "60"])
    features = features_of(rows, tmp_path / "h.csv")
    # t2 pays 30 against the mean of 10 and 20 (= 15): +100 %; the first sale has no reference (0).
    assert features.loc["t0", "price_deviation_ratio"] == 0.0
    assert features.loc["t2", "price_deviation_ratio"] == 1.0
    assert (features["event_popularity_score"] == 0).all()  # capacity and start unknown
