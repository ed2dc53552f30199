"""`ticketguard retention …`: apply the retention policy, or erase one wallet's personal data."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ticketguard.config import Settings
    from ticketguard.retention.service import RetentionReport

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

EXIT_FAILED = 1
EXIT_USAGE = 2

retention_app = typer.Typer(
    help="Data retention: archive and purge by the policy in settings; GDPR erasure of a wallet.",
    no_args_is_help=True,
)


def _settings_and_engine() -> tuple[Settings, Engine]:
    from ticketguard.cli import ready_settings
    from ticketguard.jobs.runtime import job_engine

    settings = ready_settings()
    return settings, job_engine(settings)


@retention_app.command("policy")
def policy_command() -> None:
    """Show the retention policy the settings define."""
    from ticketguard.cli import get_settings
    from ticketguard.retention.policy import policy_from_settings

    policy = policy_from_settings(get_settings())
    table = Table(title="retention policy (ages from each row's timestamp)")
    for column in ("table", "hot (then archived)", "archive table", "deleted after"):
        table.add_column(column)
    for rule in policy.archives:
        table.add_row(rule.table, f"{rule.hot.days} days", rule.archive_table, f"{rule.horizon.days} days")
    table.add_row("admin_sessions", "-", "-", f"{policy.sessions.days} days after expiry or revocation")
    out.print(table)
    out.print(f"batch size: {policy.batch_rows:,} rows per transaction")


@retention_app.command("run")
def run_command(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Count what would move or be deleted; change nothing."
    ),
) -> None:
    """Move rows past their hot period to the archive tables and delete rows past the archive horizon."""
    from ticketguard.retention.policy import policy_from_settings
    from ticketguard.retention.service import run_retention, tell_feature_state

    settings, engine = _settings_and_engine()
    policy = policy_from_settings(settings)
    now = datetime.now(UTC)
    try:
        if dry_run:
            report = run_retention(engine, policy, now=now, dry_run=True)
        else:
            planned = run_retention(engine, policy, now=now, dry_run=True)
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as progress:
                task = progress.add_task("retention", total=max(planned.rows, 1))

                def advance(table: str, phase: str, rows: int) -> None:
                    progress.update(task, advance=rows, description=f"{phase} {table}")

                report = run_retention(engine, policy, now=now, on_batch=advance)
            tell_feature_state(settings, report)
    except Exception as exc:
        console.print(
            f"[red]retention stopped:[/red] {escape(str(exc))}\n"
            "Every committed batch is kept and nothing was duplicated; run it again to finish."
        )
        raise typer.Exit(code=EXIT_FAILED) from None
    finally:
        engine.dispose()
    _print_report(report)


def _print_report(report: RetentionReport) -> None:
    verb = "would be" if report.dry_run else "were"
    table = Table(
        title=f"retention {'dry run' if report.dry_run else 'run'} at {report.now:%Y-%m-%d %H:%M} UTC"
    )
    for column in ("table", f"archived ({verb})", f"purged from archive ({verb})", f"deleted ({verb})"):
        table.add_column(column, justify="right" if column != "table" else "left")
    for row in report.tables:
        table.add_row(row.table, f"{row.archived:,}", f"{row.purged:,}", f"{row.deleted:,}")
    out.print(table)
    if not report.dry_run:
        out.print(f"{report.rows:,} rows in {report.seconds:.1f} s")


@retention_app.command("erase-wallet")
def erase_wallet_command(
    address: str = typer.Argument(
        ..., help="The wallet: 0x + 1-40 hex digits, any spelling (a mixed-case one must be EIP-55)."
    ),
    actor: str = typer.Option(
        None, "--actor", help="Who asked/approved it, for the audit log (default: the OS user)."
    ),
    yes: bool = typer.Option(False, "--yes", help="Do it without asking for confirmation."),
) -> None:
    """Pseudonymise one wallet's personal data (GDPR erasure), keeping amounts, decisions and times."""
    from ticketguard.retention.erasure import ErasureError, check_key, check_wallet, erase_wallet

    settings, engine = _settings_and_engine()
    key = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    try:
        address = check_wallet(address)  # its canonical spelling, the one every table holds
        check_key(key)
    except ErasureError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(code=EXIT_USAGE) from None
    if not yes and not typer.confirm(f"Erase the personal data of {address}? This cannot be undone"):
        raise typer.Exit(code=EXIT_FAILED)
    try:
        report = erase_wallet(
            engine, address, key=key, actor=actor or getpass.getuser(), now=datetime.now(UTC)
        )
        from ticketguard.scoring.online import invalidate_feature_state

        invalidate_feature_state(settings, "wallet erased")  # the workers hold the raw address in memory
    finally:
        engine.dispose()
    table = Table(title=f"erased: now {report.pseudonym}")
    table.add_column("where")
    table.add_column("rows", justify="right")
    for where, rows in report.counts.items():
        table.add_row(where, f"{rows:,}")
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")
