"""`ticketguard etl …`: load the ticket contract's confirmed logs into the database (docs/chain-etl.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from ticketguard.chain.pipeline import BatchResult, EtlReport
    from ticketguard.config import Settings

console = Console(stderr=True, soft_wrap=True)

EXIT_FAILED = 1  # the run stopped (provider down, reorg too deep, concurrent run): earlier batches are kept
EXIT_USAGE = 2  # configuration or database state

etl_app = typer.Typer(
    help="Chain ETL: the TicketNFT contract's sales, resales, transfers and events into the database.",
    no_args_is_help=True,
)


def _ready_settings() -> Settings:
    from ticketguard.cli import get_settings, ready_settings

    settings = get_settings()
    missing = [
        name
        for name, value in (
            ("WEB3_PROVIDER", settings.web3_provider),
            ("CONTRACT_ADDRESS", settings.contract_address),
        )
        if not value
    ]
    if missing:
        console.print(
            f"[red]configuration error:[/red] {' and '.join(missing)} must be set for the chain ETL"
        )
        raise typer.Exit(code=EXIT_USAGE)
    return ready_settings(settings)


def _print_report(report: EtlReport) -> None:
    table = Table(title="chain ETL run")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("cursor", report.cursor_name)
    table.add_row("blocks read", f"{report.blocks:,}")
    table.add_row("logs read", f"{report.logs:,}")
    table.add_row("transactions inserted", f"{report.rows_inserted:,}")
    table.add_row("events upserted", f"{report.events_upserted:,}")
    table.add_row("reorganisations undone", f"{report.reorgs:,} ({report.rows_deleted:,} rows deleted)")
    table.add_row("provider retries", f"{report.retries:,}")
    table.add_row("cursor now at block", f"{report.last_block:,}")
    table.add_row("safe head", f"{report.safe_head:,}" + ("" if report.up_to_date else " (not reached)"))
    table.add_row(
        "time",
        f"{report.duration_s:.2f} s (node {report.read_s:.2f} s, decode + database {report.write_s:.2f} s)",
    )
    table.add_row("blocks/s", f"{report.blocks_per_second:,.0f}")
    table.add_row("logs/s", f"{report.logs_per_second:,.0f}")
    Console().print(table)


@etl_app.command("run")
def run_command(
    max_blocks: int | None = typer.Option(
        None,
        "--max-blocks",
        min=1,
        help="Read at most this many blocks, then stop (default: up to the safe head).",
    ),
) -> None:
    """Read confirmed blocks after the cursor and load their sales, resales, transfers and events.

    Safe to re-run and to interrupt: each batch commits its rows together with the cursor.
    """
    from ticketguard.chain.decode import UndecodableLog
    from ticketguard.chain.pipeline import EtlError, run_etl

    settings = _ready_settings()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("blocks · {task.fields[bps]:,.0f} blocks/s · {task.fields[lps]:,.0f} logs/s"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("connecting", total=None, bps=0.0, lps=0.0)

        def plan(report: EtlReport) -> None:
            todo = max(0, report.safe_head - report.start_cursor)
            if max_blocks is not None:
                todo = min(todo, max_blocks)
            progress.update(task, description="reading", total=todo)

        def batch_done(batch: BatchResult, report: EtlReport) -> None:
            seconds = max(progress.tasks[task].elapsed or 0.0, 1e-9)
            progress.update(
                task,
                completed=report.blocks,
                bps=report.blocks / seconds,
                lps=report.logs / seconds,
                description=f"block {batch.to_block:,}",
            )

        try:
            report = run_etl(settings, max_blocks=max_blocks, on_batch=batch_done, on_plan=plan)
        except (EtlError, UndecodableLog) as exc:
            progress.stop()
            console.print(f"[red]chain ETL stopped:[/red] {escape(str(exc))}")
            console.print("batches committed before the failure are kept; re-run to resume.")
            raise typer.Exit(code=EXIT_FAILED) from None
        except ValueError as exc:
            progress.stop()
            console.print(f"[red]configuration error:[/red] {escape(str(exc))}")
            raise typer.Exit(code=EXIT_USAGE) from None
    _print_report(report)


@etl_app.command("status")
def status_command() -> None:
    """Show the cursor, the chain's safe head and how far behind the database is."""
    from ticketguard.bootstrap import database_engine
    from ticketguard.chain import repository as repo
    from ticketguard.chain.pipeline import ChainEtl, EtlConfig, EtlError
    from ticketguard.chain.reader import ProviderUnavailable, reader_from_settings
    from ticketguard.scoring.online import FeedPublisher

    settings = _ready_settings()
    engine = database_engine(settings)
    try:
        reader = reader_from_settings(settings)
        etl = ChainEtl(
            engine, reader, EtlConfig.from_settings(settings), changes=FeedPublisher.from_settings(settings)
        )
        name = etl.cursor_name()
        head = reader.head_block()
        with engine.connect() as conn:
            cursor = repo.get_cursor(conn, name)
            rows = repo.count_chain_transactions(conn)
            kept = repo.checkpoints(conn, name)
    except (EtlError, ProviderUnavailable, ValueError) as exc:
        console.print(f"[red]cannot read the ETL status:[/red] {escape(str(exc))}")
        raise typer.Exit(code=EXIT_FAILED) from None
    finally:
        engine.dispose()
    safe = head - settings.chain_confirmations
    table = Table(title="chain ETL status")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("cursor", name)
    if cursor is None:
        table.add_row("state", f"never run (will start at block {settings.chain_start_block:,})")
        lag = safe - settings.chain_start_block + 1
    else:
        table.add_row("last loaded block", f"{cursor.last_block:,}")
        table.add_row("its hash", cursor.last_block_hash or "-")
        table.add_row("updated", cursor.updated_at.isoformat(timespec="seconds"))
        lag = safe - cursor.last_block
    table.add_row("chain head", f"{head:,}")
    table.add_row(f"safe head ({settings.chain_confirmations} confirmations)", f"{safe:,}")
    table.add_row("blocks behind", f"{max(0, lag):,}")
    table.add_row("chain transactions stored", f"{rows:,}")
    table.add_row("reorg checkpoints kept", f"{len(kept):,}")
    Console().print(table)


