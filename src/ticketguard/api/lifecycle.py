"""Liveness and readiness, for load balancers and orchestrators (docs/deploy.md "Lifecycle").

- ``GET /health/live``: 200 while this worker process can serve at all — its event loop answers and its
  group-commit thread runs. No I/O: a database outage must not make an orchestrator restart every API
  worker (that would turn a degraded service into none). 503 means restart me.
- ``GET /health/ready``: 200 only when this worker should get traffic — the model is loaded, the database
  answers, and the online feature state is ready (or not used: features from SQL). 503 with the failing
  checks otherwise, so an ALB target group / Kubernetes Service routes only to ready workers. The checks
  are cached for ``READY_CACHE_SECONDS`` so that many probes cost one database round trip.

Shutdown: on SIGTERM uvicorn stops accepting connections, lets the requests in flight finish (at most
``API_SHUTDOWN_GRACE_SECONDS``), then the app's lifespan stops the group committer, which writes every
answer still queued before the process exits — a request answered 200 has its rows, and no request is
half-written (each batch is one database transaction).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import text

from ticketguard.api.app import json_response
from ticketguard.scoring.service import ModelUnavailable, ScoringService

router = APIRouter()

READY_CACHE_SECONDS = 1.0
LIVE_PATH = "/health/live"
READY_PATH = "/health/ready"


def readiness_checks(service: ScoringService) -> dict[str, str]:
    """Each readiness check's outcome: "ok", or why this worker should not get traffic."""
    checks: dict[str, str] = {}
    try:
        checks["model"] = f"ok ({service.model().version})"
    except ModelUnavailable as exc:
        checks["model"] = f"missing: {exc}"
    try:
        with service.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any driver or pool error means the same: not ready
        checks["database"] = f"down: {type(exc).__name__}"
    keeper = service.keeper
    if keeper is None:
        checks["features"] = "ok (sql)"
    else:
        status = keeper.info()["status"]
        checks["features"] = "ok (memory)" if status == "ready" else f"not ready: memory state {status}"
    return checks


class _ReadyCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._at = -float("inf")
        self._checks: dict[str, str] = {}

    def get(self, service: ScoringService) -> dict[str, str]:
        with self._lock:  # one probe checks; those arriving meanwhile wait for its answer
            if time.monotonic() - self._at >= self.ttl_s:
                self._checks = readiness_checks(service)
                self._at = time.monotonic()
            return dict(self._checks)


def _json(body: dict[str, Any], status: int) -> Response:
    return json_response(body, status, headers={"Cache-Control": "no-store"})


@router.get(LIVE_PATH, tags=["ops"], summary="Liveness: 503 means restart this worker")
async def live(request: Request) -> Response:
    service: ScoringService = request.app.state.scoring
    if not service.committer.running:
        return _json({"status": "dead", "reason": "group-commit thread stopped"}, 503)
    return _json({"status": "alive"}, 200)


@router.get(READY_PATH, tags=["ops"], summary="Readiness: 200 only when this worker should get traffic")
def ready(request: Request) -> Response:
    state = request.app.state
    cache: _ReadyCache | None = getattr(state, "ready_cache", None)
    if cache is None:
        cache = state.ready_cache = _ReadyCache(READY_CACHE_SECONDS)
    checks = cache.get(state.scoring)
    is_ready = all(value.startswith("ok") for value in checks.values())
    return _json({"status": "ready" if is_ready else "not_ready", "checks": checks}, 200 if is_ready else 503)
