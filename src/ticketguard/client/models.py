"""What the client sends and returns: plain, typed values, and the reading of the API's JSON into them.

No HTTP here (that is `sync.py` / `aio.py`) and nothing of the server: a backend that installs ticketguard
for its client imports only this package and httpx.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, cast

Decision = Literal["APPROVED", "REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED"]
DECISIONS: frozenset[str] = frozenset({"APPROVED", "REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED"})
FailDecision = Literal["MANUAL_REVIEW", "REQUIRE_2FA", "BLOCKED"]
# Where a decision came from: the model (200), the server's failure policy (its 503 answer: it could not
# score, e.g. its database is down), or this client's fail policy (ticketguard unreachable or unusable).
Source = Literal["model", "server_policy", "client_policy"]


# ----------------------------------------------------------------------------------------------- errors
class TicketguardError(Exception):
    """Base of the client's errors."""


class RequestRejected(TicketguardError):
    """ticketguard refused the request itself (4xx): retrying the same request cannot help."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message


class IdempotencyConflict(RequestRejected):
    """409: this transaction_id was scored with a different payload."""


class AuthenticationFailed(RequestRejected):
    """401/403: the API key or token is missing, wrong, or lacks the scope."""


class TicketguardUnavailable(TicketguardError):
    """ticketguard could not be reached or did not answer usably within the budget (only raised by calls
    without a fail policy, or with ``FailPolicy(decision=None)``)."""


# ----------------------------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class FailPolicy:
    """What a fraud check returns when ticketguard is unreachable, too slow, or answers nonsense.

    ``decision`` is held (``MANUAL_REVIEW``, the default), stepped up (``REQUIRE_2FA``) or refused
    (``BLOCKED``); ``None`` raises `TicketguardUnavailable` instead. ``APPROVED`` is refused: an outage
    must never let a purchase through unchecked."""

    decision: FailDecision | None = "MANUAL_REVIEW"

    def __post_init__(self) -> None:
        if self.decision is not None and self.decision not in ("MANUAL_REVIEW", "REQUIRE_2FA", "BLOCKED"):
            raise ValueError(
                "FailPolicy.decision must be MANUAL_REVIEW, REQUIRE_2FA, BLOCKED or None (raise), "
                f"got {self.decision!r}: an unreachable ticketguard never approves"
            )


# ----------------------------------------------------------------------------------------------- input
@dataclass(frozen=True)
class Transaction:
    """One purchase or resale to check. ``transaction_id`` is the idempotency key: a retry (by this client
    or by the caller) must reuse it, never mint a new one."""

    transaction_id: str
    wallet_address: str
    ticket_id: str
    price_paid: Decimal | int | str
    event_id: str | None = None
    payment_method: str | None = None
    is_resale: bool = False
    seller_address: str | None = None
    ip_address: str | None = None
    timestamp: datetime | None = None
    country: str | None = None
    latitude: float | None = None
    longitude: float | None = None

    def __post_init__(self) -> None:
        for name in ("transaction_id", "wallet_address", "ticket_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if isinstance(self.price_paid, float):
            raise ValueError(
                "price_paid must be a Decimal, int or decimal string (not float: money is exact)"
            )
        try:
            price = Decimal(self.price_paid)
        except (InvalidOperation, TypeError, ValueError):
            raise ValueError(f"price_paid must be a decimal number, got {self.price_paid!r}") from None
        if not price.is_finite() or price < 0:
            raise ValueError(f"price_paid must be >= 0 (0: a free ticket), got {self.price_paid!r}")
        if self.timestamp is not None and self.timestamp.tzinfo is None:
            raise ValueError("timestamp must carry a timezone (e.g. datetime.now(UTC))")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "transaction_id": self.transaction_id,
            "wallet_address": self.wallet_address,
            "ticket_id": self.ticket_id,
            "price_paid": format(Decimal(self.price_paid), "f"),  # exact: a string, never a float
            "is_resale": self.is_resale,
        }
        for name in ("event_id", "payment_method", "seller_address", "ip_address", "country"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.timestamp is not None:
            body["timestamp"] = self.timestamp.isoformat()
        if self.latitude is not None:
            body["latitude"] = self.latitude
        if self.longitude is not None:
            body["longitude"] = self.longitude
        return body


# ----------------------------------------------------------------------------------------------- output
@dataclass(frozen=True)
class TopFeature:
    feature: str
    contribution: float
    value: float | None


@dataclass(frozen=True)
class FraudCheck:
    """ticketguard's answer for one transaction, or the fail policy's stand-in for it (``source``)."""

    transaction_id: str
    decision: Decision
    source: Source
    fraud_score: float | None = None
    confidence: float = 0.0
    top_features: tuple[TopFeature, ...] = ()
    reasons: tuple[str, ...] = ()
    model_version: str = ""
    degraded: bool = False
    degraded_reasons: tuple[str, ...] = ()
    attempts: int = 1

    @property
    def approved(self) -> bool:
        return self.decision == "APPROVED"


@dataclass(frozen=True)
class ItemError:
    """A batch item ticketguard refused (e.g. 409 conflict, 422 invalid); the others were scored."""

    index: int
    transaction_id: str
    status: int
    detail: str


@dataclass(frozen=True)
class BatchResult:
    checks: tuple[FraudCheck, ...]
    errors: tuple[ItemError, ...] = ()

    def by_id(self) -> dict[str, FraudCheck]:
        return {c.transaction_id: c for c in self.checks}


@dataclass(frozen=True)
class ModelInfo:
    model_version: str
    feature_names: tuple[str, ...]
    thresholds: dict[str, float]
    trained_at: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReviewOutcome:
    """An analyst's decision on a transaction held for review (``GET /api/v1/reviews/{transaction_id}``).
    ``raw`` keeps every field the server sent."""

    transaction_id: str
    status: str
    outcome: str | None
    decided_at: str | None
    raw: dict[str, Any]


# ----------------------------------------------------------------------------------------------- parsing
class ProtocolError(TicketguardError):
    """The server answered something that is not a ticketguard answer (wrong service, proxy error page)."""


def _float(value: Any, name: str, *, nullable: bool = False) -> float | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(float(value)):
        raise ProtocolError(f"{name} is not a number: {value!r}")
    return float(value)


def parse_check(body: Any, source: Source, attempts: int) -> FraudCheck:
    """A `FraudCheck` from the API's answer JSON; `ProtocolError` if it is not one (unknown decision, a
    score out of range): the caller falls back to its fail policy, never to APPROVED."""
    if not isinstance(body, dict):
        raise ProtocolError(f"answer is not a JSON object: {type(body).__name__}")
    decision = body.get("decision")
    if decision not in DECISIONS:
        raise ProtocolError(f"unknown decision {decision!r}")
    score = _float(body.get("fraud_score"), "fraud_score", nullable=True)
    if score is not None and not 0.0 <= score <= 1.0:
        raise ProtocolError(f"fraud_score out of [0, 1]: {score}")
    if source == "model" and score is None:
        raise ProtocolError("a 200 answer without fraud_score")
    features = []
    for item in body.get("top_features") or []:
        if isinstance(item, dict) and isinstance(item.get("feature"), str):
            features.append(
                TopFeature(
                    feature=item["feature"],
                    contribution=float(_float(item.get("contribution", 0.0), "contribution") or 0.0),
                    value=_float(item.get("value"), "value", nullable=True),
                )
            )
    return FraudCheck(
        transaction_id=str(body.get("transaction_id", "")),
        decision=cast(Decision, decision),
        source=source,
        fraud_score=score,
        confidence=float(_float(body.get("confidence", 0.0), "confidence") or 0.0),
        top_features=tuple(features),
        reasons=tuple(str(r) for r in body.get("reasons") or []),
        model_version=str(body.get("model_version") or ""),
        degraded=bool(body.get("degraded", False)) or source != "model",
        degraded_reasons=tuple(str(r) for r in body.get("degraded_reasons") or []),
        attempts=attempts,
    )


def policy_check(transaction_id: str, policy: FailPolicy, why: str, attempts: int) -> FraudCheck:
    """The fail policy's stand-in answer (``decision`` is never APPROVED: FailPolicy refuses it)."""
    assert policy.decision is not None
    return FraudCheck(
        transaction_id=transaction_id,
        decision=policy.decision,
        source="client_policy",
        reasons=(f"ticketguard unavailable ({why}): held by the client's fail policy",),
        degraded=True,
        degraded_reasons=(why,),
        attempts=attempts,
    )


