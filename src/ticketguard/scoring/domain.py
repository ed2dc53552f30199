"""The scoring decision as pure functions of values: the threshold ladder, list overrides, confidence,
readable reasons, and the request fingerprint used for idempotency.

Pure: no database, no clock, no web framework (import-linter holds this module to that).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ticketguard.features.specs import family_phrase

APPROVED = "APPROVED"
REQUIRE_2FA = "REQUIRE_2FA"
MANUAL_REVIEW = "MANUAL_REVIEW"
BLOCKED = "BLOCKED"
DECISIONS = (APPROVED, REQUIRE_2FA, MANUAL_REVIEW, BLOCKED)


@dataclass(frozen=True)
class Thresholds:
    """``score > block`` → BLOCKED, ``> review`` → MANUAL_REVIEW, ``> twofa`` → REQUIRE_2FA, else APPROVED."""

    block: float = 0.85
    review: float = 0.65
    twofa: float = 0.40

    def __post_init__(self) -> None:
        if not 0 < self.twofa < self.review < self.block < 1:
            raise ValueError(
                "thresholds must satisfy 0 < 2fa < review < block < 1, got "
                f"2fa={self.twofa}, review={self.review}, block={self.block}"
            )


@dataclass(frozen=True)
class ListStatus:
    """What the lists say about the request: a block (blacklisted wallet, blocked IP, ...) wins over all;
    an allow-listed (VIP) wallet skips REQUIRE_2FA and MANUAL_REVIEW but is still BLOCKED above the block
    threshold. ``reasons`` are the human-readable causes (no raw wallet or IP in them)."""

    blocked: bool = False
    allowlisted: bool = False
    reasons: tuple[str, ...] = ()

    def merge(self, other: ListStatus) -> ListStatus:
        return ListStatus(
            blocked=self.blocked or other.blocked,
            allowlisted=self.allowlisted or other.allowlisted,
            reasons=self.reasons + other.reasons,
        )


NOT_LISTED = ListStatus()


def ladder(score: float, thresholds: Thresholds) -> str:
    """The guide's ladder on the model score alone (strict ``>`` at each threshold)."""
    if score > thresholds.block:
        return BLOCKED
    if score > thresholds.review:
        return MANUAL_REVIEW
    if score > thresholds.twofa:
        return REQUIRE_2FA
    return APPROVED


def decide(score: float, thresholds: Thresholds, lists: ListStatus = NOT_LISTED) -> str:
    """The decision after list overrides. A NaN score (a model failure) never approves."""
    if lists.blocked:
        return BLOCKED
    if math.isnan(score):
        return MANUAL_REVIEW
    decision = ladder(score, thresholds)
    if lists.allowlisted and decision in (REQUIRE_2FA, MANUAL_REVIEW):
        return APPROVED
    return decision


def confidence(score: float, decision: str, lists: ListStatus = NOT_LISTED) -> float:
    """How sure the answer is, in [0.5, 1]: the model's probability of the side it decided for
    (legitimate for APPROVED, fraud otherwise, floored at 0.5); 1.0 when a list decided."""
    if lists.blocked and decision == BLOCKED:
        return 1.0
    if math.isnan(score):
        return 0.5
    p = 1.0 - score if decision == APPROVED else score
    return round(max(0.5, min(1.0, p)), 6)


# ------------------------------------------------------------------------------------------------ reasons
@dataclass(frozen=True)
class Contribution:
    """One feature's signed contribution to the margin (log-odds) and the value it had."""

    feature: str
    contribution: float
    value: float


