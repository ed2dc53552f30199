"""The routes: thin shells that validate, call the scoring service, and map its outcome to HTTP.

The blocking work (SQL, XGBoost, waiting for the group commit) runs in thread pools; the single-item route
scores on the event loop when the in-memory feature state can answer (see `ScoringService.score_inline`).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ticketguard.api import metrics
from ticketguard.api.app import json_response
from ticketguard.api.body import StrictJSONRoute, body_check, validation_payload
from ticketguard.api.schemas import (
    BatchRequestModel,
    BatchResponse,
    ErrorResponse,
    HealthResponse,
    ModelInfo,
    ScoreRequestModel,
    ScoreResponse,
)
from ticketguard.scoring import domain
from ticketguard.scoring.domain import Answer
from ticketguard.scoring.service import (
    ModelUnavailable,
    Outcome,
    ScoreRequest,
    ScoringError,
    ScoringService,
    ScoringUnavailable,
)

# Bodies are parsed by `api.body.strict_loads` (duplicate keys, bad UTF-8, huge numbers, deep nesting are
# refused with the project's 422) before FastAPI validates them against the models.
router = APIRouter(route_class=StrictJSONRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "Same transaction_id, different payload."},
    413: {"model": ErrorResponse, "description": "Body over API_MAX_BODY_BYTES."},
    415: {"model": ErrorResponse, "description": "Content-Type is not application/json."},
    422: {"model": ErrorResponse, "description": "Invalid field: the message names it."},
    503: {
        "model": ScoreResponse,
        "description": "No model (the message says how to train one), or the database is down / the "
        "deadline passed: a degraded policy answer (MANUAL_REVIEW by default), not stored.",
    },
}


def answer_json(answer: Answer) -> dict[str, Any]:
    body = answer.to_json()
    if isinstance(body["fraud_score"], float) and math.isnan(body["fraud_score"]):
        body["fraud_score"] = None
    return body


def _canonical(model: ScoreRequestModel) -> dict[str, Any]:
    """What the idempotency fingerprint covers: every field but the client timestamp (a retry re-sends the
    same purchase with a fresh clock), numbers normalised (50, 50.0 and 50.00 are one price)."""
    body = model.model_dump(mode="json", exclude_none=True, exclude={"timestamp"})
    body["price_paid"] = format(model.price_paid.normalize(), "f")
    return body


def _to_request(model: ScoreRequestModel, actor: str | None) -> ScoreRequest:
    return ScoreRequest(
        transaction_id=model.transaction_id,
        wallet_address=model.wallet_address,
        price_paid=Decimal(model.price_paid),
        ticket_id=model.ticket_id,
        event_id=model.event_id,
        payment_method=model.payment_method,
        is_resale=model.is_resale,
        seller_address=model.seller_address,
        ip_address=model.ip_address,
        timestamp=model.timestamp,
        country=model.country,
        latitude=model.latitude,
        longitude=model.longitude,
        fingerprint=domain.fingerprint(_canonical(model)),
        actor=actor,
    )


def _skew_error(model: ScoreRequestModel, max_skew_s: int, field: str = "timestamp") -> dict[str, Any] | None:
    if model.timestamp is None:
        return None
    skew = abs((model.timestamp - datetime.now(UTC)).total_seconds())
    if skew <= max_skew_s:
        return None
    message = (
        f"must be within {max_skew_s} s of the server clock (SCORING_MAX_CLOCK_SKEW_SECONDS), "
        f"is {skew:.0f} s off"
    )
    return {
        "error": "validation_error",
        "message": f"{field}: {message}",
        "detail": [{"field": field, "message": message, "type": "clock_skew"}],
    }


def _record(outcome: Outcome) -> None:
    a = outcome.answer
    metrics.DECISIONS.labels(
        decision=a.decision, degraded=str(a.degraded).lower(), replayed=str(outcome.replayed).lower()
    ).inc()


def _service(request: Request) -> ScoringService:
    service: ScoringService = request.app.state.scoring
    return service


@router.post(
    "/api/v1/ml/predict/fraud",
    response_model=ScoreResponse,
    responses=_ERRORS,
    summary="Score one transaction",
    tags=["scoring"],
)
async def predict_fraud(body: ScoreRequestModel, request: Request) -> Response:
    service = _service(request)
    skew = _skew_error(body, service.settings.scoring_max_clock_skew_seconds)
    if skew is not None:
        return json_response(skew, 422)
    req = _to_request(body, getattr(request.state, "client_id", None))
    # For the security layer's events (it hashes the wallet before storing anything).
    request.state.wallet_address = body.wallet_address
    request.state.transaction_id = body.transaction_id
    try:
        # In-memory features: scored on the event loop, the commit awaited. Otherwise (state not ready,
        # the same id in flight) in the thread pool, where the SQL reads and the waiting belong.
        outcome = await service.score_inline(req)
        if outcome is None:
            outcome = await run_in_threadpool(service.score, req)
    except ScoringUnavailable as exc:
        request.state.decision = exc.answer.decision
        metrics.DECISIONS.labels(decision=exc.answer.decision, degraded="true", replayed="false").inc()
        return json_response(answer_json(exc.answer), 503, headers={"Retry-After": "1"})
    except ModelUnavailable as exc:
        return json_response({"error": "model_unavailable", "detail": str(exc)}, 503)
    except ScoringError as exc:
        return json_response({"error": type(exc).__name__, "detail": str(exc)}, exc.status_code)
    request.state.decision = outcome.answer.decision
    _record(outcome)
    return json_response(answer_json(outcome.answer))


_batch_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="batch-score")


def _batch_size(data: Any, request: Request) -> Response | None:
    """Before any item is validated: a batch over API_BATCH_MAX_ITEMS is refused (a 1 MB body holds
    thousands of small items; validating them all first would be work done for nothing)."""
    items = data.get("transactions") if isinstance(data, dict) else None
    limit = request.app.state.settings.api_batch_max_items
    if isinstance(items, list) and len(items) > limit:
        message = f"at most {limit} transactions per batch (API_BATCH_MAX_ITEMS), got {len(items)}"
        return json_response(validation_payload("transactions", message, "too_long"), 422)
    return None


@router.post(
    "/api/v1/ml/batch/predict",
    response_model=BatchResponse,
    responses={
        **_ERRORS,
        429: {"model": ErrorResponse, "description": "Rate limited: a batch counts its items as scorings."},
    },
    summary="Score up to API_BATCH_MAX_ITEMS transactions; per-item errors are listed, not raised",
    tags=["scoring"],
)
@body_check(_batch_size)
async def batch_predict(body: BatchRequestModel, request: Request) -> Response:
    service = _service(request)
    ids = [t.transaction_id for t in body.transactions]
    if len(set(ids)) != len(ids):
        message = "transaction_id must be unique within a batch"
        return json_response(validation_payload("transactions", message, "duplicate"), 422)
    for i, item in enumerate(body.transactions):
        skew = _skew_error(
            item, service.settings.scoring_max_clock_skew_seconds, f"transactions.{i}.timestamp"
        )
        if skew is not None:
            return json_response(skew, 422)
    try:
        service.model()
    except ModelUnavailable as exc:
        return json_response({"error": "model_unavailable", "detail": str(exc)}, 503)
    # Limits count scorings: the request counted one when it came in; its other items count now, against
    # the IP, user and global limits, all or none (the security layer's `charge_scorings`).
    charge = getattr(request.state, "charge_scorings", None)
    if charge is not None:
        refusal = await charge(len(body.transactions) - 1)
        if refusal is not None:
            return refusal
    actor = getattr(request.state, "client_id", None)
    requests = [_to_request(item, actor) for item in body.transactions]
    # Scored side by side so that their writes share group commits.
    results = await run_in_threadpool(
        lambda: list(_batch_pool.map(lambda r: _score_item(service, r), requests))
    )
    predictions: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for i, (req, result) in enumerate(zip(requests, results, strict=True)):
        if isinstance(result, Outcome):
            _record(result)
            predictions.append(answer_json(result.answer))
            continue
        status, detail, answer = result
        errors.append(
            {
                "index": i,
                "transaction_id": req.transaction_id,
                "status": status,
                "detail": detail,
                "answer": answer,
            }
        )
    request.state.blocked_count = sum(1 for p in predictions if p["decision"] == "BLOCKED")
    return json_response({"predictions": predictions, "errors": errors})


def _score_all(service: ScoringService, requests: list[ScoreRequest]) -> list[Any]:
    return list(_batch_pool.map(lambda r: _score_item(service, r), requests))


def _score_item(service: ScoringService, req: ScoreRequest) -> Outcome | tuple[int, str, Any]:
    try:
        return service.score(req)
    except ScoringUnavailable as exc:
        return (503, str(exc), answer_json(exc.answer))
    except ScoringError as exc:
        return (exc.status_code, str(exc), None)


@router.get(
    "/api/v1/ml/model/info",
    response_model=ModelInfo,
    responses={503: {"model": ErrorResponse}},
    tags=["model"],
)
def model_info(request: Request) -> Response:
    service = _service(request)
    try:
        model = service.model()
    except ModelUnavailable as exc:
        return json_response({"error": "model_unavailable", "detail": str(exc)}, 503)
    card = model.card
    return json_response(
        {
            "model_version": model.version,
            "feature_names": list(model.feature_names),
            # in force now: an alert's tighten_thresholds response may have made them stricter
            "thresholds": {
                "block": service.threshold_runtime.current()[0].block,
                "review": service.threshold_runtime.current()[0].review,
                "2fa": service.threshold_runtime.current()[0].twofa,
            },
            "trained_at": card.created_at.isoformat() if card.created_at else None,
            "metrics": _jsonable(card.metrics),
            "explanation_policy": service.exact_for,
        }
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


@router.get(
    "/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}}, tags=["ops"]
)
def health(request: Request) -> Response:
    """The guide's `{"status", "model_version"}` for anyone (cached checks, `api/health.py`); the checks
    per dependency too for an authenticated caller, or when client auth is off (development)."""
    snap = request.app.state.health.snapshot()
    body: dict[str, Any] = {"status": snap.status, "model_version": snap.model_version}
    auth = getattr(request.app.state, "security_auth", "disabled")
    if auth == "disabled" or getattr(request.state, "authenticated", False):
        body.update(checks=snap.checks, auth=auth)
    return json_response(body, snap.http_status)


@router.get(
    "/metrics", tags=["ops"], response_class=Response, responses={200: {"content": {"text/plain": {}}}}
)
def prometheus_metrics() -> Response:
    payload, content_type = metrics.render()
    return Response(payload, media_type=content_type)
