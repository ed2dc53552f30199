"""A ticketing backend's buy route that asks ticketguard first — the deployment guide's step 7, production
shaped. Run it beside a ticketguard API:

    TICKETGUARD_URL=http://127.0.0.1:5001 REDIS_URL=redis://127.0.0.1:6379/0 \\
        uvicorn --app-dir examples/backend app:create_app --factory --port 8000

``POST /api/tickets/buy`` (the buyer identified by ``X-User-Id`` — stand-in for your own authentication):

1. Rate limits, on the ``limits`` library with Redis storage shared by every backend process: 5 buys per
   minute per user and 100 per minute per client IP (the guide's numbers; ``BUY_LIMIT_PER_USER``,
   ``BUY_LIMIT_PER_IP``). Over either → 429 with ``Retry-After``. Checked before ticketguard is asked: a
   refused attempt costs no fraud check. Redis down → 503 with ``Retry-After`` (fail closed: a limit that
   cannot be counted is not skipped).
2. The fraud check through `ticketguard.client` — pooled connections, a time budget, retries that reuse the
   same ``transaction_id`` (``Idempotency-Key`` from the caller, else a new id: a user's retry of the same
   purchase gets the same answer), and a fail policy when ticketguard is unreachable (``MANUAL_REVIEW`` by
   default, ``TICKETGUARD_FAIL_POLICY``): an outage holds purchases, it never approves them.
3. The decision, mapped as the guide maps it: ``BLOCKED`` → 403; ``MANUAL_REVIEW`` → 202 pending review;
   ``REQUIRE_2FA`` → 202 with the 2FA step; ``APPROVED`` → the purchase proceeds (200). The buyer never sees
   the model's reasons (they would teach a fraudster what to change); the backend logs them.

A held purchase (``MANUAL_REVIEW``) is settled by a ticketguard analyst. The backend hears of it both ways
(docs/reviews.md): ticketguard POSTs the decision to ``POST /webhooks/ticketguard/reviews`` (set ticketguard's
``REVIEW_CALLBACK_URL`` to it and both sides' webhook secret: ``TICKETGUARD_WEBHOOK_SECRET`` here,
``WEBHOOK_SIGNING_SECRET`` there) — the signature is checked over the raw body, a stale or forged request is
refused, and a delivery seen before (same idempotency key: the outbox sends at least once) changes nothing;
and ``GET /api/tickets/purchases/{transaction_id}`` answers from what the webhook stored, else asks
ticketguard (``review_outcome``), so a missed webhook never leaves a purchase held for ever.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from ticketguard.client import AsyncTicketguardClient, FailPolicy, RetryPolicy, Transaction
from ticketguard.delivery.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, SignatureError, verify

REVIEW_KEY = "backend:review:{}"  # transaction → the analyst's outcome, as the webhook told it
SEEN_KEY = "backend:webhook-seen:{}"  # idempotency keys already acted on
SEEN_TTL_S = 7 * 86_400  # longer than the outbox keeps retrying

log = logging.getLogger("backend.buy")


class BuyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wallet_address: str = Field(pattern=r"^0x[0-9a-fA-F]{1,40}$")
    ticket_id: str = Field(min_length=1, max_length=64)
    price_paid: Decimal = Field(gt=0, max_digits=18, decimal_places=8)
    event_id: str | None = Field(default=None, max_length=64)
    payment_method: str | None = Field(default=None, max_length=32)
    is_resale: bool = False
    seller_address: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{1,40}$")


class Settings:
    """The example's settings, from the environment."""

    def __init__(self) -> None:
        env = os.environ
        self.ticketguard_url = env.get("TICKETGUARD_URL", "http://127.0.0.1:5001")
        self.ticketguard_api_key = env.get("TICKETGUARD_API_KEY") or None
        self.fail_policy = FailPolicy(env.get("TICKETGUARD_FAIL_POLICY", "MANUAL_REVIEW"))  # type: ignore[arg-type]
        self.budget_s = float(env.get("TICKETGUARD_BUDGET_SECONDS", "1.5"))
        self.redis_url = env.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.per_user = parse(env.get("BUY_LIMIT_PER_USER", "5/minute"))
        self.per_ip = parse(env.get("BUY_LIMIT_PER_IP", "100/minute"))
        # The secret ticketguard signs review callbacks with (its WEBHOOK_SIGNING_SECRET); unset: no webhook.
        self.webhook_secret = env.get("TICKETGUARD_WEBHOOK_SECRET") or None
        # Proxies whose X-Forwarded-For is believed (your load balancer); the peer address otherwise.
        self.trusted_proxies = [
            ipaddress.ip_network(p.strip()) for p in env.get("TRUSTED_PROXIES", "").split(",") if p.strip()
        ]


