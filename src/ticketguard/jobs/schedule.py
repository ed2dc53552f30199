"""The schedule: every recurring job and when it runs, in one place (UTC). The worker reads only this;
docs/data-control.md shows the same table as crontab lines for those who prefer cron."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

if TYPE_CHECKING:
    from ticketguard.config import Settings

# Retraining runs every 14 days counted from this Sunday, after the nightly ETL (02:00) and the weekly
# retention (Sun 03:00) have finished; cron's "*/14" day-of-month is not every 14 days.
RETRAIN_ANCHOR = datetime(2026, 1, 4, 4, 0, tzinfo=UTC)
DEFAULT_OUTBOX_POLL_SECONDS = 5.0
DEFAULT_ALERT_EVAL_SECONDS = 30.0  # alerting (issue 15)


@dataclass(frozen=True)
class ScheduledJob:
    job: str
    cron: str | None = (
        None  # five crontab fields, UTC; day names, not numbers (APScheduler counts from Monday)
    )
    every: timedelta | None = None
    anchor: datetime | None = None
    # A run due while the worker was busy or paused still starts if it is no later than this.
    grace: timedelta = timedelta(minutes=10)

    def trigger(self) -> BaseTrigger:
        if self.cron is not None:
            return CronTrigger.from_crontab(self.cron, timezone=UTC)
        assert self.every is not None
        return IntervalTrigger(seconds=self.every.total_seconds(), start_date=self.anchor, timezone=UTC)

    def previous_fire(self, now: datetime) -> datetime | None:
        """The latest time at or before ``now`` this job was due (None if never, within a week or
        one interval back)."""
        trigger = self.trigger()
        lookback = self.every if self.every is not None else timedelta(days=8)
        due = trigger.get_next_fire_time(None, now - lookback)
        last = None
        while due is not None and due <= now:
            last = due
            due = trigger.get_next_fire_time(due, due + timedelta(microseconds=1))
        return last

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron} (UTC)"
        assert self.every is not None
        since = f" from {self.anchor:%Y-%m-%d %H:%M} UTC" if self.anchor else ""
        return f"every {self.every.days} days{since}" if self.every.days else f"every {self.every}{since}"


_FIXED: tuple[ScheduledJob, ...] = (
    ScheduledJob("etl", cron="0 2 * * *", grace=timedelta(hours=2)),
    ScheduledJob("refresh-views", cron="*/5 * * * *", grace=timedelta(minutes=4)),
    ScheduledJob("retention", cron="0 3 * * sun", grace=timedelta(hours=6)),
    ScheduledJob("data-quality", cron="15 * * * *", grace=timedelta(minutes=30)),
    ScheduledJob("retrain", every=timedelta(days=14), anchor=RETRAIN_ANCHOR, grace=timedelta(hours=6)),
    ScheduledJob("security-correlation", cron="* * * * *", grace=timedelta(seconds=50)),
)


def schedule_for(settings: Settings | None = None) -> tuple[ScheduledJob, ...]:
    """The schedule with the intervals the settings choose (the defaults without settings)."""
    poll = settings.outbox_poll_seconds if settings is not None else DEFAULT_OUTBOX_POLL_SECONDS
    alerts = settings.alert_eval_seconds if settings is not None else DEFAULT_ALERT_EVAL_SECONDS
    return (
        *_FIXED,
        ScheduledJob("deliver-outbox", every=timedelta(seconds=poll), grace=timedelta(seconds=poll)),
        ScheduledJob("evaluate-alerts", every=timedelta(seconds=alerts), grace=timedelta(seconds=alerts)),
    )


SCHEDULE = schedule_for()