@etl_app.command("rewind")
def rewind_command(
    to_block: int = typer.Option(
        ..., "--to-block", help="Keep blocks up to this one; CHAIN_START_BLOCK - 1 reloads everything."
    ),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Move the cursor back and delete the chain rows above it (after a reorg deeper than the ETL undoes)."""
    from ticketguard.bootstrap import database_engine
    from ticketguard.chain.pipeline import ChainEtl, EtlConfig, EtlError
    from ticketguard.chain.reader import reader_from_settings
    from ticketguard.scoring.online import FeedPublisher

    settings = _ready_settings()
    if not yes:
        typer.confirm(
            f"Delete every chain transaction from blocks after {to_block:,} and rewind the cursor?",
            abort=True,
        )
    engine = database_engine(settings)
    try:
        etl = ChainEtl(
            engine,
            reader_from_settings(settings),
            EtlConfig.from_settings(settings),
            changes=FeedPublisher.from_settings(settings),
        )
        deleted = etl.rewind_to(to_block)
    except ValueError as exc:
        console.print(f"[red]cannot rewind:[/red] {escape(str(exc))}")
        raise typer.Exit(code=EXIT_USAGE) from None
    except EtlError as exc:
        console.print(f"[red]cannot rewind:[/red] {escape(str(exc))}")
        raise typer.Exit(code=EXIT_FAILED) from None
    finally:
        engine.dispose()
    console.print(
        f"cursor at block {to_block:,}; {deleted:,} chain transaction(s) deleted; "
        "`ticketguard etl run` reloads them"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(etl_app, name="etl")
