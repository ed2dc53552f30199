"""`ticketguard quality …`: run the data-quality checks by hand, or read the latest results."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

quality_app = typer.Typer(
    help="Data quality: nulls, duplicates, freshness and volume of the transaction feed.",
    no_args_is_help=True,
)

# Colours, not passwords (bandit B105 reads the "pass" key as one).
_STYLE = {"pass": "green", "fail": "red", "skipped": "yellow"}  # nosec B105


@quality_app.command("run")
def run_command() -> None:
    """Run every check, record the results and raise a security event per failed check.

    Exits 1 when a check failed, so a cron line or CI step can act on it."""
    from ticketguard.cli import ready_settings
    from ticketguard.jobs.runtime import job_engine
    from ticketguard.quality.service import QualityConfig, run_quality_checks

    settings = ready_settings()
    engine = job_engine(settings)
    try:
        report = run_quality_checks(engine, QualityConfig.from_settings(settings), now=datetime.now(UTC))
    finally:
        engine.dispose()
    table = Table(title=f"data quality run {report.run_id}")
    for column in ("check", "status", "severity", "result"):
        table.add_column(column)
    for result in report.results:
        style = _STYLE[result.status]
        table.add_row(
            result.check, f"[{style}]{result.status}[/{style}]", result.severity, escape(result.message)
        )
    out.print(table)
    if report.failed:
        raise typer.Exit(code=1)


@quality_app.command("results")
def results_command(limit: int = typer.Option(30, min=1, max=1000, help="How many results to show.")) -> None:
    """Show the most recent check results."""
    from ticketguard.cli import get_settings
    from ticketguard.jobs.runtime import job_engine
    from ticketguard.quality.repository import latest_results

    engine = job_engine(get_settings())
    try:
        with engine.connect() as conn:
            rows = latest_results(conn, limit)
    finally:
        engine.dispose()
    table = Table(title="latest data-quality results")
    for column in ("checked at (UTC)", "check", "status", "message"):
        table.add_column(column)
    for row in rows:
        style = _STYLE.get(row["status"], "white")
        table.add_row(
            f"{row['checked_at']:%Y-%m-%d %H:%M}",
            row["check_name"],
            f"[{style}]{row['status']}[/{style}]",
            escape(row["message"]),
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(quality_app, name="quality")
