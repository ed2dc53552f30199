"""`ticketguard views …`: refresh the reporting views by hand (the worker does it every 5 minutes)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

views_app = typer.Typer(
    help="Reporting views: kpi_hourly, event_analytics, wallet_segments, realised_hourly "
    "(docs/data-control.md).",
    no_args_is_help=True,
)


@views_app.command("refresh")
def refresh_command(
    names: list[str] = typer.Argument(
        None,
        help="Views to refresh (default all): kpi_hourly, event_analytics, wallet_segments, realised_hourly.",
    ),
) -> None:
    """Recompute views without blocking readers (CONCURRENTLY on PostgreSQL)."""
    from ticketguard.cli import ready_settings
    from ticketguard.jobs.runtime import job_engine
    from ticketguard.views.refresh import VIEW_NAMES, check_view_names, refresh_views

    try:
        chosen = check_view_names(tuple(names)) if names else VIEW_NAMES
    except ValueError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(code=2) from None
    settings = ready_settings()
    engine = job_engine(settings)
    try:
        results = refresh_views(engine, chosen)
    finally:
        engine.dispose()
    table = Table(title="views refreshed")
    table.add_column("view")
    table.add_column("rows", justify="right")
    table.add_column("seconds", justify="right")
    for result in results:
        table.add_row(result.name, f"{result.rows:,}", f"{result.seconds:.2f}")
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(views_app, name="views")
