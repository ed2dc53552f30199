"""The time-ordered split (issue 13): day-aligned boundaries, a chosen test window, and errors that name
the real cause when a part has nothing to learn from."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

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


def midnight(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def test_default_boundaries_fall_on_utc_midnights() -> None:
    # Issue 13: the boundaries were the last transaction + 1 µs and whatever time of day followed from it.
    p = plan()  # data from 2026-01-01 09:30 to 2026-03-01 14:30
    assert p.end == midnight("2026-03-02")  # the last transaction's day is a whole test day
    assert p.test_start == midnight("2026-02-23")
    assert p.gap_start == midnight("2026-02-16")
    assert p.validation_start == midnight("2026-02-09")
    assert p.train_start == midnight("2026-01-05")  # first whole day (Jan 2) + 3 warm-up days
    for moment in (p.end, p.test_start, p.gap_start, p.validation_start, p.train_start):
        assert (moment.hour, moment.minute, moment.second, moment.microsecond) == (0, 0, 0, 0)
    fractional = plan(test=timedelta(days=6.5))
    assert fractional.test_start == midnight("2026-02-23")  # spans round up to whole days


def test_test_days_can_be_chosen_and_the_other_parts_follow() -> None:
    p = plan(test_from=date(2026, 2, 1), test_to=date(2026, 2, 10))
    assert (p.test_start, p.end) == (midnight("2026-02-01"), midnight("2026-02-11"))  # --test-to inclusive
    assert (p.gap_start, p.validation_start) == (midnight("2026-01-25"), midnight("2026-01-18"))
    rows = p.mask(data().timestamp_us, "test")
    assert rows.sum() == 10 * 20  # ten whole days of 20 transactions
    only_from = plan(test_from=date(2026, 2, 20))
    assert (only_from.test_start, only_from.end) == (midnight("2026-02-20"), midnight("2026-03-02"))
    only_to = plan(test_to=date(2026, 2, 14))
    assert (only_to.test_start, only_to.end) == (midnight("2026-02-08"), midnight("2026-02-15"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"test_from": date(2026, 2, 10), "test_to": date(2026, 2, 1)},
            "--test-from 2026-02-10 is after --test-to",
        ),
        (
            {"test_from": date(2026, 3, 5)},
            "--test-from 2026-03-05 is outside the data, whose transactions run "
            "from 2026-01-01 to 2026-03-01",
        ),
        ({"test_to": date(2025, 12, 31)}, "--test-to 2025-12-31 is outside the data"),
        (
            {"test_from": date(2026, 1, 20)},
            "--test-from 2026-01-20 leaves 19.0 days of data before the test "
            "days; the parts before them need at least 24",
        ),
    ],
)
def test_a_test_window_that_cannot_work_is_refused_clearly(kwargs: dict[str, date], message: str) -> None:
    with pytest.raises(DatasetError) as caught:
        plan(**kwargs)
    assert message in str(caught.value)