# What a high value of a feature means, in words a reviewer reads; {v} is the formatted value.
_PHRASES: dict[str, str] = {
    "txn_velocity_1h": "{v} purchases by this wallet in the last hour",
    "txn_velocity_24h": "{v} purchases by this wallet in the last 24 h",
    "spend_24h": "{v} spent by this wallet in the last 24 h",
    "seconds_since_last_txn": "{v} s since this wallet's previous purchase",
    "wallet_age_days": "wallet first seen {v} days ago",
    "avg_ticket_hold_time": "wallet holds tickets {v} h on average before reselling",
    "event_popularity_score": "event popularity {v}",
    "price_deviation_ratio": "price deviates {v} from the event's reference price",
    "price_vs_wallet_mean": "price is {v}× this wallet's average",
    "cross_event_attendance": "wallet bought for {v} distinct events",
    "geo_velocity_flag": "impossible travel flag {v}",
    "payment_method_diversity": "{v} payment methods used by this wallet",
    "social_graph_centrality": "transfer-graph centrality {v}",
    "time_to_first_resale": "ticket first resold {v} min after mint",
    "same_event_tickets_1h": "{v} tickets for the same event by this wallet in the last hour",
    "wallets_per_ip_24h": "{v} other wallets from this IP in the last 24 h",
    "ticket_returns_to_owner": "ticket returns to a previous owner ({v})",
    "repeat_pair_count": "{v} earlier trades between this buyer and seller",
    "counterparty_blacklisted": "seller blacklisted ({v})",
    "counterparty_known_fraud": "seller involved in confirmed fraud ({v})",
    "event_fraud_rate": "event fraud rate {v}",
    "seller_fraud_rate": "seller fraud rate {v}",
    "is_resale": "resale ({v})",
    "ticket_hold_hours": "seller held the ticket {v} h",
    "ticket_prior_transfers": "ticket changed hands {v} times before",
    "new_payment_method": "new payment method for this wallet ({v})",
    "new_ip_for_wallet": "new IP address for this wallet ({v})",
    "km_from_usual_location": "{v} km from the wallet's usual location",
    "km_from_event_crowd": "{v} km from where the event's buyers are",
    "events_24h": "{v} distinct events in the last 24 h",
    "ip_txn_1h": "{v} purchases from this IP in the last hour",
}


def _format(value: float) -> str:
    if math.isnan(value):
        return "unknown"
    if value == -1.0:
        return "n/a"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}"


def reason(c: Contribution) -> str:
    """``'12 purchases by this wallet in the last hour (raises risk, +1.31)'``."""
    template = _PHRASES.get(c.feature) or family_phrase(c.feature) or c.feature + " = {v}"
    phrase = template.format(v=_format(c.value))
    direction = "raises risk" if c.contribution > 0 else "lowers risk"
    return f"{phrase} ({direction}, {c.contribution:+.2f})"


def top_contributions(
    contributions: Mapping[str, float], values: Mapping[str, float], k: int
) -> list[Contribution]:
    """The k largest non-zero contributions by absolute value, largest first (ties by feature name)."""
    nonzero = [(name, c) for name, c in contributions.items() if c != 0.0]
    ranked = sorted(nonzero, key=lambda kv: (-abs(kv[1]), kv[0]))[:k]
    return [Contribution(name, float(c), float(values.get(name, math.nan))) for name, c in ranked]


def reasons_for(decision: str, top: Sequence[Contribution], lists: ListStatus) -> list[str]:
    """List reasons first (they decided), then the model's reasons that pushed towards the decision
    (risk-raising for a non-approval, risk-lowering for an approval; all of them if none do)."""
    out = list(lists.reasons)
    toward = [c for c in top if (c.contribution > 0) == (decision != APPROVED)]
    out.extend(reason(c) for c in (toward or top))
    return out


# ------------------------------------------------------------------------------------------ idempotency
def fingerprint(payload: Mapping[str, Any]) -> str:
    """sha256 of the request's canonical JSON (sorted keys, no whitespace, unset fields left out)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Answer:
    """What the API answers for one transaction (also what is stored and replayed)."""

    transaction_id: str
    fraud_score: float
    decision: str
    confidence: float
    top_features: list[dict[str, Any]]
    reasons: list[str]
    model_version: str
    bias: float = 0.0  # the model's base log-odds: bias + all contributions == logit(fraud_score)
    degraded: bool = False
    degraded_reasons: list[str] = field(default_factory=list)
    explanation: str = "approximate"

    def to_json(self) -> dict[str, Any]:
        return {
            "transaction_id": self.transaction_id,
            "fraud_score": self.fraud_score,
            "decision": self.decision,
            "confidence": self.confidence,
            "top_features": self.top_features,
            "reasons": self.reasons,
            "model_version": self.model_version,
            "bias": self.bias,
            "degraded": self.degraded,
            "degraded_reasons": self.degraded_reasons,
            "explanation": self.explanation,
        }
