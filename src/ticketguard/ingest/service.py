"""Loading a platform's labelled history: from a file to History frames, and from there into the database.

`read_labelled_file` needs no database (training reads files through it); `import_file` adds the checks
against the database and writes in the caller's transaction — the entrypoint commits or rolls back.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from ticketguard.history import EVENT_COLUMNS, History, empty_frame, write_history
from ticketguard.ingest import repository
from ticketguard.ingest.columns import EVENT_FILE_COLUMNS, EVENT_SPECS
from ticketguard.ingest.errors import (
    FIRST_DATA_ROW,
    MAX_SHOWN,
    ImportValidationError,
    Problem,
    empty_problems,
    problems_to_list,
)
from ticketguard.ingest.mapping import ColumnPlan, describe_ignored, plan_columns
from ticketguard.ingest.reader import EXTENSIONS, detect_format, read_header, read_rows
from ticketguard.ingest.validate import (
    DEFAULT_LABEL_DELAY,
    CheckedFrame,
    ImportOptions,
    build_history,
    check_events_frame,
    check_frame,
    problems_where,
)
from ticketguard.wallets import OPAQUE_ID_DEFAULT_NAMESPACE

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
WRITE_CHUNK = 100_000
# Share of the progress bar each stage takes.
READ_SHARE, CHECK_SHARE, DB_CHECK_SHARE = 0.5, 0.1, 0.1


@dataclass
class ImportReport:
    """What an import did. `rejected` holds the quarantined rows (row, errors, the file's columns)."""

    path: str
    file_format: str
    rows_read: int
    rows_accepted: int
    events_new: int
    transactions_written: int
    labels_written: int
    events_written: int
    events_existing: int
    rows_rejected: int
    fraud_count: int
    dry_run: bool
    seconds: float
    ignored_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    rejected: pd.DataFrame = field(default_factory=pd.DataFrame)
    # Amounts with more than 8 decimal places (float noise), rounded to 8, per column of the file.
    amounts_rounded: dict[str, int] = field(default_factory=dict)
    # With --opaque-ids: (id, wallet_address) for every distinct id of the wallet columns.
    opaque_ids: pd.DataFrame | None = None


@dataclass
class _Loaded:
    file_format: str
    plan: ColumnPlan
    raw: pd.DataFrame
    checked: CheckedFrame
    events: pd.DataFrame | None = None  # checked events file (event_* columns), when one was given
    events_ignored: list[str] = field(default_factory=list)
    events_rounded: dict[str, int] = field(default_factory=dict)

    def rounded(self, positions: pd.Index) -> dict[str, int]:
        """Rounded amounts among the rows at ``positions``, by the file's column names (events file too)."""
        counts = {self.plan.display(name): n for name, n in self.checked.rounded_counts(positions).items()}
        for name, n in self.events_rounded.items():
            counts[f"{name!r} (events file)"] = n
        return counts


def rounding_note(counts: Mapping[str, int]) -> str | None:
    """The summary line for amounts rounded to 8 decimal places, or None when there were none."""
    if not counts:
        return None
    total = sum(counts.values())
    where = ", ".join(f"{name} {n:,}" for name, n in counts.items())
    return (
        f"{total:,} amount(s) had more than 8 decimal places (float noise such as 85.64999999999999) and "
        f"were rounded to 8: {where}"
    )


def _noop(_stage: str, _fraction: float) -> None:
    return None


def _load_events(
    path: Path, *, file_format: str | None, delimiter: str, options: ImportOptions
) -> tuple[pd.DataFrame, list[str], dict[str, int]]:
    """A checked events file; any problem in it refuses the import (its rows describe many transactions)."""
    fmt = EXTENSIONS.get(path.suffix.lower()) or detect_format(path, file_format)
    header = read_header(path, fmt, delimiter=delimiter)
    used = [c for c in header if c in EVENT_FILE_COLUMNS]
    if "event_id" not in used:
        accepted = ", ".join(EVENT_FILE_COLUMNS)
        raise ImportValidationError(
            str(path), [Problem(f"an events file needs an 'event_id' column; accepted columns: {accepted}")]
        )
    raw = read_rows(path, fmt, used, delimiter=delimiter).rename(columns=EVENT_FILE_COLUMNS)
    ours_to_file = {ours: theirs for theirs, ours in EVENT_FILE_COLUMNS.items()}
    checked = check_events_frame(raw, lambda name: repr(ours_to_file[name]), options)
    if len(checked.problems):
        raise ImportValidationError.for_rows(str(path), checked.problems)
    rounded = {ours_to_file[name]: n for name, n in checked.rounded_counts().items()}
    return checked.values, [c for c in header if c not in EVENT_FILE_COLUMNS], rounded


def _load(
    path: Path,
    mapping: Mapping[str, str] | None,
    *,
    events_path: Path | None,
    file_format: str | None,
    delimiter: str,
    options: ImportOptions,
    progress: Progress,
) -> _Loaded:
    options.check()
    events: pd.DataFrame | None = None
    events_ignored: list[str] = []
    events_rounded: dict[str, int] = {}
    if events_path is not None:
        events, events_ignored, events_rounded = _load_events(
            events_path, file_format=file_format, delimiter=delimiter, options=options
        )
    fmt = detect_format(path, file_format)
    plan = plan_columns(read_header(path, fmt, delimiter=delimiter), mapping, str(path))
    raw = read_rows(
        path,
        fmt,
        plan.used,
        delimiter=delimiter,
        progress=lambda fraction: progress(f"reading {path.name}", fraction * READ_SHARE),
    ).rename(columns=plan.rename)
    progress("checking rows", READ_SHARE)
    checked = check_frame(raw, plan.display, options)
    progress("checked", READ_SHARE + CHECK_SHARE)
    return _Loaded(
        file_format=fmt,
        plan=plan,
        raw=raw,
        checked=checked,
        events=events,
        events_ignored=events_ignored,
        events_rounded=events_rounded,
    )


def read_labelled_file(
    path: Path | str,
    mapping: Mapping[str, str] | None = None,
    *,
    source: str = "import",
    events_path: Path | str | None = None,
    file_format: str | None = None,
    delimiter: str = ",",
    timezone: str | None = None,
    label_delay: timedelta = DEFAULT_LABEL_DELAY,
    now: datetime | None = None,
    progress: Progress | None = None,
    notes: list[str] | None = None,
    opaque_ids: bool = False,
    id_namespace: str = OPAQUE_ID_DEFAULT_NAMESPACE,
) -> History:
    """A labelled CSV/Parquet file as History frames.

    ``notes``, when given, receives what the caller should tell the user (e.g. amounts rounded).

    Events come from `events_path` (one row per event, events-table column names) if given, then from the
    file's event_* columns, else are derived from the sales. Raises ImportValidationError listing every
    problem (row and column named) when any row is bad.
    """
    path = Path(path)
    options = ImportOptions(
        now=now or datetime.now(UTC),
        timezone=timezone,
        label_delay=label_delay,
        source=source,
        opaque_ids=opaque_ids,
        id_namespace=id_namespace,
    )
    loaded = _load(
        path,
        mapping,
        events_path=None if events_path is None else Path(events_path),
        file_format=file_format,
        delimiter=delimiter,
        options=options,
        progress=progress or _noop,
    )
    if len(loaded.checked.problems):
        raise ImportValidationError.for_rows(str(path), loaded.checked.problems)
    note = rounding_note(loaded.rounded(loaded.checked.values.index))
    if note is not None and notes is not None:
        notes.append(note)
    return build_history(loaded.checked.values, options, loaded.events)


def _database_problems(conn: Connection, loaded: _Loaded) -> pd.DataFrame:
    ids = loaded.checked.values["transaction_id"]
    present = ids.dropna()
    taken = repository.existing_transaction_ids(conn, present.unique().tolist())
    if not taken:
        return empty_problems()
    where = ids.map(taken)
    return problems_where(
        where.notna(),
        loaded.plan.display("transaction_id"),
        lambda rows: "is already in the database (table " + where.loc[rows] + ")",
        got=ids,
    )


def _rejected_rows(loaded: _Loaded, problems: pd.DataFrame) -> pd.DataFrame:
    """The rejected rows as the file had them, with their row number and every reason."""
    if problems.empty:
        return pd.DataFrame(columns=["row", "errors", *loaded.plan.used])
    reasons = (
        ("column " + problems["column"] + ": " + problems["message"])
        .groupby(problems["position"])
        .agg("; ".join)
    )
    original = loaded.raw.loc[reasons.index].rename(columns={v: k for k, v in loaded.plan.rename.items()})
    original = original.astype("str").replace({"NaT": ""})
    frame = pd.DataFrame({"row": reasons.index.to_numpy() + FIRST_DATA_ROW, "errors": reasons.to_numpy()})
    for column in loaded.plan.used:
        frame[column] = original[column].to_numpy()
    return frame


def import_file(
    conn: Connection,
    path: Path | str,
    mapping: Mapping[str, str] | None = None,
    *,
    events_path: Path | str | None = None,
    file_format: str | None = None,
    delimiter: str = ",",
    timezone: str | None = None,
    label_delay: timedelta = DEFAULT_LABEL_DELAY,
    quarantine: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
    opaque_ids: bool = False,
    id_namespace: str = OPAQUE_ID_DEFAULT_NAMESPACE,
) -> ImportReport:
    """Check a labelled file against itself and the database, then write it in the caller's transaction.

    Default: any problem raises ImportValidationError before anything is written. With `quarantine`,
    bad rows are left out and returned in `report.rejected` (write them with `write_quarantine`).
    `dry_run` checks everything and writes nothing. Events the database lacks are created (from the
    events file, else the file's event_* columns, else derived); events it has are left as stored.
    """
    began = time.perf_counter()
    path = Path(path)
    report_progress = progress or _noop
    options = ImportOptions(
        now=now or datetime.now(UTC),
        timezone=timezone,
        label_delay=label_delay,
        opaque_ids=opaque_ids,
        id_namespace=id_namespace,
    )
    loaded = _load(
        path,
        mapping,
        events_path=None if events_path is None else Path(events_path),
        file_format=file_format,
        delimiter=delimiter,
        options=options,
        progress=report_progress,
    )
    report_progress("checking against the database", READ_SHARE + CHECK_SHARE)
    repository.allow_long_statements(conn)
    problems = pd.concat([loaded.checked.problems, _database_problems(conn, loaded)], ignore_index=True)
    if len(problems) and not quarantine:
        raise ImportValidationError.for_rows(str(path), problems)
    bad = pd.Index(problems["position"].unique())
    accepted = loaded.checked.values.drop(index=bad)
    history = build_history(accepted, options, loaded.events)
    known = repository.existing_event_ids(conn, history.events["event_id"].tolist())
    notes = []
    rounded = loaded.rounded(accepted.index)
    note = rounding_note(rounded)
    if note is not None:
        notes.append(note)
    if known:
        history.events = history.events[~history.events["event_id"].isin(known)].reset_index(drop=True)
        given = [spec.name for spec in EVENT_SPECS if spec.name in accepted.columns]
        if loaded.events is not None:
            given.insert(0, "events file rows")
        if given:
            notes.append(
                f"{len(known)} event(s) were already in the database and kept their stored details; "
                f"the file's {', '.join(given)} for them were not used"
            )
    if loaded.events is not None:
        unsold = set(loaded.events["event_id"]) - set(accepted["event_id"])
        if unsold:
            notes.append(
                f"{len(unsold)} event(s) of the events file have no imported transaction; not created"
            )
    report_progress("writing", READ_SHARE + CHECK_SHARE + DB_CHECK_SHARE)
    counts = {"events": 0, "transactions": 0, "fraud_labels": 0}
    if not dry_run and len(history):
        counts = _write(conn, history, path, report_progress)
    report_progress("done", 1.0)
    ignored = describe_ignored(loaded.plan) + [f"{c!r} (events file)" for c in loaded.events_ignored]
    report = ImportReport(
        path=str(path),
        file_format=loaded.file_format,
        rows_read=len(loaded.raw),
        rows_accepted=len(history),
        events_new=len(history.events),
        transactions_written=counts["transactions"],
        labels_written=counts["fraud_labels"],
        events_written=counts["events"],
        events_existing=len(known),
        rows_rejected=len(bad),
        fraud_count=int(history.labels["is_fraud"].sum()),
        dry_run=dry_run,
        seconds=time.perf_counter() - began,
        ignored_columns=ignored,
        notes=notes,
        problems=problems_to_list(problems, MAX_SHOWN),
        problem_count=len(problems),
        rejected=_rejected_rows(loaded, problems) if quarantine else pd.DataFrame(),
        amounts_rounded=rounded,
        opaque_ids=loaded.checked.opaque_ids,
    )
    log.info(
        "import checked" if dry_run else "import written",
        extra={
            "rows_read": report.rows_read,
            "transactions": report.transactions_written,
            "rejected": report.rows_rejected,
            "events": report.events_written,
            "format": report.file_format,
        },
    )
    return report


def _write(conn: Connection, history: History, path: Path, progress: Progress) -> dict[str, int]:
    start_share = READ_SHARE + CHECK_SHARE + DB_CHECK_SHARE
    empty_events = empty_frame(EVENT_COLUMNS)
    try:
        counts = write_history(
            conn,
            History(
                events=history.events,
                transactions=history.transactions.iloc[:0],
                labels=history.labels.iloc[:0],
            ),
        )
        total = len(history)
        for start in range(0, total, WRITE_CHUNK):
            part = History(
                events=empty_events,
                transactions=history.transactions.iloc[start : start + WRITE_CHUNK],
                labels=history.labels.iloc[start : start + WRITE_CHUNK],
            )
            written = write_history(conn, part)
            counts["transactions"] += written["transactions"]
            counts["fraud_labels"] += written["fraud_labels"]
            done = min(start + WRITE_CHUNK, total)
            progress(f"writing {done:,}/{total:,}", start_share + (1 - start_share) * done / total)
    # COPY and executemany run on the driver's cursor, so its own IntegrityError arrives unwrapped.
    except (IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError):
        raise ImportValidationError(
            str(path),
            [
                Problem(
                    "another writer stored some of these transaction or event ids during the import; "
                    "nothing was written — run the import again to see which rows clash"
                )
            ],
        ) from None
    return counts


def write_quarantine(report: ImportReport, path: Path | str) -> Path:
    """Write the rejected rows (row, errors, the file's columns) as CSV; call it once the import committed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    report.rejected.to_csv(target, index=False)
    return target


def write_id_map(report: ImportReport, path: Path | str) -> Path:
    """Write the --opaque-ids mapping (CSV: id, wallet_address; one line per distinct id)."""
    if report.opaque_ids is None:
        raise ValueError("the import did not map ids (--opaque-ids)")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    report.opaque_ids.to_csv(target, index=False)
    return target
