"""The security layer in front of the scoring API: one pure-ASGI middleware and one list check.

Per request, in this order:
1. the client IP, believed from X-Forwarded-For only through TRUSTED_PROXIES (`netaddr`);
2. IP block list → 403 (not on the operations paths: /health, Prometheus /metrics, the API docs);
3. rate limits → 429 with Retry-After and X-RateLimit-* headers: per client IP, per route
   (RATE_LIMIT_ROUTES, RATE_LIMIT_BUY) and global — the operations paths only per route (each its own
   per-IP budget), so probes neither spend nor depend on the scoring budget;
4. client auth on /api/v1/ml/* and /api/v1/reviews/* (JWT or API key with scope `score`) and
   /api/v1/metrics (API key with scope `metrics`) when JWT_SECRET or JWT_PUBLIC_KEY is set → one uniform
   401 for every failure; on /health credentials are optional (with them, and valid, the answer carries the
   detailed checks);
5. per-user limit (JWT subject) → 429;
6. the app; a batch charges its further items (`charge_scorings` in the request state): limits count
   scorings, not requests;
7. after the answer: a BLOCKED decision becomes a security event.
Every refusal is a security event (hashed IP and user, redacted metadata).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine
from starlette.responses import Response

from ticketguard.api.asgi import ASGIApp, Receive, Scope, Send, send_json
from ticketguard.config import Settings
from ticketguard.kit.outage import ThrottledLog, outage_log
from ticketguard.security.auth import AuthError, Principal, TokenVerifier
from ticketguard.security.clients import ApiKeyAuthenticator
from ticketguard.security.events import (
    AUTH_FAILED,
    DECISION_BLOCKED,
    RATE_LIMITED,
    REQUEST_BLOCKED,
    SecurityEvent,
    SecurityEventWriter,
    user_token,
)
from ticketguard.security.keys import configured_secrets, pepper
from ticketguard.security.lists import IpBlockCache, ip_token_blocked
from ticketguard.security.logs import configure_logging, redactor
from ticketguard.security.netaddr import IPNetwork, client_ip, parse_networks
from ticketguard.security.ratelimit import Limit, RateLimitService, Verdict
from ticketguard.security.redact import hash_ip, hash_wallet
from ticketguard.security.responses import active_global_limit

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ticketguard.features.repository import TransactionFacts
    from ticketguard.scoring.domain import ListStatus

log = logging.getLogger(__name__)


# Operations paths: probes, scraping and the API docs. Never IP-blocked and never behind auth (so they keep
# working for the people and systems that watch the service), but metered: each has its own per-IP route
# limit (RATE_LIMIT_ROUTES; /health/* share /health's), and none spends the scoring budget.
OPS_PATHS = frozenset({"/health", "/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"})
HEALTH_PATH = "/health"
SCORING_PREFIX = "/api/v1/ml/"
METRICS_API_PATH = "/api/v1/metrics"
# Review outcomes (docs/reviews.md): the scoring credential (scope score) reads them; one per-IP route budget
# for every id under the prefix.
REVIEWS_PREFIX = "/api/v1/reviews/"
REVIEWS_ROUTE = "/api/v1/reviews"
PROMETHEUS_PATH = "/metrics"
RATE_EVENT_EVERY_S = 10.0
BLOCK_EVENT_EVERY_S = 60.0
OVERRIDE_REFRESH_S = 5.0

UNAUTHORIZED_BODY = json.dumps({"error": "unauthorized", "detail": "valid credentials required"}).encode()
UNAVAILABLE_BODY = json.dumps(
    {"error": "unavailable", "detail": "credentials cannot be checked right now; retry"}
).encode()
FORBIDDEN_BODY = json.dumps(
    {"error": "forbidden", "detail": "requests from this address are blocked"}
).encode()


def auth_status(verifier: TokenVerifier) -> str:
    if not verifier.enabled:
        return "disabled"
    return "+".join([f"jwt({','.join(verifier.algorithms)})", "api_key"])


class GlobalLimit:
    """The effective global limit: RATE_LIMIT_GLOBAL, or tighter while a DDoS response is active."""

    def __init__(self, engine: Engine, configured: int, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self.configured = configured
        self.current = configured
        self._clock = clock
        self._loaded_at = float("-inf")

    def stale(self) -> bool:
        return self._clock() - self._loaded_at >= OVERRIDE_REFRESH_S

    def refresh(self) -> None:
        self._loaded_at = self._clock()
        try:
            with self._engine.connect() as conn:
                override = active_global_limit(conn, datetime.now(UTC))
        except Exception as exc:
            log.warning(
                "global limit override not readable, keeping %d: %s", self.current, type(exc).__name__
            )
            return
        self.current = min(self.configured, override) if override else self.configured


@dataclass
class SecurityRuntime:
    settings: Settings
    engine: Engine
    pepper: bytes
    trusted: tuple[IPNetwork, ...]
    verifier: TokenVerifier
    api_keys: ApiKeyAuthenticator
    limiter: RateLimitService
    ip_blocks: IpBlockCache
    events: SecurityEventWriter
    global_limit: GlobalLimit
    route_limits: dict[str, int]

    @classmethod
    def build(cls, settings: Settings, engine: Engine, redis: Any | None) -> SecurityRuntime:
        key = pepper(settings)
        routes = {settings.rate_limit_buy_path: settings.rate_limit_buy, **settings.rate_limit_routes}
        return cls(
            settings=settings,
            engine=engine,
            pepper=key,
            trusted=parse_networks(settings.trusted_proxies),
            verifier=TokenVerifier.from_settings(settings),
            api_keys=ApiKeyAuthenticator(engine, key),
            limiter=RateLimitService.from_settings(settings),
            ip_blocks=IpBlockCache(engine, redis, max_age=settings.security_list_cache_seconds),
            events=SecurityEventWriter(engine, redactor()),
            global_limit=GlobalLimit(engine, settings.rate_limit_global),
            route_limits=routes,
        )

    @property
    def auth_enabled(self) -> bool:
        return self.verifier.enabled

    def ip_list_check(self, conn: Connection | None, facts: TransactionFacts) -> ListStatus:
        """Scoring-path list check: the buyer IP the backend reports, against the IP block list — in the
        request's connection on the SQL path; from the block-list snapshot (at most
        SECURITY_LIST_CACHE_SECONDS old, as for the caller's own IP) on the in-memory path (``conn`` None)."""
        from ticketguard.scoring.domain import ListStatus

        if not facts.ip_address:
            return ListStatus()
        token = hash_ip(facts.ip_address, self.pepper)
        if conn is None:
            if self.ip_blocks.source == "none":
                self.ip_blocks.refresh(True)  # never loaded: wait for it rather than pass a blocked IP
            elif self.ip_blocks.stale():
                self.ip_blocks.refresh()
            blocked = self.ip_blocks.is_blocked(token)
        else:
            blocked = ip_token_blocked(conn, token, datetime.now(UTC))
        if blocked:
            return ListStatus(blocked=True, reasons=("buyer IP address is on the block list",))
        return ListStatus()


