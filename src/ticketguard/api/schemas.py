"""Request and response models of the scoring API (the OpenAPI spec is generated from them).

Strict: unknown fields are refused, strings have lengths and patterns, numbers have ranges; a 422 names
the field and what is accepted.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator

from ticketguard.wallets import WALLET_HELP, canonical_wallet

Decision = Literal["APPROVED", "REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED"]

# 0x + 1-40 hex digits (the guide's own smoke-test wallet has 39). Whatever the spelling, the model holds the
# one canonical form (`ticketguard.wallets.canonical_wallet`: 40 lower-case digits, left-padded; a mixed-case
# 40-digit address must be a valid EIP-55 checksum), so every later look-up sees one key per wallet.
WALLET_PATTERN = r"^0[xX][0-9a-fA-F]{1,40}$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
Wallet = Annotated[
    str,
    Field(pattern=WALLET_PATTERN, max_length=42, description=WALLET_HELP),
    AfterValidator(canonical_wallet),
]
MAX_PRICE = Decimal("1000000000")


class ScoreRequestModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=False,
        json_schema_extra={
            "example": {
                "transaction_id": "test_001",
                "wallet_address": "0x742d35cc6634c0532925a3b844bc9e7595f0beb0",
                "ticket_id": "evt_001",
                "price_paid": 50.00,
            }
        },
    )

    transaction_id: Identifier = Field(description="The caller's id; the idempotency key.")
    wallet_address: Wallet = Field(description="Buyer wallet.")
    ticket_id: Identifier = Field(description="Ticket (token) being bought.")
    price_paid: Decimal = Field(
        ge=0,
        le=MAX_PRICE,
        max_digits=18,
        decimal_places=8,
        description="Price in the platform currency; 0 for a free ticket (comp, giveaway).",
    )
    event_id: Identifier | None = Field(
        default=None, description="Event; looked up from the ticket's history when omitted."
    )
    payment_method: Annotated[str, Field(min_length=1, max_length=32, pattern=ID_PATTERN)] | None = None
    # Strict: only JSON true/false. Lax parsing would read "yes", "on", 1 or "1" as true.
    is_resale: StrictBool = False
    seller_address: Wallet | None = Field(default=None, description="Seller wallet of a resale.")
    timestamp: datetime | None = Field(
        default=None,
        description="Client time (ISO 8601), checked against ours; features use the server clock.",
    )
    ip_address: Annotated[str, Field(max_length=45)] | None = Field(
        default=None, description="End user's IPv4/IPv6 address."
    )
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = Field(
        default=None, description="ISO 3166-1 alpha-2 client geo."
    )
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)

    @field_validator("ip_address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import ipaddress

        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"must be an IPv4 or IPv6 address, got {value[:45]!r}") from None

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a timezone (e.g. 2026-11-25T10:00:00Z)")
        return value

    @field_validator("latitude", "longitude")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and value != value:
            raise ValueError("must be a number, not NaN")
        return value


class TopFeature(BaseModel):
    feature: str
    contribution: float = Field(description="Signed log-odds contribution (positive raises the risk).")
    value: float | None = Field(description="The feature's value for this request (null: unknown).")


class ScoreResponse(BaseModel):
    transaction_id: str
    fraud_score: float | None = Field(ge=0, le=1, description="null only in a 503 policy answer.")
    decision: Decision
    confidence: float = Field(ge=0, le=1)
    top_features: list[TopFeature]
    reasons: list[str]
    model_version: str
    bias: float = Field(description="Model base log-odds: bias + every contribution = logit(fraud_score).")
    degraded: bool
    degraded_reasons: list[str] = Field(default_factory=list)
    explanation: Literal["exact", "approximate", "none"] = Field(
        description="exact: TreeSHAP; approximate: Saabas path attribution; bias + sum = margin either way."
    )


class BatchRequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transactions: list[ScoreRequestModel] = Field(min_length=1, description="At most API_BATCH_MAX_ITEMS.")


class BatchItemError(BaseModel):
    index: int
    transaction_id: str
    status: int
    detail: str
    answer: ScoreResponse | None = None


class BatchResponse(BaseModel):
    predictions: list[ScoreResponse]
    errors: list[BatchItemError]


class ModelInfo(BaseModel):
    model_version: str
    feature_names: list[str]
    thresholds: dict[str, float]
    trained_at: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    explanation_policy: str


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    model_version: str | None
    checks: dict[str, str] | None = Field(
        default=None, description="Per dependency; only for an authenticated caller (or with auth off)."
    )
    auth: str | None = Field(default=None, description="Client authentication in force (security layer).")


class ErrorResponse(BaseModel):
    error: str
    detail: Any = None
