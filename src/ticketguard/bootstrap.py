"""The one place that turns Settings into adapters (database engine, Redis or in-process stores, …)."""

from __future__ import annotations

from sqlalchemy import Engine

from ticketguard.config import Settings
from ticketguard.kit.db import make_engine


def database_engine(settings: Settings, *, batch: bool = False) -> Engine:
    """The configured database. `batch` engines (bulk loads, training reads, jobs) get the long
    JOB_STATEMENT_TIMEOUT_MS instead of the request path's short DB_STATEMENT_TIMEOUT_MS."""
    timeout = settings.job_statement_timeout_ms if batch else settings.db_statement_timeout_ms
    return make_engine(
        settings.resolved_database_url, pool_size=settings.db_pool_size, statement_timeout_ms=timeout
    )
