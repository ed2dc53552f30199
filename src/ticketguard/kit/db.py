"""Engines, connections and the bulk-load fast path, for PostgreSQL and the embedded SQLite default."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Table, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import NullPool

SQLITE_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


SQLITE_BULK_CACHE_KIB = 256 * 1024


def dialect_insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT with the dialect's ON CONFLICT clauses (``on_conflict_do_nothing`` / ``_do_update``)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"ticketguard supports PostgreSQL and SQLite, not {dialect}")


def make_engine(url: str, *, pool_size: int = 5, statement_timeout_ms: int = 5000, **kwargs: Any) -> Engine:
    """Engine with the session settings the project relies on.

    PostgreSQL sessions run in UTC (so `date_trunc('hour', ...)` means UTC hours) with a statement
    timeout (a stuck query must not hang a request). SQLite gets WAL (readers don't block the writer),
    enforced foreign keys and a busy timeout instead of instant "database is locked" errors.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, poolclass=NullPool, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

        return engine
    connect_args = kwargs.pop("connect_args", {})
    options = f"-c timezone=UTC -c statement_timeout={int(statement_timeout_ms)}"
    connect_args.setdefault("options", options)
    connect_args.setdefault("connect_timeout", 5)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
        **kwargs,
    )


def redact_url(url: str) -> str:
    """The URL with its password hidden, for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_value_columns(frame: pd.DataFrame) -> list[Sequence[Any]]:
    columns: list[Sequence[Any]] = []
    for name in frame.columns:
        series = frame[name]
        if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(series):
            utc = series.dt.tz_convert("UTC") if isinstance(series.dtype, pd.DatetimeTZDtype) else series
            text = utc.dt.strftime(SQLITE_TIMESTAMP_FORMAT)
            columns.append(text.where(series.notna(), None).tolist())
        elif pd.api.types.is_bool_dtype(series):
            columns.append(series.astype("int64").tolist())
        elif pd.api.types.is_float_dtype(series):
            values = series.to_numpy(dtype=object)
            values[np.isnan(series.to_numpy(dtype=float))] = None
            columns.append(values.tolist())
        else:
            columns.append(series.astype(object).where(series.notna(), None).tolist())
    return columns


def _copy_text(frame: pd.DataFrame) -> str:
    """Render a frame as PostgreSQL COPY text (tab separated, \\N for NULL)."""
    out = frame.copy()
    for name in out.columns:
        series = out[name]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            out[name] = series.dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")
        elif pd.api.types.is_datetime64_any_dtype(series):
            out[name] = series.dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")
        elif pd.api.types.is_bool_dtype(series):
            out[name] = series.map({True: "t", False: "f"})
        elif series.dtype == object:
            out[name] = series.astype(object).where(
                series.isna(),
                series.astype(str)
                .str.replace("\\", "\\\\", regex=False)
                .str.replace("\t", "\\t", regex=False)
                .str.replace("\n", "\\n", regex=False),
            )
    buffer = io.StringIO()
    out.to_csv(buffer, sep="\t", header=False, index=False, na_rep="\\N", quoting=3, escapechar=None)
    return buffer.getvalue()


def bulk_insert(conn: Connection, table: Table, frame: pd.DataFrame, *, chunk_rows: int = 200_000) -> int:
    """Append a frame's rows to a table as fast as the dialect allows, inside the caller's transaction.

    PostgreSQL: COPY FROM STDIN. SQLite: one prepared INSERT through executemany. Columns are matched by
    name; timestamps must be tz-aware UTC (or naive meaning UTC), money columns str/Decimal.
    """
    if frame.empty:
        return 0
    unknown = set(frame.columns) - set(table.columns.keys())
    if unknown:
        raise ValueError(f"columns not in table {table.name}: {sorted(unknown)}")
    names = list(frame.columns)
    dialect = conn.dialect.name
    total = 0
    for start in range(0, len(frame), chunk_rows):
        part = frame.iloc[start : start + chunk_rows]
        if dialect == "postgresql":
            raw = conn.connection.dbapi_connection
            assert raw is not None
            column_list = ", ".join(f'"{n}"' for n in names)
            statement = f'COPY "{table.name}" ({column_list}) FROM STDIN'
            with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
                copy.write(_copy_text(part))
        else:
            placeholders = ", ".join("?" for _ in names)
            column_list = ", ".join(f'"{n}"' for n in names)
            rows: list[tuple[Any, ...]] = list(zip(*_sqlite_value_columns(part), strict=True))
            raw = conn.connection.dbapi_connection
            assert raw is not None
            cursor = raw.cursor()
            # identifiers come from the table metadata, values are bound parameters
            sql = f'INSERT INTO "{table.name}" ({column_list}) VALUES ({placeholders})'  # noqa: S608
            # a big page cache for this connection: index upkeep in a bulk load thrashes the default 2 MB
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_BULK_CACHE_KIB}")
            cursor.executemany(sql, rows)
            cursor.close()
        total += len(part)
    return total
