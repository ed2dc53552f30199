"""The scoring API application: `create_app(settings)` wires settings → engine, live model, scoring service,
routes, error handlers, request guards, metrics and (for the security layer) `_install_security`.

Run it with `ticketguard serve api` (uvicorn, several worker processes). Each worker holds its own model
and group committer; a background thread per worker reloads the model when the registry's live version
changes (the swap is one reference assignment: requests in flight finish on the model they started with).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy import Engine, create_engine, event, make_url

from ticketguard.api import metrics
from ticketguard.api.body import BodyGuard, RequestMetrics
from ticketguard.api.health import HealthChecks
from ticketguard.config import Settings, load_settings
from ticketguard.kit.outage import outage_log
from ticketguard.ml.serving import LiveModel
from ticketguard.scoring.online import redis_client
from ticketguard.scoring.service import ScoringService

log = logging.getLogger(__name__)


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


# --------------------------------------------------------------------------------------- error handlers
def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        loc = err.get("loc", ())
        if err.get("type") == "json_invalid":  # loc is ("body", <character position>)
            position = loc[-1] if loc else "?"
            loc = ("body",)
            err = {**err, "msg": f"{err.get('msg', 'invalid JSON')} at character {position}"}
        errors.append(
            {
                "field": _field_name(loc),
                "message": str(err.get("msg", "invalid")),
                "type": str(err.get("type", "")),
            }
        )
    message = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return json_response({"error": "validation_error", "message": message, "detail": errors}, 422)


# ------------------------------------------------------------------------------------------- security
def _install_security(app: FastAPI, settings: Settings) -> None:
    """The one place where the security layer (issue 5: client auth, rate limits, IP blocks, security
    events, structured logs) installs its middleware and dependencies, and adds list checks to the scoring
    service (``app.state.scoring.add_list_check``). Called once by `create_app`, after the routes exist and
    before the request guard and metrics wrap the app. A client identity it establishes goes in
    ``request.state.client_id`` and is stored as the audit row's actor."""
    from ticketguard.security.api import install_security

    install_security(app, settings)


