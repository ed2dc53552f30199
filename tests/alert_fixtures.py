"""Helpers shared by the alerting tests (integration/test_alerts.py, integration/test_alerts_e2e.py) and
benchmarks/bench_alerts.py."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert

from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.jobs.schedule import ScheduledJob
from ticketguard.jobs.worker import run_worker
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


def start_alert_worker(settings: Settings, engine: Engine, stop: threading.Event) -> threading.Thread:
    """`run_worker` in a daemon thread until ``stop`` is set: evaluate-alerts and deliver-outbox every
    second (the production schedule's jobs at test speed)."""
    schedule = [
        ScheduledJob("evaluate-alerts", every=timedelta(seconds=1)),
        ScheduledJob("deliver-outbox", every=timedelta(seconds=1)),
    ]
    thread = threading.Thread(
        target=run_worker,
        kwargs={
            "settings": settings,
            "engine": engine,
            "stop": stop,
            "schedule": schedule,
            "check_seconds": 0.2,
        },
        daemon=True,
    )
    thread.start()
    return thread
