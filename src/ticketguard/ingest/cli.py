"""`ticketguard import FILE`: load a platform's labelled history (CSV or Parquet) into the database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# soft_wrap: a problem stays on one line whatever the terminal width, so it can be grepped and copied.
console = Console(stderr=True, soft_wrap=True)

EXIT_REFUSED = 1  # the file (or mapping) has problems: nothing was written
EXIT_USAGE = 2  # configuration or database state, before the file was looked at

# Issue 13: ids that are not wallet addresses. Shared with `train --data` / `evaluate --data`.
OPAQUE_IDS_OPTION = typer.Option(
    False,
    "--opaque-ids",
    help="wallet_address/seller_address hold ids that are not wallet addresses (customer or card ids): "
    "map each to the wallet 0x + HMAC-SHA256(namespace, id)[:40 hex] instead of refusing it "
    "(docs/import.md, 'Ids that are not wallets').",
)
LABEL_DELAY_OPTION = typer.Option(
    7.0,
    "--label-delay-days",
    "--label-delay",
    min=0,
    show_default=True,
    help="Rows without labelled_at: the label is taken as known this many days after the transaction "
    "(never after the import time). Features and training use a label only from then on.",
)
TIMEZONE_OPTION = typer.Option(
    None,
    "--timezone",
    help="IANA zone for timestamps written without an offset (default: such timestamps are refused).",
)
ID_NAMESPACE_OPTION = typer.Option(
    "ticketguard",
    "--id-namespace",
    envvar="TICKETGUARD_ID_NAMESPACE",
    show_default=True,
    help="HMAC key of --opaque-ids: the same namespace gives the same wallets in every run; keep it "
    "secret when the ids are personal data (env TICKETGUARD_ID_NAMESPACE).",
)


def import_command(
    file: Path = typer.Argument(..., help="CSV or Parquet file, one row per transaction with its label."),
    map_items: list[str] = typer.Option(
        [],
        "--map",
        metavar="THEIRS=OURS",
        help="Rename a column of the file, e.g. --map amount=price_paid. Repeatable.",
    ),
    mapping_file: Path | None = typer.Option(
        None, "--mapping", help="YAML file of `their_column: our_column` lines (--map entries win)."
    ),
    events_file: Path | None = typer.Option(
        None,
        "--events",
        help="CSV/Parquet with one row per event (event_id, name, organizer_id, venue, city, capacity, "
        "face_value, on_sale_at, starts_at); without it events come from event_* columns or the sales.",
    ),
    file_format: str | None = typer.Option(
        None, "--format", help="csv or parquet (default: from the extension .csv, .parquet, .pq)."
    ),
    delimiter: str = typer.Option(",", help="CSV field separator."),
    timezone: str | None = TIMEZONE_OPTION,
    label_delay_days: float = LABEL_DELAY_OPTION,
    quarantine: Path | None = typer.Option(
        None,
        help="Import the valid rows and write the rejected ones with their reasons to this CSV "
        "(default: any bad row refuses the whole file).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check everything, write nothing."),
    opaque_ids: bool = OPAQUE_IDS_OPTION,
    id_namespace: str = ID_NAMESPACE_OPTION,
    id_map: Path | None = typer.Option(
        None,
        "--id-map",
        help="With --opaque-ids: write every distinct id and the wallet it became to this CSV "
        "(id,wallet_address).",
    ),
) -> None:
    """Import labelled transactions (CSV/Parquet). All or nothing unless --quarantine is given."""
    from ticketguard.bootstrap import database_engine
    from ticketguard.cli import ready_settings
    from ticketguard.ingest import ImportValidationError, import_file, write_id_map, write_quarantine
    from ticketguard.ingest.mapping import load_mapping_file, parse_map_options
    from ticketguard.kit.db import redact_url

    settings = ready_settings()
    if id_map is not None and not opaque_ids:
        console.print("[red]--id-map needs --opaque-ids (it writes the ids that option maps)[/red]")
        raise typer.Exit(code=EXIT_USAGE)

    engine = database_engine(settings, batch=True)
    try:
        mapping = load_mapping_file(mapping_file) if mapping_file is not None else {}
        mapping.update(parse_map_options(map_items))
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("starting", total=1.0)

            def show(stage: str, fraction: float) -> None:
                progress.update(task, description=stage, completed=fraction)

            options = {
                "events_path": events_file,
                "file_format": file_format,
                "delimiter": delimiter,
                "timezone": timezone,
                "label_delay": timedelta(days=label_delay_days),
                "quarantine": quarantine is not None,
                "progress": show,
                "opaque_ids": opaque_ids,
                "id_namespace": id_namespace,
            }
            if dry_run:
                with engine.connect() as conn:
                    report = import_file(conn, file, mapping, dry_run=True, **options)  # type: ignore[arg-type]
                    conn.rollback()
            else:
                with engine.begin() as conn:
                    report = import_file(conn, file, mapping, **options)  # type: ignore[arg-type]
                if report.transactions_written:
                    from ticketguard.scoring.online import invalidate_feature_state

                    invalidate_feature_state(
                        settings, f"import of {report.transactions_written} transactions"
                    )
    except ImportValidationError as exc:
        console.print(f"[red]{escape(exc.render())}[/red]")
        raise typer.Exit(code=EXIT_REFUSED) from None
    finally:
        engine.dispose()

    if quarantine is not None:
        write_quarantine(report, quarantine)
        if report.rows_rejected:
            console.print(
                f"[yellow]{report.rows_rejected} row(s) rejected ({report.problem_count} problem(s)); "
                f"written to {escape(str(quarantine))}. First ones:[/yellow]"
            )
            for problem in report.problems[:10]:
                console.print(f"  {escape(str(problem))}")
    if id_map is not None and report.opaque_ids is not None:
        write_id_map(report, id_map)
        console.print(f"{len(report.opaque_ids):,} id(s) and their wallets written to {escape(str(id_map))}")
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")
    if report.ignored_columns:
        console.print(
            f"[yellow]ignored columns (not imported):[/yellow] {escape(', '.join(report.ignored_columns))}"
        )

    verb = "would write" if dry_run else "written"
    table = Table(title=f"import of {file.name}{' (dry run: nothing written)' if dry_run else ''}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("rows read", f"{report.rows_read:,}")
    table.add_row(
        f"transactions {verb}", f"{report.rows_accepted if dry_run else report.transactions_written:,}"
    )
    table.add_row("  of which fraud", f"{report.fraud_count:,}")
    table.add_row("rows rejected", f"{report.rows_rejected:,}")
    table.add_row("amounts rounded to 8 decimals", f"{sum(report.amounts_rounded.values()):,}")
    if report.opaque_ids is not None:
        table.add_row("ids mapped to wallets (--opaque-ids)", f"{len(report.opaque_ids):,}")
    table.add_row(f"events {'to create' if dry_run else 'created'}", f"{report.events_new:,}")
    table.add_row("events already known", f"{report.events_existing:,}")
    table.add_row("time", f"{report.seconds:.1f} s")
    table.add_row("database", redact_url(settings.resolved_database_url))
    Console().print(table)
    if report.rows_rejected and report.rows_read == report.rows_rejected:
        raise typer.Exit(code=EXIT_REFUSED)


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
