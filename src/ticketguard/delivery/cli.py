"""`ticketguard outbox …`: what is waiting to be sent, what failed, and sending a dead message again.
The worker's `deliver-outbox` job sends; `ticketguard jobs run deliver-outbox` sends once by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine

from ticketguard.config import Settings

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

outbox_app = typer.Typer(
    help="The outbox of notifications and callbacks (docs/delivery.md).", no_args_is_help=True
)


def _engine() -> tuple[Settings, Engine]:
    from ticketguard.cli import ready_settings
    from ticketguard.jobs.runtime import job_engine

    settings = ready_settings()
    return settings, job_engine(settings)


@outbox_app.command("status")
def status_command(
    failures: int = typer.Option(10, "--failures", min=0, help="Recent failed messages to list."),
) -> None:
    """Messages per channel and status, the oldest still waiting, and the latest failures."""
    from ticketguard.delivery.outbox import recent_failures, status
    from ticketguard.delivery.service import retry_policy, senders_from_settings

    settings, engine = _engine()
    try:
        rows = status(engine)
        failed = recent_failures(engine, failures) if failures else []
    finally:
        engine.dispose()
    configured = set(senders_from_settings(settings))
    now = datetime.now(UTC)
    table = Table(title="outbox")
    for column in ("channel", "status", "messages", "oldest waiting", "sender"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        oldest = row["oldest"]
        age = (
            f"{(now - oldest).total_seconds() / 60:.1f} min" if oldest and row["status"] == "pending" else ""
        )
        sender = "configured" if row["channel"] in configured else "[red]not configured[/red]"
        table.add_row(row["channel"], row["status"], f"{row['count']:,}", age, sender)
    out.print(table)
    policy = retry_policy(settings)
    out.print(
        f"retries: {policy.max_attempts} tries over ~{policy.total_seconds() / 60:.0f} min "
        f"(backoff {policy.base_seconds:g} s doubling to {policy.max_seconds:g} s)"
    )
    if failed:
        ftable = Table(title="latest failures")
        for column in ("id", "channel", "source", "status", "tries", "next try (UTC)", "error"):
            ftable.add_column(column)
        for f in failed:
            nxt = f"{f['next_attempt_at']:%Y-%m-%d %H:%M:%S}" if f["status"] == "pending" else "-"
            ftable.add_row(
                str(f["id"]),
                f["channel"],
                f["source"],
                f["status"],
                str(f["attempts"]),
                nxt,
                escape(f["last_error"]),
            )
        out.print(ftable)


@outbox_app.command("retry")
def retry_command(
    message_id: int = typer.Argument(..., help="Id of a dead message (see `outbox status`)."),
) -> None:
    """Queue a dead message again, with a fresh count of tries."""
    from ticketguard.delivery.outbox import retry_dead

    _, engine = _engine()
    try:
        requeued = retry_dead(engine, message_id)
    finally:
        engine.dispose()
    if not requeued:
        console.print(f"[red]message {message_id} is not dead (or does not exist); nothing to retry[/red]")
        raise typer.Exit(code=1)
    out.print(f"message {message_id} queued again")


def register(app: typer.Typer) -> None:
    app.add_typer(outbox_app, name="outbox")
