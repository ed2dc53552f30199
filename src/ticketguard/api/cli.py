"""`ticketguard serve api`: the scoring API under uvicorn with several worker processes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

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
    host = host or settings.api_host
    port = port or settings.api_port
    workers = workers or settings.api_workers
    # One OpenMP thread per worker: processes give the parallelism; threads would fight over the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # The workers read their count from here: in-process feature state needs Redis with more than one.
    os.environ["API_WORKERS"] = str(workers)
    if workers > 1:
        # prometheus_client multiprocess mode: each worker writes its values here; /metrics sums them.
        metrics_dir = Path(tempfile.gettempdir()) / f"ticketguard-metrics-{port}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    import uvicorn

    typer.echo(f"scoring API on http://{host}:{port} with {workers} worker(s); docs at /docs")
    if example:
        typer.echo(example_commands(host, port))
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


def example_commands(host: str, port: int) -> str:
    """The deployment guide's smoke test, as curl commands against this server."""
    base = f"http://{host}:{port}"
    body = (
        '{"transaction_id": "test_001", "wallet_address": "0x742d35Cc6634C0532925a3b844Bc9e7595f0bEb", '
        '"ticket_id": "evt_001", "price_paid": 50.00}'
    )
    return (
        "\nIn another terminal, score a transaction (the same request again returns the stored answer):\n\n"
        f"  curl -s {base}/api/v1/ml/predict/fraud -H 'Content-Type: application/json' \\\n"
        f"       -d '{body}'\n\n"
        f"  curl -s {base}/health\n  curl -s {base}/api/v1/ml/model/info\n"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")
