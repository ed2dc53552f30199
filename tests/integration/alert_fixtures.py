"""Helpers shared by the alerting tests (test_alerts.py on SQLite and PostgreSQL, test_alerts_e2e.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, insert

from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.security.keys import pepper
from ticketguard.security.redact import hash_ip


def login_failures(engine: Engine, settings: Settings, ip: str, n: int, at: datetime) -> str:
    """``n`` failed password log-ins from ``ip``, one a second back from ``at``, as the console writes them
    (source_ip hashed with the deployment's pepper); returns that hashed address."""
    token = hash_ip(ip, pepper(settings))
    with engine.begin() as conn:
        conn.execute(
            insert(tables.security_events),
            [
                {
                    "event_type": "login_failed",
                    "severity": "medium",
                    "source_ip": token,
                    "metadata": {"stage": "password"},
                    "timestamp": at - timedelta(seconds=i),
                }
                for i in range(n)
            ],
        )
    return token