def parse_model_info(body: Any) -> ModelInfo:
    if not isinstance(body, dict) or not isinstance(body.get("model_version"), str):
        raise ProtocolError("model info without model_version")
    return ModelInfo(
        model_version=body["model_version"],
        feature_names=tuple(str(n) for n in body.get("feature_names") or []),
        thresholds={str(k): float(v) for k, v in (body.get("thresholds") or {}).items()},
        trained_at=body.get("trained_at"),
        metrics=dict(body.get("metrics") or {}),
    )


def parse_review(transaction_id: str, body: Any) -> ReviewOutcome:
    if not isinstance(body, dict):
        raise ProtocolError("review outcome is not a JSON object")
    outcome = body.get("outcome", body.get("label"))
    return ReviewOutcome(
        transaction_id=str(body.get("transaction_id", transaction_id)),
        status=str(body.get("status", "unknown")),
        outcome=None if outcome is None else str(outcome),
        decided_at=body.get("decided_at"),
        raw=dict(body),
    )


def rejection(status: int, body: Any) -> RequestRejected:
    """The error for a 4xx answer, naming what the server named (its 422 message names the field)."""
    error, message = "rejected", ""
    if isinstance(body, dict):
        error = str(body.get("error", error))
        message = str(body.get("message") or body.get("detail") or "")
    if status == 409:
        return IdempotencyConflict(status, error, message)
    if status in (401, 403):
        return AuthenticationFailed(status, error, message)
    return RequestRejected(status, error, message)
