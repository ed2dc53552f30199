"""Checking an import frame column by column and row against row, vectorised with pandas.

Pure: frames and options in, typed values and a problems frame out (no database, no clock — the
import time comes in as `ImportOptions.now`). The input frame holds our column names (after mapping),
text cells trimmed with '' for empty (Parquet timestamps may arrive as timestamps), indexed by the
0-based data row of the file. Every problem is a (position, column, message) row; the caller decides
whether any problem refuses the file or only its row.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import pycountry

from ticketguard import tables
from ticketguard.history import EVENT_COLUMNS, LABEL_COLUMNS, TRANSACTION_COLUMNS, History, conform
from ticketguard.ingest.columns import (
    BY_NAME,
    EVENT_SPECS,
    MAX_AMOUNT_EXCLUSIVE,
    MAX_CAPACITY,
    MAX_DECIMALS,
    ColumnSpec,
)
from ticketguard.ingest.errors import FIRST_DATA_ROW, ImportValidationError, Problem, empty_problems
from ticketguard.wallets import (
    OPAQUE_ID_DEFAULT_NAMESPACE,
    WALLET_HELP,
    WalletError,
    canonical_wallet,
    opaque_wallet,
)

# Without a labelled_at column a label is taken as known this long after its transaction (never after the
# import itself). 7 days (issue 13): an investigation or a first chargeback notice; the former 45 (a card
# chargeback window closing) left every fraud of the last 45 days unknown at the training cutoff, so
# training on an imported history failed for "too little fraud" unless the user knew to change it.
DEFAULT_LABEL_DELAY = timedelta(days=7)
# A file written on a machine with a slightly fast clock must not be refused for it.
CLOCK_SKEW = timedelta(minutes=5)
# Derived events: ticket sales usually run until shortly before doors open.
DERIVED_START_AFTER_LAST_SALE = timedelta(hours=1)
UNKNOWN_ORGANIZER = "unknown"

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})
BOOL_HINT = "true/false, t/f, yes/no, y/n or 1/0 (any case)"
DECIMAL_RE = r"\+?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
# A time of day followed by Z or a numeric offset; a bare date ("2026-01-05") has no offset.
OFFSET_RE = r"[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)"
TIMESTAMP_HINT = "an ISO 8601 timestamp like 2026-01-05T18:30:00Z or 2026-01-05T20:30:00+02:00"
COUNTRY_CODES = frozenset(country.alpha_2 for country in pycountry.countries)
MAX_IP_LENGTH = 45
SHOWN_VALUE_CHARS = 60
IMPORT_SOURCES = tuple(sorted(set(tables.TRANSACTION_SOURCES) & set(tables.LABEL_SOURCES)))


@dataclass(frozen=True)
class ImportOptions:
    """How to read values the file leaves open. `now` is the import time (timestamps after it are refused)."""

    now: datetime
    timezone: str | None = None
    label_delay: timedelta = DEFAULT_LABEL_DELAY
    source: str = "import"
    # Issue 13: ids in the wallet columns that are not addresses (customer ids) are mapped with
    # `ticketguard.wallets.opaque_wallet` under this namespace instead of being refused.
    opaque_ids: bool = False
    id_namespace: str = OPAQUE_ID_DEFAULT_NAMESPACE

    def check(self) -> None:
        problems = []
        if self.opaque_ids and not self.id_namespace:
            problems.append(Problem("the id namespace of --opaque-ids must not be empty"))
        if self.now.tzinfo is None:
            problems.append(Problem("now must be timezone-aware"))
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(
                    Problem(
                        f"timezone {self.timezone!r} is not a known IANA zone; use e.g. UTC or Europe/Berlin"
                    )
                )
        if self.label_delay < timedelta(0):
            problems.append(Problem(f"label delay must be >= 0, got {self.label_delay}"))
        if self.source not in IMPORT_SOURCES:
            problems.append(
                Problem(f"source must be one of {', '.join(IMPORT_SOURCES)}, got {self.source!r}")
            )
        if problems:
            raise ImportValidationError("import options", problems)


@dataclass
class CheckedFrame:
    """Typed values (our column names; None/NaN/NaT where empty or invalid) and every problem found."""

    values: pd.DataFrame
    problems: pd.DataFrame
    # Per money column, the cells that had more than 8 decimal places and were rounded (issue 13).
    rounded: dict[str, pd.Series] = field(default_factory=dict)
    # With --opaque-ids: each distinct id of the wallet columns and its wallet (id, wallet_address).
    opaque_ids: pd.DataFrame | None = None

    def rounded_counts(self, positions: pd.Index | None = None) -> dict[str, int]:
        """How many cells of each money column were rounded, among ``positions`` (default: all rows)."""
        out = {}
        for name, mask in self.rounded.items():
            kept = mask if positions is None else mask.loc[mask.index.intersection(positions)]
            if int(kept.sum()):
                out[name] = int(kept.sum())
        return out

    def bad_positions(self) -> pd.Index:
        return pd.Index(self.problems["position"].unique())


Message = str | pd.Series | Callable[[pd.Index], pd.Series]


class _Problems:
    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, mask: pd.Series, column: str, message: Message, *, got: pd.Series | None = None) -> None:
        """Record `message` (+ `, got '<value>'` from `got`) for the rows where `mask` holds.

        Messages are built for those rows only: on a million good rows this costs nothing.
        """
        where = mask[mask.fillna(False).astype(bool)].index
        if len(where) == 0:
            return
        if callable(message):
            message = message(where)
        if isinstance(message, str):
            text = pd.Series(message, index=where, dtype=object)
        else:
            text = message.loc[where].astype(object)
        if got is not None:
            text = text + _shown(got.loc[where])
        self.parts.append(
            pd.DataFrame(
                {"position": where.to_numpy(dtype="int64"), "column": column, "message": text.to_numpy()}
            )
        )

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return empty_problems()
        return pd.concat(self.parts, ignore_index=True)


def problems_where(
    mask: pd.Series, column: str, message: Message, *, got: pd.Series | None = None
) -> pd.DataFrame:
    """A problems frame for the rows where `mask` holds (used by callers adding their own checks)."""
    collector = _Problems()
    collector.add(mask, column, message, got=got)
    return collector.frame()


def _shown(raw: pd.Series) -> pd.Series:
    """`, got '<value>'` for each row, long values cut."""
    text = raw.astype("str")
    cut = text.str.slice(0, SHOWN_VALUE_CHARS)
    cut = cut.where(text.str.len() <= SHOWN_VALUE_CHARS, cut + "…")
    return ", got '" + cut + "'"


def _is_empty(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(raw):
        return raw.isna()
    return raw == ""


# ------------------------------------------------------------------------------------ one column
Parsed = tuple[pd.Series, pd.Series, str]  # typed values, bad mask (non-empty cells only), reason


def _text(raw: pd.Series, spec: ColumnSpec) -> Parsed:
    typed = raw.astype(object).where(raw != "", None)
    limit = spec.max_length or 0
    return typed, raw.str.len() > limit, f"must be at most {limit} characters"


def _canonical_or_none(value: str) -> str | None:
    try:
        return canonical_wallet(value)
    except WalletError:
        return None


def _wallet(raw: pd.Series, _spec: ColumnSpec) -> Parsed:
    # The one spelling every boundary stores (`ticketguard.wallets`), computed once per distinct value.
    distinct = raw[raw != ""].unique()
    canonical = {value: _canonical_or_none(value) for value in distinct}
    typed = raw.map(canonical).astype(object)
    typed = typed.where(typed.notna(), None)
    return (
        typed,
        (raw != "") & typed.isna(),
        f"must be {WALLET_HELP} (ids that are not wallet addresses, such as customer ids: --opaque-ids)",
    )


def _normal_ip(value: str) -> str | None:
    try:
        normal = ipaddress.ip_address(value).compressed
    except ValueError:
        return None
    return normal if len(normal) <= MAX_IP_LENGTH else None


def _ip(raw: pd.Series, _spec: ColumnSpec) -> Parsed:
    distinct = raw[raw != ""].unique()
    normal = {value: _normal_ip(value) for value in distinct}  # one parse per distinct address
    typed = raw.map(normal).astype(object)
    typed = typed.where(typed.notna(), None)
    return typed, (raw != "") & typed.isna(), "must be an IPv4 or IPv6 address"


def _country(raw: pd.Series, _spec: ColumnSpec) -> Parsed:
    upper = raw.str.upper()
    ok = upper.isin(COUNTRY_CODES)
    return (
        upper.astype(object).where(ok, None),
        ~ok,
        "must be an ISO 3166-1 alpha-2 country code like DE or US",
    )


def _decimal_places(raw: pd.Series, shaped: pd.Series) -> pd.Series:
    """Decimal places of well-shaped numbers once trailing zeros go ("12.500" has 1)."""
    # Arrow string kernels for plain notation; the rare exponent form ("1e-05") goes through Decimal.
    places = raw.str.replace(r"^[^.]*\.?", "", regex=True).str.rstrip("0").str.len().astype("int64")
    for position in raw.index[shaped & raw.str.contains("[eE]", regex=True)]:
        try:
            exponent = Decimal(str(raw.loc[position])).normalize().as_tuple().exponent
        except InvalidOperation:
            continue
        places.loc[position] = max(0, -int(exponent)) if isinstance(exponent, int) else MAX_DECIMALS + 1
    return places


def _amount(raw: pd.Series, *, allow_zero: bool) -> tuple[pd.Series, pd.Series, str, pd.Series]:
    """Typed amounts, bad mask, reason, and which cells had more than 8 decimal places.

    Those are rounded to 8 (the NUMERIC(18, 8) column), not refused: exports written from floats carry
    noise like ``85.64999999999999`` (issue 13: 1,214 such amounts in one history, all frauds, which
    ``--quarantine`` would have dropped). The caller reports how many were rounded.
    """
    shaped = raw.str.fullmatch(DECIMAL_RE)
    numbers = pd.to_numeric(raw.where(shaped, None), errors="coerce").astype("float64")
    rounded_numbers = numbers.round(MAX_DECIMALS)
    lower_ok = rounded_numbers >= 0 if allow_zero else rounded_numbers > 0
    ok = shaped & lower_ok & (rounded_numbers < MAX_AMOUNT_EXCLUSIVE)
    rounded = ok & (_decimal_places(raw, shaped) > MAX_DECIMALS)
    bound = ">= 0" if allow_zero else "> 0"
    reason = (
        f"must be a decimal {bound} and below {MAX_AMOUNT_EXCLUSIVE:,} (a dot as decimal separator, no "
        f"thousands separators; more than {MAX_DECIMALS} decimal places are rounded to {MAX_DECIMALS})"
    )
    return rounded_numbers.where(ok), ~ok, reason, rounded.fillna(False).astype(bool)


def _price(raw: pd.Series, _spec: ColumnSpec) -> Parsed:
    # 0 is a real price: free tickets, comps and giveaways (issue 13).
    return _amount(raw, allow_zero=True)[:3]


def _face_value(raw: pd.Series, _spec: ColumnSpec) -> Parsed:
    return _amount(raw, allow_zero=True)[:3]


def _bool(raw: pd.Series, _spec: ColumnSpec) -> Parsed:
    lower = raw.str.lower()
    typed = pd.Series(None, index=raw.index, dtype=object)
    typed[lower.isin(TRUE_WORDS)] = True
    typed[lower.isin(FALSE_WORDS)] = False
    return typed, typed.isna(), f"must be a boolean: {BOOL_HINT}"


def _bounded_float(raw: pd.Series, limit: float, what: str) -> Parsed:
    numbers = pd.to_numeric(
        raw.where(raw.str.fullmatch(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"), None), errors="coerce"
    )
    numbers = numbers.astype("float64")
    ok = numbers.abs() <= limit
    return numbers.where(ok), ~ok, f"must be a {what} in degrees between -{limit:g} and {limit:g}"


def _latitude(raw: pd.Series, _spec: ColumnSpec) -> Parsed:
    return _bounded_float(raw, 90.0, "latitude")


def _longitude(raw: pd.Series, _spec: ColumnSpec) -> Parsed:
    return _bounded_float(raw, 180.0, "longitude")


def _capacity(raw: pd.Series, _spec: ColumnSpec) -> Parsed:
    shaped = raw.str.fullmatch(r"\+?\d+(?:\.0+)?")
    numbers = pd.to_numeric(raw.where(shaped, None), errors="coerce")
    ok = (numbers >= 1) & (numbers <= MAX_CAPACITY)
    return numbers.where(ok).astype("Int64"), ~ok, f"must be a whole number between 1 and {MAX_CAPACITY}"


def _localize(naive: pd.Series, zone: str) -> pd.Series:
    return naive.dt.tz_localize(ZoneInfo(zone), ambiguous="NaT", nonexistent="NaT").dt.tz_convert(UTC)


def _timestamps(raw: pd.Series, timezone: str | None, problems: _Problems, column: str) -> pd.Series:
    """Timestamps as datetime64[us, UTC]; a value without an offset needs the import's timezone."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        if isinstance(raw.dtype, pd.DatetimeTZDtype):
            return raw.dt.tz_convert(UTC).astype("datetime64[us, UTC]")
        if timezone is None:
            problems.add(
                raw.notna(),
                column,
                "is a timestamp without a timezone; store it with one or set the import timezone "
                "(--timezone)",
                got=raw,
            )
            return pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]")
        typed = _localize(raw, timezone)
        problems.add(
            raw.notna() & typed.isna(),
            column,
            f"is ambiguous or does not exist in {timezone} (a daylight-saving change)",
            got=raw,
        )
        return typed.astype("datetime64[us, UTC]")
    present = raw != ""
    with_offset = present & raw.str.contains(OFFSET_RE + "$", regex=True)
    typed = pd.to_datetime(raw.where(with_offset, None), format="ISO8601", utc=True, errors="coerce")
    typed = typed.astype("datetime64[us, UTC]")
    naive_rows = present & ~with_offset
    naive = pd.to_datetime(raw.where(naive_rows, None), format="ISO8601", errors="coerce")
    if isinstance(naive.dtype, pd.DatetimeTZDtype):  # an offset the pattern above did not know
        naive = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us]")
    unparsed = (with_offset & typed.isna()) | (naive_rows & naive.isna())
    problems.add(unparsed, column, f"must be {TIMESTAMP_HINT}", got=raw)
    needs_zone = naive_rows & naive.notna()
    if timezone is None:
        problems.add(
            needs_zone,
            column,
            "has no UTC offset; add one (Z or +02:00) or set the import timezone (--timezone)",
            got=raw,
        )
    elif needs_zone.any():
        local = _localize(naive.where(needs_zone), timezone).astype("datetime64[us, UTC]")
        problems.add(
            needs_zone & local.isna(),
            column,
            f"is ambiguous or does not exist in {timezone} (a daylight-saving change)",
            got=raw,
        )
        typed = typed.where(~needs_zone, local)
    return typed


