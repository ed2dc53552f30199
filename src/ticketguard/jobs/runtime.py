"""What every job entrypoint needs: an engine fit for long statements, on a migrated database."""

from __future__ import annotations

from sqlalchemy import Engine

from ticketguard.config import Settings
from ticketguard.kit import migrate
from ticketguard.kit.db import make_engine
from ticketguard.kit.migrate import DatabaseNotReady

__all__ = ["DatabaseNotReady", "check_database_ready", "job_engine"]


def job_engine(settings: Settings) -> Engine:
    """Jobs move and scan many rows: they get JOB_STATEMENT_TIMEOUT_MS, requests keep the short one.

    On PostgreSQL each running job holds one connection for its lock and uses another for its work, and
    the worker holds one for its own lock: the pool (6, overflow 6) leaves room for all worker threads."""
    return make_engine(
        settings.resolved_database_url,
        pool_size=6,
        statement_timeout_ms=settings.job_statement_timeout_ms,
    )


def check_database_ready(settings: Settings) -> None:
    migrate.check_ready(settings.resolved_database_url)
