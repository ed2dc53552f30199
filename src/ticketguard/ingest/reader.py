"""Reading an import file into a raw frame: text cells as they are written, Parquet timestamps as timestamps.

Nothing is interpreted here beyond trimming spaces; the frame's index is the 0-based data row of the file,
so every later message can name the row a person sees (index + 2, the header being row 1).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ticketguard.ingest.errors import FIRST_DATA_ROW, MAX_SHOWN, ImportValidationError, Problem

FORMATS = ("csv", "parquet")
EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
CHUNK_ROWS = 250_000

Progress = Callable[[float], None]


def detect_format(path: Path, explicit: str | None) -> str:
    if explicit is not None:
        if explicit.lower() not in FORMATS:
            raise ImportValidationError(
                str(path), [Problem(f"format {explicit!r} is not supported; accepted: {', '.join(FORMATS)}")]
            )
        return explicit.lower()
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ImportValidationError(
            str(path),
            [
                Problem(
                    f"cannot tell the format from the extension {path.suffix or '(none)'!r}; "
                    f"accepted: {', '.join(EXTENSIONS)}, or pass the format (--format csv|parquet)"
                )
            ],
        )
    return fmt


def _fail(path: Path, message: str) -> ImportValidationError:
    return ImportValidationError(str(path), [Problem(message)])


def _check_header(path: Path, names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    problems = []
    for index, name in enumerate(names, start=1):
        if name and name in seen:
            problems.append(
                Problem(f"column {name!r} appears twice in the header (columns {seen[name]} and {index})")
            )
        seen.setdefault(name, index)
    if problems:
        raise ImportValidationError(str(path), problems)
    return list(names)


def read_header(path: Path, fmt: str, *, delimiter: str = ",") -> list[str]:
    """The file's column names (trimmed), refusing duplicates; unnamed CSV columns come back as ''."""
    if not path.is_file():
        raise _fail(path, "file not found")
    if fmt == "csv":
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                header = next(csv.reader(handle, delimiter=delimiter), None)
        except UnicodeDecodeError:
            raise _fail(path, "is not UTF-8 text; save the CSV as UTF-8") from None
        except csv.Error as exc:
            raise _fail(path, f"header cannot be read as CSV: {exc}") from None
        if not header or not any(name.strip() for name in header):
            raise _fail(path, "is empty: expected a header line with column names")
        return _check_header(path, [name.strip() for name in header])
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise _fail(path, f"is not a readable Parquet file: {exc}") from None
    return _check_header(path, [name.strip() for name in schema.names])


def read_rows(
    path: Path,
    fmt: str,
    columns: Sequence[str],
    *,
    delimiter: str = ",",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The data rows of the given columns; fully empty rows are dropped (their row numbers stay unused)."""
    frame = (
        _read_csv(path, columns, delimiter, progress)
        if fmt == "csv"
        else _read_parquet(path, columns, progress)
    )
    if len(frame) == 0:
        raise _fail(path, "has a header but no data rows")
    text_columns = [c for c in frame.columns if not pd.api.types.is_datetime64_any_dtype(frame[c])]
    empty = pd.Series(True, index=frame.index)
    for column in frame.columns:
        if column in text_columns:
            empty &= frame[column] == ""
        else:
            empty &= frame[column].isna()
    return frame.loc[~empty]


def _check_field_counts(path: Path, delimiter: str, expected: int, progress: Progress | None) -> None:
    """Refuse rows with more or fewer fields than the header (pandas would pad or cut them silently)."""
    size = max(path.stat().st_size, 1)
    problems: list[Problem] = []
    total = 0
    with path.open("rb") as handle, io.TextIOWrapper(handle, encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text, delimiter=delimiter)
        try:
            next(reader, None)
            for position, record in enumerate(reader):
                if record and len(record) != expected:
                    total += 1
                    if len(problems) < MAX_SHOWN:
                        problems.append(
                            Problem(
                                f"has {len(record)} fields but the header has {expected}; "
                                "quote values that contain the delimiter",
                                row=position + FIRST_DATA_ROW,
                            )
                        )
                if progress is not None and position % 100_000 == 0:
                    progress(min(handle.tell() / size, 1.0))
        except UnicodeDecodeError:
            raise _fail(path, "is not UTF-8 text; save the CSV as UTF-8") from None
        except csv.Error as exc:
            raise _fail(path, f"is not well-formed CSV: {exc}") from None
    if problems:
        raise ImportValidationError(str(path), problems, total=total)


def _read_csv(path: Path, columns: Sequence[str], delimiter: str, progress: Progress | None) -> pd.DataFrame:
    header = read_header(path, "csv", delimiter=delimiter)
    _check_field_counts(
        path, delimiter, len(header), None if progress is None else lambda f: progress(f * 0.3)
    )
    positions = [header.index(c) for c in columns]
    size = max(path.stat().st_size, 1)
    chunks: list[pd.DataFrame] = []
    try:
        with (
            path.open("rb") as handle,
            pd.read_csv(
                handle,
                sep=delimiter,
                header=None,
                skiprows=1,
                names=list(range(len(header))),
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skip_blank_lines=False,
                encoding="utf-8-sig",
                chunksize=CHUNK_ROWS,
            ) as reader,
        ):
            for chunk in reader:
                chunks.append(chunk[positions])
                if progress is not None:
                    progress(0.3 + 0.7 * min(handle.tell() / size, 1.0))
    except UnicodeDecodeError:
        raise _fail(path, "is not UTF-8 text; save the CSV as UTF-8") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise _fail(path, f"is not well-formed CSV: {exc}") from None
    if not chunks:
        return pd.DataFrame({c: pd.Series([], dtype="str") for c in columns})
    raw = pd.concat(chunks)
    frame = pd.DataFrame(index=raw.index)
    for name, pos in zip(columns, positions, strict=True):
        frame[name] = raw[pos].fillna("").astype("str").str.strip()
    return frame


def _arrow_to_series(column: pa.ChunkedArray, name: str, path: Path) -> pd.Series:
    kind = column.type
    if pa.types.is_timestamp(kind):
        return pd.Series(column.to_pandas())
    if pa.types.is_date(kind):
        return pd.Series(column.cast(pa.timestamp("us")).to_pandas())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = column
    elif (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_dictionary(kind)
    ):
        text = pc.cast(column, pa.string())
    else:
        raise _fail(
            path, f"column {name!r} has Parquet type {kind}; accepted: text, number, boolean, timestamp"
        )
    return pd.Series(text.to_pandas(), dtype="str").fillna("").str.strip()


def _read_parquet(path: Path, columns: Sequence[str], progress: Progress | None) -> pd.DataFrame:
    try:
        parquet = pq.ParquetFile(path)
        header = [name.strip() for name in parquet.schema_arrow.names]
        originals = [parquet.schema_arrow.names[header.index(c)] for c in columns]
        total = max(parquet.metadata.num_rows, 1)
        frames: list[pd.DataFrame] = []
        start = 0
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=originals):
            table = pa.Table.from_batches([batch])
            index = pd.RangeIndex(start, start + table.num_rows)
            part = pd.DataFrame(index=index)
            for name, original in zip(columns, originals, strict=True):
                part[name] = _arrow_to_series(table.column(original), name, path).set_axis(index)
            frames.append(part)
            start += table.num_rows
            if progress is not None:
                progress(min(start / total, 1.0))
    except (pa.ArrowException, OSError) as exc:
        raise _fail(path, f"is not a readable Parquet file: {exc}") from None
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype="str") for c in columns})
    return pd.concat(frames)
