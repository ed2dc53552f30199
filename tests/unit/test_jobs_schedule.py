"""The one schedule: every entry names a real job, and its trigger fires when the guide says (UTC)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from ticketguard.jobs.registry import JOBS
from ticketguard.jobs.schedule import SCHEDULE

BY_JOB = {entry.job: entry for entry in SCHEDULE}


def _next_fires(job: str, after: datetime, n: int = 3) -> list[datetime]:
    trigger = BY_JOB[job].trigger()
    fires: list[datetime] = []
    previous = None
    now = after
    for _ in range(n):
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        fires.append(fire.astimezone(UTC))
        previous, now = fire, fire + timedelta(microseconds=1)
    return fires


def test_every_scheduled_job_exists_and_every_job_is_scheduled() -> None:
    assert set(BY_JOB) == set(JOBS)
    assert len(BY_JOB) == len(SCHEDULE)


def test_etl_runs_daily_at_two_utc() -> None:
    fires = _next_fires("etl", datetime(2026, 3, 29, 1, 30, tzinfo=UTC))  # a DST change day in Europe
    assert fires == [datetime(2026, 3, d, 2, 0, tzinfo=UTC) for d in (29, 30, 31)]


def test_views_refresh_every_five_minutes() -> None:
    fires = _next_fires("refresh-views", datetime(2026, 11, 25, 10, 3, 10, tzinfo=UTC))
    assert fires == [datetime(2026, 11, 25, 10, m, tzinfo=UTC) for m in (5, 10, 15)]


def test_retention_runs_on_sundays_at_three_utc() -> None:
    fires = _next_fires("retention", datetime(2026, 11, 25, 12, 0, tzinfo=UTC))  # a Wednesday
    assert fires == [
        datetime(2026, 11, 29, 3, tzinfo=UTC),
        datetime(2026, 12, 6, 3, tzinfo=UTC),
        datetime(2026, 12, 13, 3, tzinfo=UTC),
    ]
    assert all(f.strftime("%A") == "Sunday" for f in fires)


def test_data_quality_runs_hourly() -> None:
    fires = _next_fires("data-quality", datetime(2026, 11, 25, 12, 20, tzinfo=UTC))
    assert fires == [datetime(2026, 11, 25, h, 15, tzinfo=UTC) for h in (13, 14, 15)]


@pytest.mark.parametrize("after", [datetime(2026, 11, 25, tzinfo=UTC), datetime(2027, 12, 30, tzinfo=UTC)])
def test_retraining_runs_every_fourteen_days_on_sunday_after_etl_and_retention(after: datetime) -> None:
    fires = _next_fires("retrain", after)
    assert [b - a for a, b in itertools.pairwise(fires)] == [timedelta(days=14)] * 2
    assert all(f.strftime("%A %H:%M") == "Sunday 04:00" for f in fires)
    assert fires[0] - after <= timedelta(days=14)


def test_previous_fire_is_the_latest_due_time_not_after_now() -> None:
    wednesday = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert BY_JOB["retention"].previous_fire(wednesday) == datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    assert BY_JOB["etl"].previous_fire(wednesday) == datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    assert BY_JOB["refresh-views"].previous_fire(datetime(2026, 11, 25, 12, 5, tzinfo=UTC)) == datetime(
        2026, 11, 25, 12, 5, tzinfo=UTC
    )
    retrain = BY_JOB["retrain"].previous_fire(wednesday)
    assert retrain is not None
    assert timedelta(0) <= wednesday - retrain < timedelta(days=14)
    assert retrain.strftime("%A %H:%M") == "Sunday 04:00"