def client_ip(request: Request, trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    """The right-most address not added by a trusted proxy (the left-most can be forged by the client)."""
    peer = request.client.host if request.client else "0.0.0.0"  # noqa: S104 - a placeholder, never bound
    chain = [peer]
    for header in request.headers.getlist("x-forwarded-for"):
        chain[:0] = [part.strip() for part in header.split(",") if part.strip()]
    for address in reversed(chain):
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return peer
        if not any(ip in net for net in trusted):
            return str(ip)
    return chain[0]


class BuyLimits:
    """The /buy limits, counted in Redis for every backend process (moving window: no burst at a window
    edge)."""

    def __init__(self, redis_url: str, per_user: RateLimitItem, per_ip: RateLimitItem) -> None:
        self.storage = RedisStorage("async+" + redis_url, implementation="redispy")
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.per_user = per_user
        self.per_ip = per_ip

    async def check(self, user: str, ip: str) -> int | None:
        """None if this buy may go ahead (and count it), else the seconds until it may."""
        for item, key in ((self.per_user, f"user:{user}"), (self.per_ip, f"ip:{ip}")):
            if not await self.limiter.hit(item, "buy", key):
                stats = await self.limiter.get_window_stats(item, "buy", key)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncTicketguardClient(
            settings.ticketguard_url,
            api_key=settings.ticketguard_api_key,
            fail_policy=settings.fail_policy,
            retry=RetryPolicy(budget_s=settings.budget_s),
        ) as guard:
            app.state.guard = guard
            try:
                yield
            finally:
                await app.state.redis.aclose()

    app = FastAPI(title="ticketing backend (example)", lifespan=lifespan)
    app.state.limits = BuyLimits(settings.redis_url, settings.per_user, settings.per_ip)
    app.state.redis = Redis.from_url(settings.redis_url)

    @app.post("/api/tickets/buy")
    async def buy_ticket(
        body: BuyRequest,
        request: Request,
        x_user_id: Annotated[str | None, Header(max_length=64)] = None,
        idempotency_key: Annotated[str | None, Header(max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")] = None,
    ) -> JSONResponse:
        if not x_user_id:
            raise HTTPException(401, "sign in first (X-User-Id)")
        ip = client_ip(request, settings.trusted_proxies)
        try:
            wait = await app.state.limits.check(x_user_id, ip)
        except Exception as exc:  # the limits' Redis is down: refuse for now rather than sell unlimited
            log.warning("buy limits unavailable: %s", type(exc).__name__)
            return JSONResponse(
                {"error": "unavailable", "message": "please retry in a moment"},
                503,
                headers={"Retry-After": "1"},
            )
        if wait is not None:
            return JSONResponse(
                {"error": "too_many_requests", "message": f"too many purchases; retry in {wait} s"},
                429,
                headers={"Retry-After": str(wait)},
            )
        transaction_id = idempotency_key or f"buy-{uuid.uuid4().hex}"
        check = await app.state.guard.predict(
            Transaction(
                transaction_id=transaction_id,
                wallet_address=body.wallet_address,
                ticket_id=body.ticket_id,
                price_paid=body.price_paid,
                event_id=body.event_id,
                payment_method=body.payment_method,
                is_resale=body.is_resale,
                seller_address=body.seller_address,
                ip_address=ip,
            )
        )
        log.info(
            "fraud check",
            extra={
                "transaction_id": transaction_id,
                "decision": check.decision,
                "source": check.source,
                "score": check.fraud_score,
                "reasons": list(check.reasons),
            },
        )
        common: dict[str, Any] = {"transaction_id": transaction_id}
        if check.decision == "BLOCKED":
            return JSONResponse(
                {"error": "blocked", "message": "Transaction blocked due to fraud risk"} | common, 403
            )
        if check.decision == "MANUAL_REVIEW":
            return JSONResponse(
                {
                    "status": "pending_review",
                    "next_step": "wait_for_review",
                    "message": "Your purchase is being reviewed; we will notify you.",
                }
                | common,
                202,
            )
        if check.decision == "REQUIRE_2FA":
            return JSONResponse(
                {
                    "status": "require_2fa",
                    "next_step": "complete_2fa",
                    "message": "Please confirm this purchase with your second factor.",
                }
                | common,
                202,
            )
        # APPROVED: the platform's own purchase logic (payment capture, mint/transfer) runs here.
        return JSONResponse({"status": "success", "ticket_id": body.ticket_id} | common, 200)

    @app.post("/webhooks/ticketguard/reviews")
    async def review_decided(request: Request) -> JSONResponse:
        """ticketguard's signed callback: an analyst decided a held purchase."""
        if settings.webhook_secret is None:
            raise HTTPException(404, "no webhook configured (TICKETGUARD_WEBHOOK_SECRET)")
        raw = await request.body()  # the signature covers these exact bytes, not a re-serialised body
        try:
            verify(settings.webhook_secret, raw, request.headers.get(SIGNATURE_HEADER), now=time.time())
        except SignatureError as exc:
            log.warning("review webhook refused: %s", exc)
            return JSONResponse({"error": "bad_signature"}, 400)
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        try:
            event = json.loads(raw)
            transaction_id, outcome = str(event["transaction_id"]), str(event["outcome"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "bad_payload"}, 400)
        if not key or outcome not in ("fraud", "legitimate"):
            return JSONResponse({"error": "bad_payload"}, 400)
        redis = app.state.redis
        if not await redis.set(SEEN_KEY.format(key), "1", nx=True, ex=SEEN_TTL_S):
            return JSONResponse({"status": "duplicate"})  # delivered before: acted on once already
        try:
            # The platform's own follow-up runs here: complete the held purchase (legitimate) or cancel and
            # refund it (fraud), and tell the buyer. This example records the outcome.
            await redis.set(REVIEW_KEY.format(transaction_id), json.dumps(event))
        except Exception:
            await redis.delete(SEEN_KEY.format(key))  # not acted on: the retry must act
            raise
        log.info("review decided", extra={"transaction_id": transaction_id, "outcome": outcome})
        return JSONResponse({"status": "ok"})

    @app.get("/api/tickets/purchases/{transaction_id}")
    async def purchase_status(transaction_id: str) -> JSONResponse:
        """Where a held purchase stands: from the webhook if it came, else asked from ticketguard."""
        stored = await app.state.redis.get(REVIEW_KEY.format(transaction_id))
        if stored is not None:
            event = json.loads(stored)
            return JSONResponse(
                {"transaction_id": transaction_id, "review": event["outcome"], "via": "webhook"}
            )
        review = await app.state.guard.review_outcome(transaction_id)
        if review is None:
            raise HTTPException(404, "no such purchase")
        return JSONResponse(
            {
                "transaction_id": transaction_id,
                "review": review.outcome or review.status,
                "via": "ticketguard",
            }
        )

    return app
