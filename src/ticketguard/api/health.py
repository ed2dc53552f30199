"""The dependency checks behind ``GET /health``, computed at most once per ``ttl_s`` per worker.

Each check costs a database round trip and a Redis ping; run per call, any anonymous caller could make the
API spend them at will. `HealthChecks.snapshot()` returns the last result while it is younger than
``ttl_s`` (1 s), and one thread recomputes it when it is older (the others keep getting the previous one
meanwhile; only the very first call waits). Readiness and liveness probes can reuse the same snapshot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from ticketguard.scoring.service import ModelUnavailable, ScoringService

CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class HealthSnapshot:
    status: str  # healthy | degraded | unhealthy
    http_status: int
    model_version: str | None
    checks: dict[str, str] = field(default_factory=dict)
    checked_at: float = 0.0  # monotonic

    @property
    def database_ok(self) -> bool:
        return self.checks.get("database") == "ok"

    @property
    def model_ok(self) -> bool:
        return self.checks.get("model") == "ok"


class HealthChecks:
    def __init__(
        self,
        service: ScoringService,
        redis: Any | None,
        *,
        ttl_s: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.redis = redis
        self.ttl_s = ttl_s
        self.clock = clock
        self.runs = 0
        self._last: HealthSnapshot | None = None
        self._lock = threading.Lock()

    def snapshot(self) -> HealthSnapshot:
        last = self._last
        if last is not None and self.clock() - last.checked_at < self.ttl_s:
            return last
        if not self._lock.acquire(blocking=last is None):
            return last  # type: ignore[return-value]  # someone is refreshing it: the previous one will do
        try:
            last = self._last
            if last is None or self.clock() - last.checked_at >= self.ttl_s:
                self._last = last = self._check()
            return last
        finally:
            self._lock.release()

    def _check(self) -> HealthSnapshot:
        self.runs += 1
        service = self.service
        checks: dict[str, str] = {}
        try:
            with service.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"down: {type(exc).__name__}"
        if self.redis is None:
            checks["redis"] = "not configured (in-process state)"
        else:
            try:
                self.redis.ping()
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"down: {type(exc).__name__}"
        checks["features"] = service.feature_source_status()
        watcher = service.list_watcher
        if not watcher.supported:
            checks["list_changes"] = "periodic refresh"
        else:
            checks["list_changes"] = "notify: listening" if watcher.connected else "notify: reconnecting"
        # alerting (issue 15): the decision thresholds in force (an alert may have tightened them)
        checks["thresholds"] = service.threshold_runtime.describe()
        version: str | None = None
        try:
            version = service.model().version
            checks["model"] = "ok"
        except ModelUnavailable as exc:
            checks["model"] = f"missing: {exc}"
        if checks["database"] != "ok" or checks["model"] != "ok":
            status, code = "unhealthy", 503
        elif checks["redis"].startswith("down") or checks["features"].startswith("memory: stale"):
            status, code = "degraded", 200
        else:
            status, code = "healthy", 200
        return HealthSnapshot(status, code, version, checks, self.clock())
