"""Liveness and readiness, for load balancers and orchestrators (docs/deploy.md "Lifecycle").

- ``GET /health/live``: 200 while this worker process can serve at all — its event loop answers and its
  group-commit thread runs. No I/O: a database outage must not make an orchestrator restart every API
  worker (that would turn a degraded service into none). 503 means restart me.
- ``GET /health/ready``: 200 only when this worker should get traffic — the model is loaded, the database
  answers, and the online feature state is ready (or not used: features from SQL). 503 with the failing
  checks otherwise, so an ALB target group / Kubernetes Service routes only to ready workers. The checks
  are /health's own (``api/health.py::HealthChecks``, cached 1 s): many probes cost one database round trip.

Shutdown: on SIGTERM uvicorn stops accepting connections, lets the requests in flight finish (at most
``API_SHUTDOWN_GRACE_SECONDS``), then the app's lifespan stops the group committer, which writes every
answer still queued before the process exits — a request answered 200 has its rows, and no request is
half-written (each batch is one database transaction).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ticketguard.api.app import json_response
from ticketguard.api.health import HealthChecks, HealthSnapshot
from ticketguard.scoring.service import ScoringService

router = APIRouter()

LIVE_PATH = "/health/live"
READY_PATH = "/health/ready"


def readiness(snapshot: HealthSnapshot) -> dict[str, str]:
    """Each readiness check's outcome, from /health's cached snapshot: "ok", or why this worker should not
    get traffic. Redis is not among them: without it a worker still answers (features from SQL, local
    rate limits), so routing away from every worker at once would turn degraded into down."""
    checks = snapshot.checks
    features = checks.get("features", "")
    return {
        "model": f"ok ({snapshot.model_version})" if snapshot.model_ok else checks.get("model", "missing"),
        "database": "ok" if snapshot.database_ok else checks.get("database", "down"),
        "features": (
            "ok (sql)"
            if features == "sql"
            else "ok (memory)"
            if features.startswith("memory: ready")
            else f"not ready: {features}"
        ),
    }


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
    health: HealthChecks = request.app.state.health
    checks = readiness(health.snapshot())
    is_ready = all(value.startswith("ok") for value in checks.values())
    return _json({"status": "ready" if is_ready else "not_ready", "checks": checks}, 200 if is_ready else 503)
