"""`ticketguard serve api`: the scoring API under uvicorn with several worker processes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ticketguard.config import Settings

serve_app = typer.Typer(help="Run services: the scoring API.", no_args_is_help=True)


@serve_app.command("api")
def serve_api(
    host: Annotated[str | None, typer.Option(help="Bind address (default API_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default API_PORT, 5001).", min=1, max=65535)] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default API_WORKERS, 2).", min=1, max=64)
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    example: Annotated[bool, typer.Option(help="Print curl commands that score a transaction.")] = False,
) -> None:
    """Serve the scoring API (POST /api/v1/ml/predict/fraud, /health, /metrics, /docs) with uvicorn."""
    from ticketguard.cli import get_settings

    settings = get_settings()  # fail here, with the message, rather than in every worker
    _wait_for_database(settings)
    host = host or settings.api_host
    port = port or settings.api_port
    workers = workers or settings.api_workers
    # One OpenMP thread per worker: processes give the parallelism; threads would fight over the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # The workers read their count from here: in-process feature state needs Redis with more than one.
    os.environ["API_WORKERS"] = str(workers)
    metrics_dir: Path | None = None
    if workers > 1:
        # prometheus_client multiprocess mode: each worker writes its values here; /metrics sums them.
        metrics_dir = Path(tempfile.gettempdir()) / f"ticketguard-metrics-{port}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    import uvicorn

    typer.echo(f"scoring API on http://{host}:{port} with {workers} worker(s); docs at /docs")
    if example:
        typer.echo(example_commands(host, port, _example_from_history(settings)))
    try:
        _run(uvicorn, settings, host, port, workers, log_level)
    finally:
        if metrics_dir is not None:  # the workers' metric files: nothing reads them once they stopped
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _wait_for_database(settings: Settings) -> None:
    """Refuse to start, with the reason, when the database does not answer (or is not migrated) within
    DB_CONNECT_TIMEOUT_SECONDS: workers that start anyway only answer 503 and log warnings."""
    from ticketguard.kit import migrate

    def waiting(exc: migrate.DatabaseNotReady) -> None:
        typer.echo(
            f"waiting up to {settings.db_connect_timeout_seconds:g} s for the database: {exc}", err=True
        )

    try:
        migrate.wait_until_ready(
            settings.resolved_database_url, settings.db_connect_timeout_seconds, on_wait=waiting
        )
    except migrate.DatabaseNotReady as exc:
        typer.secho(
            f"refusing to start: {exc} (waited {settings.db_connect_timeout_seconds:g} s, "
            "DB_CONNECT_TIMEOUT_SECONDS)",
            fg="red",
            err=True,
        )
        raise typer.Exit(code=2) from None


def _run(uvicorn: Any, settings: Settings, host: str, port: int, workers: int, log_level: str) -> None:
    uvicorn.run(
        "ticketguard.api.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        # The client IP comes only from TRUSTED_PROXIES (ticketguard.security.netaddr); uvicorn's own
        # proxy-header handling would believe any X-Forwarded-For sent from 127.0.0.1.
        proxy_headers=False,
        # SIGTERM: stop accepting, let requests in flight finish within the grace, then the lifespan's
        # shutdown writes every queued answer (docs/deploy.md "Lifecycle").
        timeout_graceful_shutdown=settings.api_shutdown_grace_seconds,
        # The supervisor kills a worker that does not answer its ping within this; uvicorn's 5 s killed
        # workers in a loop while they loaded the model and the feature state on a busy host (or a
        # container at its CPU limit). Liveness proper is /health/live, probed by the orchestrator.
        timeout_worker_healthcheck=30,
        # Longer than a load balancer's idle timeout (ALB: 60 s) and than a client's pause between calls,
        # so the server is never the side that closes a keep-alive connection a client is reusing.
        timeout_keep_alive=75,
    )


def _example_from_history(settings: Settings) -> dict[str, Any] | None:
    from datetime import UTC, datetime

    from ticketguard.api.example import example_request
    from ticketguard.bootstrap import database_engine

    engine = database_engine(settings)
    try:
        return example_request(engine, datetime.now(UTC))
    except Exception:  # an example is a courtesy: never a reason not to serve
        return None
    finally:
        engine.dispose()


GUIDE_SMOKE_TEST = {
    "transaction_id": "test_001",
    "wallet_address": "0x742d35Cc6634C0532925a3b844Bc9e7595f0bEb",
    "ticket_id": "evt_001",
    "price_paid": 50.00,
}


def example_commands(host: str, port: int, from_history: dict[str, Any] | None = None) -> str:
    """curl commands against this server: a purchase by a wallet of the stored history (when there is
    one), the deployment guide's smoke test (a wallet never seen: its features are mostly zeros), health."""
    base = f"http://{host}:{port}"

    def curl(body: dict[str, Any]) -> str:
        payload = json.dumps(body)
        return (
            f"  curl -s {base}/api/v1/ml/predict/fraud -H 'Content-Type: application/json' \\\n"
            f"       -d '{payload}'\n"
        )

    text = "\nIn another terminal, score a transaction (the same request again returns the stored answer).\n"
    if from_history is not None:
        text += "\nA returning buyer from the simulated history, for an event on sale now:\n\n"
        text += curl(from_history)
    text += "\nThe deployment guide's smoke test (a wallet this database has never seen):\n\n"
    text += curl(GUIDE_SMOKE_TEST)
    return text + f"\n  curl -s {base}/health\n  curl -s {base}/api/v1/ml/model/info\n"


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")
