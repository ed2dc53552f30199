"""`ticketguard jobs …` (list, run by hand, history) and `ticketguard worker` (run the schedule)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ticketguard.config import Settings

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3  # another worker, or another run of the same job, holds the lock

jobs_app = typer.Typer(
    help="Scheduled jobs: list them, run one by hand, read their run history (docs/data-control.md).",
    no_args_is_help=True,
)
_STYLE = {"succeeded": "green", "failed": "red", "skipped": "yellow", "running": "cyan", "abandoned": "red"}

_STANDARD_LOG_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: the message, level, logger and the `extra` fields a call passed."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_LOG_FIELDS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _ready() -> tuple[Settings, Engine]:
    from ticketguard.cli import ready_settings
    from ticketguard.jobs.runtime import job_engine

    settings = ready_settings()
    return settings, job_engine(settings)


@jobs_app.command("list")
def list_command() -> None:
    """Every job, when the worker runs it, and how its last run went."""
    from ticketguard.jobs.registry import JOBS
    from ticketguard.jobs.runner import last_runs
    from ticketguard.jobs.schedule import schedule_for

    settings = None
    try:
        settings, engine = _ready()
        latest = last_runs(engine)
        engine.dispose()
    except typer.Exit:
        latest = {}
    when = {entry.job: entry.describe() for entry in schedule_for(settings)}
    table = Table(title="jobs")
    for column in ("job", "schedule", "last run (UTC)", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("what it does")
    for name, job in JOBS.items():
        run = latest.get(name)
        started = f"{run['started_at']:%Y-%m-%d %H:%M}" if run else "-"
        status = run["status"] if run else "-"
        style = _STYLE.get(status, "white")
        table.add_row(
            name, when.get(name, "by hand only"), started, f"[{style}]{status}[/{style}]", job.description
        )
    out.print(table)


@jobs_app.command("run")
def run_command(
    name: str = typer.Argument(..., help="Job name, as `ticketguard jobs list` shows it."),
) -> None:
    """Run one job now, recorded in job_runs like a scheduled run. Exit 1 if it failed, 3 if it is
    already running elsewhere."""
    from ticketguard.jobs.registry import JOBS
    from ticketguard.jobs.runner import run_job

    if name not in JOBS:
        console.print(f"[red]unknown job {escape(repr(name))}; accepted: {', '.join(JOBS)}[/red]")
        raise typer.Exit(code=EXIT_USAGE)
    settings, engine = _ready()
    try:
        with console.status(f"running {name}…"):
            run = run_job(name, settings, engine, trigger="manual")
    finally:
        engine.dispose()
    style = _STYLE.get(run.status, "white")
    out.print(f"{name}: [{style}]{run.status}[/{style}] in {run.seconds:.1f} s (run {run.id})")
    if run.counts:
        table = Table(show_header=False)
        for key, value in run.counts.items():
            table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
        out.print(table)
    if run.error:
        console.print(f"[{style}]{escape(run.error)}[/{style}]")
    if run.status == "failed":
        raise typer.Exit(code=EXIT_FAILED)
    if run.status == "skipped" and run.error and run.error.startswith("already running"):
        raise typer.Exit(code=EXIT_LOCKED)


@jobs_app.command("history")
def history_command(
    name: str = typer.Argument(None, help="Only this job."),
    limit: int = typer.Option(20, min=1, max=1000),
) -> None:
    """Recent job runs, newest first."""
    from ticketguard.jobs.runner import recent_runs

    _, engine = _ready()
    try:
        runs = recent_runs(engine, name, limit)
    finally:
        engine.dispose()
    table = Table(title="job runs")
    for column in ("id", "job", "trigger", "started (UTC)", "seconds", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("counts / error")
    for run in runs:
        style = _STYLE.get(run["status"], "white")
        seconds = (
            f"{(run['finished_at'] - run['started_at']).total_seconds():.1f}" if run["finished_at"] else "-"
        )
        detail = run["error"] or json.dumps(run["counts"] or {})
        table.add_row(
            str(run["id"]),
            run["job_name"],
            run["trigger"],
            f"{run['started_at']:%Y-%m-%d %H:%M:%S}",
            seconds,
            f"[{style}]{run['status']}[/{style}]",
            escape(detail[:200]),
        )
    out.print(table)


def worker_command(
    wait: bool = typer.Option(
        False,
        "--wait/--no-wait",
        help="If another worker runs: wait to take over (--wait) or exit 3 (default).",
    ),
) -> None:
    """Run the schedule (ETL, view refresh, retention, data quality, retraining) until stopped.

    Only one worker runs at a time (a database lock). Stop with SIGTERM or Ctrl-C: running jobs finish."""
    from ticketguard.jobs.worker import WorkerAlreadyRunning, run_worker

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    settings, engine = _ready()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        abandoned = run_worker(settings, engine, stop=stop, wait=wait)
    except WorkerAlreadyRunning as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(code=EXIT_LOCKED) from None
    except RuntimeError as exc:
        console.print(f"[red]worker stopped: {escape(str(exc))}[/red]")
        raise typer.Exit(code=EXIT_FAILED) from None
    finally:
        engine.dispose()
    if abandoned:
        # Their threads are still running and would hold the interpreter open: end the process now (their
        # open transactions roll back; each job resumes from its checkpoint on its next run).
        logging.shutdown()
        os._exit(0)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
    app.command("worker")(worker_command)
