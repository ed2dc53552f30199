"""`GET /api/v1/reviews/{transaction_id}`: the backend asks how a MANUAL_REVIEW case ended (docs/reviews.md).

Behind the same client auth as scoring (JWT or an API key with scope `score`: the backend that asked for the
decision may ask for its outcome) and rate-limited per IP on its own route budget (`/api/v1/reviews`) as
well as the IP and global limits. The analyst's name and note stay inside: the answer says pending, claimed
or decided, the outcome and when. Where REVIEW_CALLBACK_URL is set the backend is also told by a signed
webhook; this endpoint is the pull side of the same fact (e.g. after the backend was down).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from ticketguard.api.app import json_response
from ticketguard.api.schemas import ID_PATTERN, Decision, ErrorResponse
from ticketguard.kit.outage import outage_log
from ticketguard.reviews.service import lookup

router = APIRouter()
_database = outage_log("database")

ReviewApiStatus = Literal["pending", "claimed", "decided", "not_a_review_case"]


class ReviewStatusResponse(BaseModel):
    transaction_id: str
    status: ReviewApiStatus = Field(
        description="pending: waiting for an analyst; claimed: an analyst is on it; decided: see outcome; "
        "not_a_review_case: the transaction was scored with another decision (see decision)."
    )
    decision: Decision = Field(description="The decision the scoring API answered for this transaction.")
    outcome: Literal["fraud", "legitimate"] | None = Field(description="Set once decided.")
    decided_at: datetime | None = Field(description="When the analyst decided (UTC); set once decided.")
    scored_at: datetime = Field(description="When the transaction was scored (UTC).")


@router.get(
    "/api/v1/reviews/{transaction_id}",
    response_model=ReviewStatusResponse,
    responses={
        401: {"model": ErrorResponse, "description": "JWT or API key with scope score (when auth is on)."},
        404: {
            "model": ErrorResponse,
            "description": "No scored transaction with this id (or no longer kept).",
        },
        422: {"model": ErrorResponse, "description": "transaction_id is not a valid id."},
        429: {"model": ErrorResponse, "description": "Rate limited."},
        503: {"model": ErrorResponse, "description": "The database is unreachable; retry."},
    },
    summary="Outcome of a MANUAL_REVIEW case",
    tags=["reviews"],
)
def review_status(
    request: Request,
    transaction_id: Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)],
) -> Response:
    engine = request.app.state.engine
    try:
        with engine.connect() as conn:
            found = lookup(conn, transaction_id, now=datetime.now(UTC))
    except SQLAlchemyError as exc:
        _database.failure(f"review status: {type(exc).__name__}")
        return json_response(
            {"error": "database_unavailable", "detail": "the database is unreachable; retry"},
            503,
            headers={"Retry-After": "1"},
        )
    _database.ok()
    if found is None:
        return json_response(
            {"error": "not_found", "detail": f"no scored transaction with transaction_id {transaction_id!r}"},
            404,
        )
    case = found.case
    body = {
        "transaction_id": found.transaction_id,
        "status": found.api_status,
        "decision": found.decision,
        "outcome": case.outcome if case else None,
        "decided_at": case.decided_at.isoformat() if case and case.decided_at else None,
        "scored_at": found.scored_at.isoformat(),
    }
    return json_response(body, headers={"Cache-Control": "no-store"})