PARSERS: dict[str, Callable[[pd.Series, ColumnSpec], Parsed]] = {
    "text": _text,
    "wallet": _wallet,
    "ip": _ip,
    "country": _country,
    "price": _price,
    "face_value": _face_value,
    "bool": _bool,
    "latitude": _latitude,
    "longitude": _longitude,
    "capacity": _capacity,
}


def _too_long(lengths: pd.Series, reason: str, where: pd.Index) -> pd.Series:
    return reason + ", got " + lengths.loc[where].astype("str") + " characters"


def check_frame(raw: pd.DataFrame, display: Callable[[str], str], options: ImportOptions) -> CheckedFrame:
    """Check every cell, then rows against each other; returns typed values and all problems."""
    options.check()
    problems = _Problems()
    rounded: dict[str, pd.Series] = {}
    values = _check_cells(raw, display, options, problems, rounded)
    _check_rows_against_each_other(values, display, options, problems)
    opaque = _opaque_id_map(raw, values) if options.opaque_ids else None
    return CheckedFrame(values=values, problems=problems.frame(), rounded=rounded, opaque_ids=opaque)


WALLET_COLUMNS = ("wallet_address", "seller_address")


def _opaque_id(raw: pd.Series, namespace: str) -> Parsed:
    """Every non-empty cell mapped with `opaque_wallet` (once per distinct id): nothing is refused."""
    distinct = raw[raw != ""].unique()
    mapped = {value: opaque_wallet(str(value), namespace) for value in distinct}
    typed = raw.map(mapped).astype(object)
    typed = typed.where(typed.notna(), None)
    return typed, pd.Series(False, index=raw.index), ""


