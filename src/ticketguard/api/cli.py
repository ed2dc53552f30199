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
) -> None:
    """Serve the scoring API (POST /api/v1/ml/predict/fraud, /health, /metrics, /docs) with uvicorn."""
    from ticketguard.cli import get_settings

    settings = get_settings()  # fail here, with the message, rather than in every worker
    host = host or settings.api_host
    port = port or settings.api_port
    workers = workers or settings.api_workers
    # One OpenMP thread per worker: processes give the parallelism; threads would fight over the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if workers > 1:
        # prometheus_client multiprocess mode: each worker writes its values here; /metrics sums them.
        metrics_dir = Path(tempfile.gettempdir()) / f"ticketguard-metrics-{port}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    import uvicorn

    typer.echo(f"scoring API on http://{host}:{port} with {workers} worker(s); docs at /docs")
    uvicorn.run(
        "ticketguard.api.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")
