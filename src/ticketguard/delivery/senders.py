"""Senders: one per channel, each turning an outbox message into one network call with a timeout.

Every sender raises ``DeliveryError`` with ``retryable`` set the same way: connection errors, timeouts,
408, 429 and 5xx are worth another try; any other 4xx means the request itself is wrong and will not get
better by repeating it. Error reasons never include URLs (a Slack webhook URL is a secret) or bodies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson

from ticketguard import __version__
from ticketguard.delivery.outbox import DeliveryError, OutboxMessage
from ticketguard.delivery.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

USER_AGENT = f"ticketguard/{__version__}"
RETRYABLE_STATUS = frozenset({408, 425, 429})


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP-date: the policy's own backoff is good enough


def check_response(response: httpx.Response, what: str) -> None:
    """Raise the right DeliveryError for a non-2xx answer."""
    if 200 <= response.status_code < 300:
        return
    code = response.status_code
    retryable = code >= 500 or code in RETRYABLE_STATUS
    raise DeliveryError(
        f"{what} answered HTTP {code}", retryable=retryable, retry_after=_retry_after(response)
    )


def post_json(
    client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], what: str
) -> httpx.Response:
    """POST ``body`` and map transport failures and non-2xx answers to DeliveryError."""
    try:
        response = client.post(url, content=body, headers={"Content-Type": "application/json", **headers})
    except httpx.TimeoutException:
        raise DeliveryError(f"{what} timed out") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{what} unreachable ({type(exc).__name__})") from None
    check_response(response, what)
    return response


def make_client(timeout_seconds: float) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(timeout_seconds),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,  # a redirect would resend a signed body somewhere nobody configured
    )


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


class WebhookSender:
    """Generic signed JSON POST (review callbacks, alert webhooks): the body is the payload, the headers
    carry the HMAC signature over timestamp + body and the idempotency key."""

    def __init__(
        self,
        secret: str,
        *,
        timeout_seconds: float = 5.0,
        default_url: str = "",
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("WEBHOOK_SIGNING_SECRET is required to send webhooks")
        self._secret = secret
        self._default_url = default_url
        self._client = client or make_client(timeout_seconds)
        self._clock = clock

    def send(self, message: OutboxMessage) -> None:
        url = message.destination or self._default_url
        if not url:
            raise DeliveryError("webhook has no destination and no default URL", retryable=False)
        body = canonical_json(message.payload)
        headers = {
            SIGNATURE_HEADER: sign(self._secret, body, int(self._clock())),
            IDEMPOTENCY_HEADER: message.idempotency_key,
        }
        post_json(self._client, url, body, headers, "webhook receiver")

    def close(self) -> None:
        self._client.close()