def _opaque_id_map(raw: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """The distinct (id, wallet_address) pairs of the wallet columns; two ids on one wallet refuse the file
    (160-bit HMAC: it does not happen in practice, but a silent merge of two customers must not either)."""
    parts = [
        pd.DataFrame({"id": raw[c], "wallet_address": values[c]})
        for c in WALLET_COLUMNS
        if c in raw.columns and c in values.columns
    ]
    pairs = pd.concat(parts, ignore_index=True)
    pairs = pairs[pairs["id"] != ""].drop_duplicates().sort_values("id", kind="stable")
    clash = pairs["wallet_address"].duplicated(keep=False)
    if clash.any():
        ids = ", ".join(repr(i) for i in pairs.loc[clash, "id"].head(10))
        raise ImportValidationError(
            "--opaque-ids", [Problem(f"ids {ids} map to the same wallet; choose another --id-namespace")]
        )
    return pairs.reset_index(drop=True)


def check_events_frame(
    raw: pd.DataFrame, display: Callable[[str], str], options: ImportOptions
) -> CheckedFrame:
    """Check an events file (columns already renamed to the event_* names): one row per event."""
    options.check()
    problems = _Problems()
    rounded: dict[str, pd.Series] = {}
    values = _check_cells(raw, display, options, problems, rounded)
    ids = values["event_id"]
    repeated = ids.notna() & ids.duplicated(keep=False)
    problems.add(repeated, display("event_id"), "must be unique in the events file", got=ids)
    _check_event_dates(values, display, problems)
    return CheckedFrame(values=values, problems=problems.frame(), rounded=rounded)


def _check_cells(
    raw: pd.DataFrame,
    display: Callable[[str], str],
    options: ImportOptions,
    problems: _Problems,
    rounded: dict[str, pd.Series],
) -> pd.DataFrame:
    values = pd.DataFrame(index=raw.index)
    for name in raw.columns:
        spec = BY_NAME[name]
        column = raw[name]
        label = display(name)
        empty = _is_empty(column)
        if spec.required:
            problems.add(empty, label, "is required, got an empty value")
        if spec.kind == "timestamp":
            values[name] = _timestamps(column, options.timezone, problems, label)
            continue
        if spec.kind in ("price", "face_value"):
            typed, bad, reason, was_rounded = _amount(column, allow_zero=True)
            rounded[name] = was_rounded & ~empty
        elif spec.kind == "wallet" and options.opaque_ids:
            typed, bad, reason = _opaque_id(column, options.id_namespace)
        else:
            typed, bad, reason = PARSERS[spec.kind](column, spec)
        bad = bad.fillna(True).astype(bool) & ~empty
        if spec.kind == "text":
            problems.add(bad, label, partial(_too_long, column.str.len(), reason))
        else:
            problems.add(bad, label, reason, got=column)
        values[name] = typed.where(~bad, None) if typed.dtype == object else typed.where(~bad)
    return values


def _row_numbers(index: pd.Index) -> pd.Series:
    return pd.Series(index.to_numpy() + FIRST_DATA_ROW, index=index)


def _check_rows_against_each_other(
    values: pd.DataFrame, display: Callable[[str], str], options: ImportOptions, problems: _Problems
) -> None:
    ids = values["transaction_id"]
    repeated = ids.notna() & ids.duplicated(keep=False)
    if repeated.any():
        rows = _row_numbers(values.index)[repeated]
        group = ids[repeated]
        first = rows.groupby(group).transform("min")
        count = rows.groupby(group).transform("size")
        message = (
            "must be unique in the file, but "
            + count.astype("str")
            + " rows use it (first on row "
            + first.astype("str")
            + ")"
        )
        problems.add(repeated, display("transaction_id"), message, got=group)

    latest = pd.Timestamp(options.now).tz_convert(UTC) + CLOCK_SKEW
    ts = values["timestamp"]
    problems.add(
        ts > latest,
        display("timestamp"),
        f"must not be after the import time {options.now.isoformat()}",
        got=ts,
    )
    if "labelled_at" in values.columns:
        labelled = values["labelled_at"]
        problems.add(
            labelled > latest,
            display("labelled_at"),
            f"must not be after the import time {options.now.isoformat()}",
            got=labelled,
        )
        problems.add(
            labelled < ts,
            display("labelled_at"),
            lambda where: "must not be before the transaction's timestamp " + ts.loc[where].astype("str"),
            got=labelled,
        )

    events = values["event_id"]
    for spec in EVENT_SPECS:
        if spec.name not in values.columns:
            continue
        column = values[spec.name]
        given = column.notna() & events.notna()
        if not given.any():
            continue
        keyed = column[given]
        first_value = keyed.groupby(events[given]).transform("first")
        first_row = _row_numbers(values.index)[given].groupby(events[given]).transform("min")
        differs = (keyed != first_value).reindex(values.index, fill_value=False)

        def conflict(
            where: pd.Index,
            keyed: pd.Series = keyed,
            first_value: pd.Series = first_value,
            first_row: pd.Series = first_row,
        ) -> pd.Series:
            return (
                "event "
                + events.loc[where].map(repr)
                + " has "
                + first_value.loc[where].astype("str")
                + " on row "
                + first_row.loc[where].astype("str")
                + ", this row says "
                + keyed.loc[where].astype("str")
                + "; an event's columns must agree on every row"
            )

        problems.add(differs, display(spec.name), conflict)
    _check_event_dates(values, display, problems)


def _check_event_dates(values: pd.DataFrame, display: Callable[[str], str], problems: _Problems) -> None:
    if "event_on_sale_at" in values.columns and "event_starts_at" in values.columns:
        on_sale, starts = values["event_on_sale_at"], values["event_starts_at"]
        problems.add(
            on_sale > starts,
            display("event_starts_at"),
            lambda where: (
                f"must not be before {display('event_on_sale_at')} (" + on_sale.loc[where].astype("str") + ")"
            ),
            got=starts,
        )


# ------------------------------------------------------------------------------------ frames
def _column(values: pd.DataFrame, name: str) -> pd.Series:
    if name in values.columns:
        return values[name]
    return pd.Series(None, index=values.index, dtype=object)


def build_history(
    values: pd.DataFrame, options: ImportOptions, events: pd.DataFrame | None = None
) -> History:
    """Transactions, labels and events for rows that passed every check.

    An event's details come from `events` (a checked events file) first, then the rows' event_* columns,
    then are derived from its sales (see `derive_events`).
    """
    transactions = pd.DataFrame(index=values.index)
    for name in TRANSACTION_COLUMNS:
        if name == "source":
            continue
        transactions[name] = _column(values, name)
    transactions["is_resale"] = transactions["is_resale"].where(transactions["is_resale"].notna(), False)
    transactions["source"] = options.source

    ts = values["timestamp"]
    import_time = pd.Timestamp(options.now).tz_convert(UTC)
    default_labelled = ts + options.label_delay
    default_labelled = default_labelled.where(default_labelled <= import_time, import_time)
    default_labelled = default_labelled.where(default_labelled >= ts, ts)
    labelled = _column(values, "labelled_at")
    labels = pd.DataFrame(
        {
            "transaction_id": values["transaction_id"],
            "is_fraud": values["is_fraud"].astype(bool),
            "pattern": _column(values, "pattern"),
            "source": options.source,
            "labelled_at": labelled.where(labelled.notna(), default_labelled)
            if "labelled_at" in values.columns
            else default_labelled,
        }
    )
    return History(
        events=derive_events(values, events),
        transactions=conform(transactions, TRANSACTION_COLUMNS),
        labels=conform(labels, LABEL_COLUMNS),
    )


def derive_events(values: pd.DataFrame, event_file: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per event sold in `values`: details from `event_file` (rows keyed by event_id, event_* columns)
    where given, else from the rows' event_* columns, else derived from its sales.

    capacity = distinct tickets seen (plus primary sales without a ticket id), face value = median primary
    price (all prices when the file has no primary sale), on sale = first sale, start = last sale + 1 h.
    """
    if values.empty:
        return conform(pd.DataFrame(columns=list(EVENT_COLUMNS)), EVENT_COLUMNS)
    events = values["event_id"]
    resale = _column(values, "is_resale").fillna(False).astype(bool)
    tickets = _column(values, "ticket_id")
    by_event = values.groupby(events)
    first_sale, last_sale = by_event["timestamp"].min(), by_event["timestamp"].max()
    primary = values[~resale]
    face = primary.groupby(primary["event_id"])["price_paid"].median()
    face = face.reindex(first_sale.index).fillna(by_event["price_paid"].median())
    seen_tickets = tickets.groupby(events).nunique().reindex(first_sale.index).fillna(0)
    untracked = (~resale & tickets.isna()).groupby(events).sum().reindex(first_sale.index).fillna(0)
    capacity = (seen_tickets + untracked).clip(lower=1).astype("int64")

    described = None
    if event_file is not None and not event_file.empty:
        described = event_file.dropna(subset=["event_id"]).set_index("event_id")

    def given(name: str) -> pd.Series:
        from_rows = pd.Series(None, index=first_sale.index, dtype=object)
        if name in values.columns:
            from_rows = values.groupby(events)[name].first().reindex(first_sale.index)
        if described is None or name not in described.columns:
            return from_rows
        from_file = described[name].reindex(first_sale.index)
        return from_file.where(from_file.notna(), from_rows) if from_rows.notna().any() else from_file

    starts = given("event_starts_at")
    starts = starts.where(starts.notna(), last_sale + DERIVED_START_AFTER_LAST_SALE)
    starts = pd.to_datetime(starts, utc=True)
    on_sale = given("event_on_sale_at")
    on_sale = pd.to_datetime(
        on_sale.where(on_sale.notna(), first_sale.where(first_sale < starts, starts)), utc=True
    )
    starts = starts.where(starts >= on_sale, on_sale)
    name = given("event_name")
    organizer = given("event_organizer_id")
    # Issue 13: facts derived from the file's sales describe all of it, later rows included; the event is
    # marked so that features treat its capacity, face value and start as unknown (point-in-time).
    derived = (
        given("event_capacity").isna() | given("event_face_value").isna() | given("event_starts_at").isna()
    )
    frame = pd.DataFrame(
        {
            "event_id": first_sale.index.to_numpy(dtype=object),
            "name": name.where(name.notna(), pd.Series(first_sale.index, index=first_sale.index)).to_numpy(),
            "organizer_id": organizer.where(organizer.notna(), UNKNOWN_ORGANIZER).to_numpy(),
            "venue": given("event_venue").to_numpy(),
            "city": given("event_city").to_numpy(),
            "capacity": given("event_capacity").fillna(capacity).astype("int64").to_numpy(),
            "face_value": given("event_face_value")
            .fillna(face)
            .astype("float64")
            .round(MAX_DECIMALS)
            .to_numpy(),
            "on_sale_at": on_sale.to_numpy(),
            "starts_at": starts.to_numpy(),
            "facts_derived": derived.to_numpy(dtype=bool),
        }
    )
    return conform(frame, EVENT_COLUMNS)
