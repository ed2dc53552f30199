"""The retention policy as values: which table keeps rows how long, and where they go after that.

Pure: no database, no clock. Ages count from each row's own timestamp column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ticketguard.config import Settings


@dataclass(frozen=True)
class ArchiveRule:
    """Rows of ``table`` older than ``hot`` move to ``archive_table``; archived rows older than
    ``horizon`` are deleted."""

    table: str
    archive_table: str
    key: str
    timestamp_column: str
    hot: timedelta
    horizon: timedelta

    def cutoffs(self, now: datetime) -> tuple[datetime, datetime]:
        """(move rows older than this, purge archived rows older than this)."""
        return now - self.hot, now - self.horizon


@dataclass(frozen=True)
class RetentionPolicy:
    archives: tuple[ArchiveRule, ...]
    sessions: timedelta  # admin sessions are deleted this long after they expired or were revoked
    batch_rows: int

    def session_cutoff(self, now: datetime) -> datetime:
        return now - self.sessions


def policy_from_settings(settings: Settings) -> RetentionPolicy:
    def days(value: int) -> timedelta:
        return timedelta(days=value)

    return RetentionPolicy(
        archives=(
            ArchiveRule(
                table="transactions",
                archive_table="transactions_archive",
                key="transaction_id",
                timestamp_column="timestamp",
                hot=days(settings.retention_transactions_hot_days),
                horizon=days(settings.retention_transactions_archive_days),
            ),
            ArchiveRule(
                table="fraud_predictions",
                archive_table="fraud_predictions_archive",
                key="id",
                timestamp_column="timestamp",
                hot=days(settings.retention_predictions_hot_days),
                horizon=days(settings.retention_predictions_archive_days),
            ),
            ArchiveRule(
                table="admin_audit_log",
                archive_table="admin_audit_log_archive",
                key="id",
                timestamp_column="timestamp",
                hot=days(settings.retention_audit_hot_days),
                horizon=days(settings.retention_audit_archive_days),
            ),
        ),
        sessions=days(settings.retention_sessions_days),
        batch_rows=settings.retention_batch_rows,
    )
