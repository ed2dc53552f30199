"""Where a simulated history goes: the database (one transaction) or Parquet/CSV files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, func, select

from ticketguard import tables
from ticketguard.history import History, delete_by_source, write_history

FILE_FORMATS = (".parquet", ".csv")


class SimulationTargetError(ValueError):
    """The target cannot take the simulation as asked (data already there, unknown file type, …)."""


def existing_simulated(engine: Engine) -> tuple[int, int]:
    """(simulated transactions, simulated events) in the database; transactions live or archived by
    retention (whose archive keeps their ids), events whose transactions may all have been purged."""
    with engine.connect() as conn:
        transactions = sum(
            conn.execute(select(func.count()).select_from(t).where(t.c.source == "simulator")).scalar_one()
            for t in (tables.transactions, tables.transactions_archive)
        )
        events = conn.execute(
            select(func.count()).select_from(tables.events).where(tables.events.c.event_id.like("sim-%"))
        ).scalar_one()
    return int(transactions), int(events)


def write_to_database(
    engine: Engine,
    history: History,
    *,
    replace: bool,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Write events, transactions and labels in one database transaction: all of it lands, or none.

    Refuses to mix two simulations unless `replace` is set, which first removes the earlier one — live and
    archived rows alike, so a re-simulation after retention archived part of the first one works.
    """
    report = progress or (lambda _msg: None)
    transactions, events = existing_simulated(engine)
    if (transactions or events) and not replace:
        raise SimulationTargetError(
            f"the database already holds {transactions} simulated transactions (live or archived) and "
            f"{events} simulated events; pass --replace to swap them out"
        )
    with engine.begin() as conn:
        if transactions or events:
            report(f"removing {transactions} earlier simulated transactions (live or archived)")
            delete_by_source(conn, "simulator")
        report("writing events, transactions and labels")
        return write_history(conn, history)


def labelled_frame(history: History) -> pd.DataFrame:
    """One row per transaction with its label: the layout `ticketguard import` reads back."""
    labels = history.labels[["transaction_id", "is_fraud", "pattern", "labelled_at"]]
    return history.transactions.drop(columns=["source"]).merge(labels, on="transaction_id", how="left")


def events_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.events{path.suffix}")


def write_to_files(history: History, path: Path) -> list[Path]:
    """Write `path` (transactions + labels) and `<stem>.events<ext>` beside it."""
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise SimulationTargetError(
            f"--output must end in one of {', '.join(FILE_FORMATS)}, got {path.name!r}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # facts_derived is the database's provenance flag, not a column of an events file.
    frames = {
        path: labelled_frame(history),
        events_path(path): history.events.drop(columns=["facts_derived"], errors="ignore"),
    }
    for target, frame in frames.items():
        if suffix == ".parquet":
            frame.to_parquet(target, index=False)
        else:
            frame.to_csv(target, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    return list(frames)
