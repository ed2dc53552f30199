"""`ticketguard.client`: call ticketguard from a ticketing backend — sync (`TicketguardClient`) or asyncio
(`AsyncTicketguardClient`), both on httpx with pooled keep-alive connections.

- **Typed results**: `FraudCheck` (decision, score, reasons, and ``source``: the model, the server's
  failure policy, or this client's), `BatchResult`, `ModelInfo`, `ReviewOutcome`.
- **A time budget per call** (`RetryPolicy.budget_s`, retries and waits included): a check never hangs the
  purchase.
- **Retries only where safe**: every call is repeatable because a check carries its ``transaction_id`` —
  ticketguard answers a repeated id with the stored answer, so a retry after a lost response neither
  scores nor stores twice. 4xx answers (except 429) are never retried: they raise `RequestRejected`.
- **A fail policy the backend chooses** (`FailPolicy`) for when ticketguard is unreachable, too slow or
  answers nonsense: hold as ``MANUAL_REVIEW`` (default), step up to ``REQUIRE_2FA``, refuse as
  ``BLOCKED``, or raise. Never ``APPROVED``.

docs/deploy.md "Calling ticketguard from a backend" shows the buy route of `examples/backend/`.
"""

from ticketguard.client.aio import AsyncTicketguardClient
from ticketguard.client.models import (
    DECISIONS,
    AuthenticationFailed,
    BatchResult,
    Decision,
    FailPolicy,
    FraudCheck,
    IdempotencyConflict,
    ItemError,
    ModelInfo,
    ProtocolError,
    RequestRejected,
    ReviewOutcome,
    TicketguardError,
    TicketguardUnavailable,
    TopFeature,
    Transaction,
)
from ticketguard.client.retry import RetryPolicy
from ticketguard.client.sync import TicketguardClient

# A backend whose buyers are customer ids, imported with `ticketguard import --opaque-ids`, sends
# opaque_wallet(customer_id, namespace) as wallet_address so live requests meet their history (issue 13).
from ticketguard.wallets import opaque_wallet

__all__ = [
    "DECISIONS",
    "AsyncTicketguardClient",
    "AuthenticationFailed",
    "BatchResult",
    "Decision",
    "FailPolicy",
    "FraudCheck",
    "IdempotencyConflict",
    "ItemError",
    "ModelInfo",
    "ProtocolError",
    "RequestRejected",
    "RetryPolicy",
    "ReviewOutcome",
    "TicketguardClient",
    "TicketguardError",
    "TicketguardUnavailable",
    "TopFeature",
    "Transaction",
    "opaque_wallet",
]
