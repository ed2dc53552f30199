"""The one place that turns Settings into adapters (database engine, Redis or in-process stores, …)."""

from __future__ import annotations

from sqlalchemy import Engine

from ticketguard.config import Settings
from ticketguard.kit.db import make_engine


def database_engine(settings: Settings) -> Engine:
    return make_engine(
        settings.resolved_database_url,
        pool_size=settings.db_pool_size,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