def _headers(scope: Scope) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw_key, raw_value in scope.get("headers", []):
        out.setdefault(raw_key.decode("latin-1").lower(), []).append(raw_value.decode("latin-1"))
    return out


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, runtime: SecurityRuntime) -> None:
        self.app = app
        self.rt = runtime
        self._background: set[asyncio.Task[None]] = set()
        # The API-key store is the database: its outage is reported with the others, once per interval.
        self._keys_down = outage_log("database")
        # One line per interval under a credential-stuffing flood (each failure is a security event too).
        self._auth_failures = ThrottledLog(log, "auth failed", level=logging.INFO)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        rt = self.rt
        ops = self._is_ops(path)
        headers = _headers(scope)
        peer = (scope.get("client") or (None, None))[0]
        ip = client_ip(peer, headers.get("x-forwarded-for", []), rt.trusted)
        ip_token = hash_ip(ip, rt.pepper)
        state = scope.setdefault("state", {})
        state["client_ip_token"] = ip_token
        await self._refresh_caches()

        if not ops and rt.ip_blocks.is_blocked(ip_token):
            rt.events.record_throttled(
                (REQUEST_BLOCKED, ip_token),
                SecurityEvent(REQUEST_BLOCKED, "low", ip_token, metadata={"path": path}),
                BLOCK_EVENT_EVERY_S,
            )
            await send_json(send, 403, FORBIDDEN_BODY, [])
            return

        # All of them in one Redis round trip; a request refused by one is counted in none.
        verdict = await rt.limiter.hit_all(self._pre_auth_limits(path, ip_token, ops))
        if not verdict.allowed:
            await self._too_many(send, verdict, ip_token, None, path)
            return

        principal: Principal | None = None
        needs_auth = path.startswith((SCORING_PREFIX, REVIEWS_PREFIX)) or path in (
            METRICS_API_PATH,
            PROMETHEUS_PATH,
        )
        presented = [v for v in headers.get("authorization", []) + headers.get("x-api-key", []) if v.strip()]
        optional = path == HEALTH_PATH and bool(presented)
        if rt.auth_enabled and ((needs_auth and not ops) or optional):
            try:
                principal = await self._authenticate(headers, path)
            except AuthError as exc:
                rt.events.record(
                    SecurityEvent(
                        AUTH_FAILED, "medium", ip_token, metadata={"path": path, "reason": exc.reason}
                    )
                )
                self._auth_failures.event(f"{exc.reason} on {path}")
                await send_json(
                    send, 401, UNAUTHORIZED_BODY, [(b"www-authenticate", b'Bearer realm="ticketguard"')]
                )
                return
            except Exception as exc:  # the key store is unreachable: not the client's fault, not a pass
                self._keys_down.failure(type(exc).__name__)
                await send_json(send, 503, UNAVAILABLE_BODY, [(b"retry-after", b"1")])
                return
            state["principal"] = principal
            user: str | None = None
            if principal.kind == "jwt":
                user = user_token(principal.subject, rt.pepper)
                state["client_id"] = user
                if not ops:
                    verdict = await rt.limiter.hit("user", user, rt.settings.rate_limit_user)
                    if not verdict.allowed:
                        await self._too_many(send, verdict, ip_token, user, path)
                        return
            else:
                state["client_id"] = principal.client_id
            state["authenticated"] = True
            if not ops:
                state["charge_scorings"] = self._charger(ip_token, user, path)
        elif not ops:
            state["charge_scorings"] = self._charger(ip_token, None, path)

        await self.app(scope, receive, send)
        blocked_in_batch = state.get("blocked_count")
        if isinstance(blocked_in_batch, int) and blocked_in_batch > 0:
            rt.events.record(
                SecurityEvent(
                    DECISION_BLOCKED,
                    "medium",
                    ip_token,
                    state.get("client_id"),
                    metadata={"path": path, "blocked": blocked_in_batch},
                )
            )
        if state.get("decision") == "BLOCKED":
            wallet = state.get("wallet_address")
            rt.events.record(
                SecurityEvent(
                    DECISION_BLOCKED,
                    "medium",
                    ip_token,
                    state.get("client_id"),
                    metadata={
                        "path": path,
                        "transaction_id": state.get("transaction_id"),
                        "wallet": hash_wallet(wallet, rt.pepper) if isinstance(wallet, str) else None,
                    },
                )
            )

    def _is_ops(self, path: str) -> bool:
        if path in OPS_PATHS or path.startswith(HEALTH_PATH + "/"):
            return True
        return path == PROMETHEUS_PATH and not self.rt.settings.metrics_require_key

    def _route_key(self, path: str) -> str:
        """The route a path counts against: every review id shares /api/v1/reviews's budget."""
        return REVIEWS_ROUTE if path.startswith(REVIEWS_PREFIX) else path

    def _route_limit(self, path: str) -> int | None:
        limit = self.rt.route_limits.get(self._route_key(path))
        if limit is None and path.startswith(HEALTH_PATH + "/"):
            limit = self.rt.route_limits.get(HEALTH_PATH)
        return limit

    def _pre_auth_limits(self, path: str, ip_token: str, ops: bool = False) -> list[Limit]:
        rt = self.rt
        route_limit = self._route_limit(path)
        if ops:  # its own per-IP budget; the IP's scoring budget if none is configured; never global
            if route_limit is not None:
                return [(f"route:{path}", ip_token, route_limit)]
            return [("ip", ip_token, rt.settings.rate_limit_ip)]
        limits = [("ip", ip_token, rt.settings.rate_limit_ip)]
        if route_limit is not None:
            limits.append((f"route:{self._route_key(path)}", ip_token, route_limit))
        limits.append(("global", "all", rt.global_limit.current))
        return limits

    def _charger(
        self, ip_token: str, user: str | None, path: str
    ) -> Callable[[int], Awaitable[Response | None]]:
        """What a batch calls with its further items: they count against the IP, user and global limits
        (not the route's, which counts requests), all or none. None when allowed, else the 429."""

        async def charge(extra: int) -> Response | None:
            rt = self.rt
            if extra < 1:
                return None
            limits: list[Limit] = [("ip", ip_token, rt.settings.rate_limit_ip)]
            if user is not None:
                limits.append(("user", user, rt.settings.rate_limit_user))
            limits.append(("global", "all", rt.global_limit.current))
            verdict = await rt.limiter.hit_all(limits, cost=extra)
            if verdict.allowed:
                return None
            self._record_limited(verdict, ip_token, user, path)
            status, body, headers = _too_many_answer(verdict, extra + 1)
            return Response(body, status, headers=dict(headers), media_type="application/json")

        return charge

    async def _authenticate(self, headers: dict[str, list[str]], path: str) -> Principal:
        authorization = headers.get("authorization", [])
        api_key_headers = headers.get("x-api-key", [])
        if len(authorization) + len(api_key_headers) != 1:
            raise AuthError(
                "no credentials" if not authorization and not api_key_headers else "several credentials"
            )
        if api_key_headers:
            credential, is_key = api_key_headers[0].strip(), True
        else:
            scheme, _, credential = authorization[0].strip().partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                raise AuthError("authorization scheme must be Bearer")
            credential = credential.strip()
            is_key = credential.startswith("tgk_")
        if is_key:
            principal = await asyncio.to_thread(self.rt.api_keys.authenticate, credential)
        else:
            principal = self.rt.verifier.verify(credential)
        needed = "score" if path.startswith((SCORING_PREFIX, REVIEWS_PREFIX)) else "metrics"
        if path != HEALTH_PATH and needed not in principal.scopes:  # any valid credential reads /health
            raise AuthError(f"credential lacks scope {needed}")
        return principal

    async def _too_many(
        self, send: Send, verdict: Verdict, ip_token: str, user: str | None, path: str
    ) -> None:
        self._record_limited(verdict, ip_token, user, path)
        status, body, headers = _too_many_answer(verdict)
        await send_json(send, status, body, [(k.encode(), v.encode()) for k, v in headers])

    def _record_limited(self, verdict: Verdict, ip_token: str, user: str | None, path: str) -> None:
        key = user if verdict.limit_name == "user" and user else ip_token
        self.rt.events.record_throttled(
            (verdict.limit_name, key),
            SecurityEvent(
                RATE_LIMITED,
                "low",
                ip_token,
                user,
                metadata={
                    "limit": verdict.limit_name,
                    "per_minute": verdict.limit,
                    "path": path,
                    "backend": verdict.backend,
                },
            ),
            RATE_EVENT_EVERY_S,
        )

    async def _refresh_caches(self) -> None:
        rt = self.rt
        if rt.ip_blocks.source == "none":  # the first request of this worker waits for the first load
            await asyncio.to_thread(rt.ip_blocks.refresh, True)
            await asyncio.to_thread(rt.global_limit.refresh)
            return
        if rt.ip_blocks.stale():
            self._spawn(rt.ip_blocks.refresh)
        if rt.global_limit.stale():
            self._spawn(rt.global_limit.refresh)

    def _spawn(self, fn: Callable[[], None]) -> None:
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(fn))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _too_many_answer(verdict: Verdict, scorings: int = 1) -> tuple[int, bytes, list[tuple[str, str]]]:
    what = "requests" if scorings == 1 else f"scorings (this batch is {scorings})"
    body = json.dumps(
        {
            "error": "rate_limited",
            "detail": f"too many {what} ({verdict.limit_name} limit {verdict.limit}/min)",
            "retry_after": verdict.retry_after,
        }
    ).encode()
    headers = [
        ("retry-after", str(verdict.retry_after)),
        ("x-ratelimit-limit", str(verdict.limit)),
        ("x-ratelimit-remaining", str(verdict.remaining)),
        ("x-ratelimit-reset", str(verdict.retry_after)),
        ("x-ratelimit-scope", verdict.limit_name),
    ]
    return 429, body, headers


def install_security(app: FastAPI, settings: Settings) -> SecurityRuntime:
    """Wire the security layer into the scoring app (called from api.app._install_security)."""
    configure_logging(settings.log_level, configured_secrets(settings))
    runtime = SecurityRuntime.build(settings, app.state.engine, getattr(app.state, "redis", None))
    app.state.security = runtime
    app.state.security_auth = auth_status(runtime.verifier)
    app.add_middleware(SecurityMiddleware, runtime=runtime)
    scoring = getattr(app.state, "scoring", None)
    if scoring is not None:
        scoring.add_list_check(runtime.ip_list_check)
        scoring.list_watcher.subscribe(runtime.ip_blocks.reload)
    atexit.register(runtime.events.close)
    if not runtime.auth_enabled:
        log.warning("client auth is OFF: no JWT_SECRET or JWT_PUBLIC_KEY configured (embedded demo mode)")
    return runtime
