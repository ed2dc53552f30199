"""Retention runs and their report. Each batch is committed on its own (the service owns these
transactions: a batch is the unit of progress, and the run as a whole is safe to interrupt and re-run)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from ticketguard.config import Settings
from ticketguard.retention import repository
from ticketguard.retention.policy import RetentionPolicy

log = logging.getLogger(__name__)

# Called after every committed batch with (table, phase, rows in that batch); phase is "archive", "purge"
# or "delete". Progress bars hook in here; so do tests that interrupt a run between batches.
BatchCallback = Callable[[str, str, int], None]


@dataclass
class TableReport:
    table: str
    archive_table: str | None
    cutoff: datetime
    horizon: datetime | None
    archived: int = 0  # moved from the live table to the archive (dry run: would be)
    purged: int = 0  # deleted from the archive past its horizon (dry run: would be)
    deleted: int = 0  # deleted outright (sessions)
    batches: int = 0


@dataclass
class RetentionReport:
    dry_run: bool
    now: datetime
    tables: list[TableReport] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        """Flat counts for the job-runs table."""
        out: dict[str, int] = {}
        for report in self.tables:
            if report.archive_table:
                out[f"{report.table}.archived"] = report.archived
                out[f"{report.archive_table}.purged"] = report.purged
            else:
                out[f"{report.table}.deleted"] = report.deleted
        return out

    @property
    def rows(self) -> int:
        return sum(r.archived + r.purged + r.deleted for r in self.tables)


def run_retention(
    engine: Engine,
    policy: RetentionPolicy,
    *,
    now: datetime,
    dry_run: bool = False,
    on_batch: BatchCallback | None = None,
    checkpoint: repository.Checkpoint | None = None,
) -> RetentionReport:
    """Archive, purge and delete by the policy. Dry run: count what would happen, change nothing.

    ``checkpoint`` is the fault-injection seam of `repository.move_batch` (tests only)."""
    started = time.perf_counter()
    report = RetentionReport(dry_run=dry_run, now=now)
    limit = policy.batch_rows

    for rule in policy.archives:
        cutoff, horizon = rule.cutoffs(now)
        table_report = TableReport(rule.table, rule.archive_table, cutoff, horizon)
        report.tables.append(table_report)
        if dry_run:
            with engine.connect() as conn:
                table_report.archived = repository.count_older(
                    conn, rule.table, rule.timestamp_column, cutoff
                )
                # Live rows already past the horizon are archived first, then purged with the rest.
                table_report.purged = repository.count_older(
                    conn, rule.archive_table, rule.timestamp_column, horizon
                ) + repository.count_older(conn, rule.table, rule.timestamp_column, horizon)
            continue

        while True:
            with engine.begin() as conn:
                rows = repository.move_batch(conn, rule, cutoff, limit, now, checkpoint=checkpoint)
            if rows == 0:
                break
            table_report.archived += rows
            table_report.batches += 1
            if on_batch:
                on_batch(rule.table, "archive", rows)
        while True:
            with engine.begin() as conn:
                rows = repository.purge_archive_batch(conn, rule, horizon, limit)
            if rows == 0:
                break
            table_report.purged += rows
            table_report.batches += 1
            if on_batch:
                on_batch(rule.archive_table, "purge", rows)
        log.info(
            "retention table done",
            extra={"table": rule.table, "archived": table_report.archived, "purged": table_report.purged},
        )

    session_cutoff = policy.session_cutoff(now)
    sessions = TableReport("admin_sessions", None, session_cutoff, None)
    report.tables.append(sessions)
    if dry_run:
        with engine.connect() as conn:
            sessions.deleted = repository.count_ended_sessions(conn, session_cutoff)
    else:
        while True:
            with engine.begin() as conn:
                rows = repository.delete_ended_sessions_batch(conn, session_cutoff, limit)
            if rows == 0:
                break
            sessions.deleted += rows
            sessions.batches += 1
            if on_batch:
                on_batch("admin_sessions", "delete", rows)

    report.seconds = time.perf_counter() - started
    return report


def tell_feature_state(settings: Settings, report: RetentionReport) -> None:
    """Transactions archived: the API workers' in-memory features must drop them (they reload)."""
    moved = sum(r.archived + r.deleted for r in report.tables if r.table == "transactions")
    if moved and not report.dry_run:
        from ticketguard.scoring.online import invalidate_feature_state

        invalidate_feature_state(settings, f"retention archived {moved} transactions")
