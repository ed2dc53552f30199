"""The time-ordered split (issue 13): day-aligned boundaries, a chosen test window, and errors that name
the real cause when a part has nothing to learn from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ticketguard.ml.dataset import US, DatasetError, LabelledFeatures, SplitPlan, split

DAY = timedelta(days=1)
START = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)


def _us(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * US)


def data(
    days: int = 60, *, label_delay: timedelta = timedelta(days=1), per_day: int = 20
) -> LabelledFeatures:
    """``per_day`` transactions a day from START, every 5th a fraud, labels known ``label_delay`` later."""
    times = np.array(
        [_us(START + timedelta(days=d, minutes=10 * i)) for d in range(days) for i in range(per_day)],
        dtype=np.int64,
    )
    n = len(times)
    fraud = np.arange(n) % 5 == 0
    return LabelledFeatures(
        transaction_id=np.array([f"t{i}" for i in range(n)], dtype=object),
        timestamp_us=times,
        wallet=np.array([f"w{i % 7}" for i in range(n)], dtype=object),
        event=np.array(["e"] * n, dtype=object),
        features=pd.DataFrame({"x": np.arange(n, dtype=float)}),
        has_label=np.ones(n, dtype=bool),
        is_fraud=fraud,
        labelled_us=times + int(label_delay.total_seconds() * US),
        pattern=np.array([None] * n, dtype=object),
    )


def plan(**kwargs: object) -> SplitPlan:
    defaults = {"test": 7 * DAY, "gap": 7 * DAY, "validation": 7 * DAY, "warmup": 3 * DAY}
    defaults.update(kwargs)
    return SplitPlan.plan(START, START + timedelta(days=59, hours=5), **defaults)  # type: ignore[arg-type]


def test_labels_not_yet_known_at_the_cutoff_are_named_as_the_cause() -> None:
    # Issue 13: a 45-day default label delay left every fraud of validation unknown at the cutoff and the
    # message said "no fraud to learn from" — the real cause is the delay.
    late = data(label_delay=timedelta(days=45))
    with pytest.raises(DatasetError) as caught:
        split(late, plan())
    message = str(caught.value)
    assert "none of their labels was known at the training cutoff" in message
    assert "--label-delay-days" in message
    assert "fraud transaction(s)" in message
    split(data(label_delay=timedelta(days=1)), plan())  # the same history with timely labels splits


def test_a_part_without_any_fraud_says_so() -> None:
    clean = data()
    clean.is_fraud[:] = False
    with pytest.raises(DatasetError, match="has no fraud to learn or measure from"):
        split(clean, plan())
