"""Runtime decision thresholds: the configured ones, or stricter ones while an alert's
`tighten_thresholds` response is active (docs/alerts.md).

Each API worker keeps the override in memory and never reads the database on the request path: a daemon
thread re-reads it every ``refresh_s`` seconds, and on PostgreSQL the list-change NOTIFY (which migration
0011 extends to `security_responses`) makes it re-read at once — an override applied or reverted anywhere
reaches every worker within milliseconds there, within ``refresh_s`` on SQLite. An override whose TTL has
passed stops applying at its expiry time, without waiting for a re-read. A failed read keeps the last
known override (logged once per outage).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine

from ticketguard.kit.outage import outage_log
from ticketguard.scoring.domain import Thresholds
from ticketguard.security.responses import ThresholdOverride, active_threshold_override

REFRESH_SECONDS = 5.0


class ThresholdRuntime:
    def __init__(
        self,
        engine: Engine,
        configured: Thresholds,
        *,
        refresh_s: float | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.configured = configured
        self.refresh_s = refresh_s if refresh_s is not None else REFRESH_SECONDS
        self.clock = clock
        self.override: ThresholdOverride | None = None
        self.loaded = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> tuple[Thresholds, ThresholdOverride | None]:
        """The thresholds to decide with now, and the override behind them (None: the configured ones)."""
        override = self.override
        if override is None:
            return self.configured, None
        if override.expires_at is not None and override.expires_at <= self.clock():
            return self.configured, None
        try:
            return Thresholds(block=override.block, review=override.review, twofa=override.twofa), override
        except ValueError:  # an override out of order is ignored rather than served
            return self.configured, None

    def refresh(self) -> None:
        try:
            with self.engine.connect() as conn:
                self.override = active_threshold_override(conn, self.clock())
            self.loaded = True
            outage_log("database").ok()
        except Exception as exc:
            outage_log("database").failure(f"threshold override (last one kept): {type(exc).__name__}")

    def changed(self) -> None:
        """A list-change notification: re-read now (in the refresh thread, not the listener's)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="threshold-override", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.refresh_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.refresh()

    def describe(self) -> str:
        """For /health."""
        thresholds, override = self.current()
        values = f"block {thresholds.block:g}, review {thresholds.review:g}, 2fa {thresholds.twofa:g}"
        if override is None:
            return f"configured ({values})"
        until = f" until {override.expires_at:%Y-%m-%d %H:%M:%S} UTC" if override.expires_at else ""
        return f"tightened by {override.rule} (response {override.response_id}){until}: {values}"