# ------------------------------------------------------------------------------------------------ app
class ModelRefresher:
    """Checks the registry's live version every MODEL_REFRESH_SECONDS and swaps the model in when it moved."""

    def __init__(
        self, live: LiveModel, interval_s: float, on_change: Callable[[], None] | None = None
    ) -> None:
        self.live = live
        self.on_change = on_change
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.version: str | None = None
        self._registry = outage_log("model registry")

    def check(self) -> bool:
        try:
            changed = self.live.refresh()
        except Exception as exc:  # a registry hiccup must not kill the thread; the old model keeps serving
            self._registry.failure(f"model refresh: {type(exc).__name__}")
            return False
        self._registry.ok()
        current = self.live.get().version
        if current != self.version:
            if self.on_change is not None:
                self.on_change()  # e.g. build the new model's fast path before requests need it
            metrics.set_model_version(self.version, current)
            log.info("serving model %s", current)
            self.version = current
        return changed

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="model-refresh", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    service: ScoringService | None = None,
) -> FastAPI:
    from ticketguard.api.kpis import router as kpis_router
    from ticketguard.api.lifecycle import router as lifecycle_router
    from ticketguard.api.reviews import router as reviews_router
    from ticketguard.api.routes import router

    engine = engine or api_engine(settings)
    live = service.live if service is not None else LiveModel.from_settings(settings, engine)
    scoring = service or ScoringService(settings, engine, live)
    refresher = ModelRefresher(live, settings.model_refresh_seconds, on_change=scoring.warm)
    scoring.committer.on_batch = metrics.GROUP_COMMIT_ROWS.observe

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Requests scored at once in this worker: more threads than cores only queue on the GIL and the
        # database pool; fewer connections than threads would open and close connections under load.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        metrics.GC_TIMER.start()
        scoring.start()
        refresher.check()  # load now if a model is live, so the first request does not pay for it
        await anyio.to_thread.run_sync(scoring.warm_features)
        refresher.start()
        try:
            yield
        finally:
            # Requests in flight have finished (uvicorn waited for them); stopping the committer writes every
            # answer still queued before the process exits.
            refresher.stop()
            scoring.stop()
            log.info(
                "worker stopped: group commit drained",
                extra={"batches": scoring.committer.batches, "rows": scoring.committer.rows},
            )
            security = getattr(_app.state, "security", None)
            if security is not None:
                security.events.close()  # flush queued security events, stop their writer thread

    app = FastAPI(
        title="ticketguard scoring API",
        version="1",
        description="Real-time fraud decisions for ticket purchases and resales (docs/api.md).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.scoring = scoring
    app.state.refresher = refresher
    app.state.redis = redis_client(settings)
    app.state.health = HealthChecks(scoring, app.state.redis)  # /health's checks, cached ~1 s (api/health.py)
    app.include_router(router)
    app.include_router(kpis_router)  # GET /api/v1/metrics (business KPIs, metrics-scope API key)
    app.include_router(lifecycle_router)  # GET /health/live, /health/ready (load balancers, orchestrators)
    app.include_router(reviews_router)  # GET /api/v1/reviews/{transaction_id} (review outcome, scope score)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Outermost last: metrics → security (IP blocks, limits, auth) → body guard (413/415) → routes, so the
    # body guard's refusals are rate-limited and timed like every other answer.
    app.add_middleware(BodyGuard, max_body_bytes=settings.api_max_body_bytes)
    _install_security(app, settings)
    app.add_middleware(RequestMetrics)
    return app


def api_engine(settings: Settings) -> Engine:
    """The workers' engine. On PostgreSQL the feature SELECT (~40 bound values) is prepared once per
    connection and run with a generic plan: planning it anew costs more (~3 ms) than executing it (~2 ms)."""
    # Enough pooled connections for every request thread plus the committer, health and refresh threads:
    # an overflow connection is closed when returned, and opening one costs more than a request.
    pool_size = max(settings.db_pool_size, settings.api_threads + 4)
    if settings.is_embedded_database:
        return _sqlite_pooled_engine(settings, pool_size)
    # A statement may not outlive twice the request deadline: past the deadline the request has already
    # answered with the failure policy, and a stuck statement would only hold a connection.
    timeout_ms = min(settings.db_statement_timeout_ms, max(1000, 2 * settings.scoring_deadline_ms))
    options = f"-c timezone=UTC -c statement_timeout={timeout_ms} -c plan_cache_mode=force_generic_plan"
    engine = create_engine(
        settings.resolved_database_url,
        pool_size=pool_size,
        max_overflow=settings.api_threads,
        # No pre-ping (a round trip per request): a connection broken by a database restart fails its
        # request with the 503 policy answer, and SQLAlchemy then discards the whole pool.
        pool_pre_ping=False,
        pool_use_lifo=True,
        connect_args={"options": options, "prepare_threshold": 1, "connect_timeout": 5},
    )

    from psycopg.types.json import set_json_dumps

    @event.listens_for(engine, "connect")
    def _json_dumps(dbapi_conn: Any, _record: Any) -> None:
        # The stored answers' JSON (features, reasons, audit metadata) by orjson, not the standard library's
        # encoder (~4× slower, a visible share of every group commit). jsonb stores the same value.
        set_json_dumps(orjson.dumps, context=dbapi_conn)

    return engine


def _sqlite_pooled_engine(settings: Settings, pool_size: int) -> Engine:
    """SQLite with pooled connections. The kit's engine opens a connection per use (NullPool); closing the
    last connection of a WAL database checkpoints it, which made every group commit cost ~15 ms instead of
    ~0.1 ms. Same pragmas as `ticketguard.kit.db.make_engine`."""
    url = settings.resolved_database_url
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=settings.api_threads,
        connect_args={"check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=10000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    return engine


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn workers (`ticketguard serve api`): settings from the environment / .env."""
    logging.basicConfig(level=logging.INFO)
    return create_app(load_settings())
