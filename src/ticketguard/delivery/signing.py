"""Signed webhooks, Stripe-style: ``X-Ticketguard-Signature: t=<unix>,v1=<hex>``.

``v1`` is HMAC-SHA256(secret, f"{t}." + body). The timestamp is signed with the body, so a captured request
cannot be replayed outside the tolerance window, and the receiver checks the body it actually got.
Pure: no clock and no I/O (the caller passes ``now``).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Ticketguard-Signature"
IDEMPOTENCY_HEADER = "X-Ticketguard-Idempotency-Key"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale or does not match the body."""


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    if not secret:
        raise ValueError("a signing secret is required")
    return f"t={int(timestamp)},v1={_digest(secret, body, int(timestamp))}"


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    now: float,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Check ``header`` against ``body``; returns the signed timestamp or raises SignatureError.

    Several ``v1=`` values are allowed (a sender rotating its secret signs with both)."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {SIGNATURE_HEADER} header: expected t=<unix>,v1=<hex>")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("signature timestamp t must be an integer") from None
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError(f"malformed {SIGNATURE_HEADER} header: expected t=<unix>,v1=<hex>")
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError(
            f"signature timestamp is {abs(now - timestamp):.0f} s from now; at most {tolerance_seconds:.0f} s"
        )
    expected = _digest(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("signature does not match the body")
    return timestamp
