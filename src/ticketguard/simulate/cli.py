"""`ticketguard simulate`: a labelled marketplace history, into the database or into files."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)


def _parse_start(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"must be an ISO date like 2026-01-05, got {value!r}", param_hint="--start"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def window_ending_now(days: int, now: datetime | None = None) -> datetime:
    """The start of a ``days``-long window that ends at ``now`` (to the second)."""
    end = (now or datetime.now(UTC)).replace(microsecond=0)
    return end - timedelta(days=days)


def simulate_command(
    transactions: int = typer.Option(200_000, "--transactions", "-n", min=1000, help="Exact number to make."),
    seed: int = typer.Option(7, help="Same seed, same history."),
    start: str | None = typer.Option(
        None, help="First day of the history (UTC, ISO date); default: the window ends now."
    ),
    days: int = typer.Option(120, min=14, help="Length of the history in days."),
    fraud_rate: float = typer.Option(
        0.012, min=0.001, max=0.19, help="Target share of fraudulent transactions."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write FILE.parquet|FILE.csv (+ FILE.events.*) instead of the database."
    ),
    replace: bool = typer.Option(False, help="Replace an earlier simulation already in the database."),
) -> None:
    """Simulate events, primary sales and resales with labelled fraud and legit look-alikes."""
    from ticketguard.bootstrap import database_engine
    from ticketguard.cli import ready_settings
    from ticketguard.kit.db import redact_url
    from ticketguard.scoring.online import invalidate_feature_state
    from ticketguard.simulate.domain import SimulationConfig, simulate, summarize
    from ticketguard.simulate.service import SimulationTargetError, write_to_database, write_to_files

    # By default the history ends now, so a model served right after (`make demo`) scores requests with
    # recent history behind them: wallets with an age, events on sale with sales.
    first = _parse_start(start) if start is not None else window_ending_now(days)
    try:
        config = SimulationConfig(
            transactions=transactions, seed=seed, start=first, days=days, fraud_rate=fraud_rate
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    settings = None
    if output is None:
        settings = ready_settings()
    began = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("simulating", total=100)
        history = simulate(
            config, progress=lambda stage, frac: progress.update(task, completed=frac * 70, description=stage)
        )
        try:
            if output is not None:
                progress.update(task, description=f"writing {output}")
                written = [str(p) for p in write_to_files(history, output)]
                target = ", ".join(written)
            else:
                assert settings is not None
                engine = database_engine(settings, batch=True)
                try:
                    counts = write_to_database(
                        engine,
                        history,
                        replace=replace,
                        progress=lambda msg: progress.update(task, description=msg),
                    )
                    invalidate_feature_state(settings, "simulated history written")
                finally:
                    engine.dispose()
                target = f"{redact_url(settings.resolved_database_url)} ({counts['transactions']} rows)"
        except SimulationTargetError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(code=2) from None
        progress.update(task, completed=100, description="done")
    summary = summarize(history)
    table = Table(title=f"simulated marketplace (seed {seed}) in {time.perf_counter() - began:.1f} s")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in ("transactions", "events", "wallets", "resales", "first", "last"):
        table.add_row(key, str(summary[key]))
    table.add_row("fraud rate", f"{float(summary['fraud_rate']):.3%}")  # type: ignore[arg-type]
    patterns = summary["patterns"]
    assert isinstance(patterns, dict)
    for name, count in sorted(patterns.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  {name}", str(count))
    table.add_row("written to", target)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
