"""From a labelled history to model inputs: features, labels as known when, and a time-ordered split.

The split is by transaction time, never random (see docs/ml.md, "Evaluation protocol"):

    | warm-up | train ............. | validation | gap | test |
    start                                                   end

- warm-up: the first days only give the features their history (every wallet is "new" there);
- train and validation (the last days before the gap; early stopping and the imbalance weight choice);
- gap: dropped — a model deployed at the start of the test days could not know these labels yet;
- test: the last days, never trained on; scored with the labels as finally known.

Training labels are the labels *known at the deployment time* (the test start): a fraud label that arrived
later counts as legitimate there, as it would have in production.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ticketguard.config import Settings
from ticketguard.features.offline import build_features, to_us
from ticketguard.features.specs import FeatureParams
from ticketguard.history import History

US = 1_000_000
NO_LABEL = np.iinfo(np.int64).max

Progress = Callable[[str, float], None]


class DatasetError(ValueError):
    """The data cannot give the asked split or has no labels; the message says what is missing."""


def feature_params(settings: Settings) -> FeatureParams:
    return FeatureParams(
        label_delay=timedelta(days=settings.feature_label_delay_days),
        risk_window=timedelta(days=settings.feature_risk_window_days),
        geo_window=timedelta(minutes=settings.feature_geo_window_minutes),
        geo_distance_km=settings.feature_geo_distance_km,
    )


@dataclass
class LabelledFeatures:
    """Features of every transaction of a history, with what is known about its label."""

    transaction_id: np.ndarray
    timestamp_us: np.ndarray
    wallet: np.ndarray
    event: np.ndarray  # the event id of each transaction (per-row scores of the evaluation, issue 13)
    features: pd.DataFrame
    has_label: np.ndarray
    is_fraud: np.ndarray
    labelled_us: np.ndarray
    pattern: np.ndarray

    def __len__(self) -> int:
        return len(self.transaction_id)

    def matrix(self, mask: np.ndarray | None = None, names: Sequence[str] | None = None) -> np.ndarray:
        """Rows (all, or where ``mask``) of the features ``names`` (default: every feature), float32."""
        frame = self.features if names is None else self.features[list(names)]
        if mask is not None:
            frame = frame[mask]
        return frame.to_numpy(dtype=np.float32)

    def labels_known_at(self, moment_us: int) -> np.ndarray:
        """1 where the transaction was known to be fraud before ``moment_us``."""
        return (self.is_fraud & (self.labelled_us < moment_us)).astype(np.int8)


def labelled_features(
    history: History,
    params: FeatureParams,
    *,
    blacklist: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> LabelledFeatures:
    tx = history.transactions
    if tx.empty:
        raise DatasetError("the data has no transactions")
    features = build_features(history, params, blacklist=blacklist, progress=progress)
    labels = history.labels.drop_duplicates("transaction_id", keep="last")
    joined = tx[["transaction_id"]].merge(labels, on="transaction_id", how="left")
    has_label = joined["is_fraud"].notna().to_numpy()
    labelled = np.full(len(tx), NO_LABEL, dtype=np.int64)
    known = joined["labelled_at"].notna().to_numpy()
    if known.any():
        labelled[known] = to_us(joined.loc[known, "labelled_at"])
    return LabelledFeatures(
        transaction_id=tx["transaction_id"].to_numpy(dtype=object),
        timestamp_us=to_us(tx["timestamp"]),
        wallet=tx["wallet_address"].to_numpy(dtype=object),
        event=tx["event_id"].to_numpy(dtype=object),
        features=features.reset_index(drop=True),
        has_label=has_label,
        is_fraud=joined["is_fraud"].fillna(False).astype(bool).to_numpy(),
        labelled_us=labelled,
        pattern=joined["pattern"]
        .astype(object)
        .where(joined["pattern"].notna(), None)
        .to_numpy(dtype=object),
    )


@dataclass(frozen=True)
class SplitPlan:
    """Boundaries of the time-ordered split (UTC). Each part is [its start, the next start)."""

    start: datetime
    train_start: datetime
    validation_start: datetime
    gap_start: datetime
    test_start: datetime
    end: datetime  # exclusive: 00:00 UTC after the last test day

    @classmethod
    def plan(
        cls,
        first: datetime,
        last: datetime,
        *,
        test: timedelta,
        gap: timedelta,
        validation: timedelta,
        warmup: timedelta,
        test_from: date | None = None,
        test_to: date | None = None,
    ) -> SplitPlan:
        """Day-aligned boundaries (00:00 UTC; spans rounded up to whole days, issue 13).

        By default the test part is the last ``test`` days up to the end of the last transaction's day;
        ``test_from`` / ``test_to`` (UTC dates, both inclusive) choose the test days instead, the other
        parts lying before them as usual.
        """
        first_day, last_day = _day_of(first), _day_of(last)
        if test_from is not None and test_to is not None and test_from > test_to:
            raise DatasetError(
                f"--test-from {test_from} is after --test-to {test_to}: give the first test day first"
            )
        for option, day in (("--test-from", test_from), ("--test-to", test_to)):
            if day is not None and not first_day <= day <= last_day:
                raise DatasetError(
                    f"{option} {day} is outside the data, whose transactions run from {first_day} to "
                    f"{last_day} (UTC days)"
                )
        test_days = _whole_days(test, minimum=1)
        end = _midnight(test_to + ONE_DAY) if test_to is not None else _midnight(last_day + ONE_DAY)
        test_start = _midnight(test_from) if test_from is not None else end - test_days
        if test_from is None and test_to is not None:
            test_start = max(test_start, _midnight(first_day))
        gap_start = test_start - _whole_days(gap)
        validation_start = gap_start - _whole_days(validation, minimum=1)
        train_start = _midnight(first_day if first == _midnight(first_day) else first_day + ONE_DAY)
        train_start += _whole_days(warmup)
        if validation_start - train_start < _whole_days(validation, minimum=1):
            days = {
                "warm-up": _whole_days(warmup).days,
                "validation": _whole_days(validation, minimum=1).days,
                "gap": _whole_days(gap).days,
                "test": (end - test_start).days,
            }
            parts = (
                f"warm-up {days['warm-up']} + train ≥ validation + validation {days['validation']} + "
                f"gap {days['gap']}"
            )
            before = days["warm-up"] + 2 * days["validation"] + days["gap"]
            if test_from is not None:
                room = (test_start - _midnight(first_day)) / ONE_DAY
                raise DatasetError(
                    f"--test-from {test_from} leaves {room:.1f} days of data before the test days; the "
                    f"parts before them need at least {before} ({parts} days, whole UTC days): choose a "
                    "later --test-from, give more history or shorter TRAIN_*_DAYS"
                )
            span = (end - _midnight(first_day)) / ONE_DAY
            raise DatasetError(
                f"the data spans {span:.1f} days; the split needs at least {before + days['test']:.1f} "
                f"({parts} + test {days['test']} days, whole UTC days): give more history, shorter "
                "TRAIN_*_DAYS, or choose the test days (--test-from/--test-to)"
            )
        return cls(first, train_start, validation_start, gap_start, test_start, end)

    @classmethod
    def from_settings(
        cls,
        first: datetime,
        last: datetime,
        settings: Settings,
        *,
        test_from: date | None = None,
        test_to: date | None = None,
    ) -> SplitPlan:
        return cls.plan(
            first,
            last,
            test=timedelta(days=settings.train_test_days),
            gap=timedelta(days=settings.train_gap_days),
            validation=timedelta(days=settings.train_validation_days),
            warmup=timedelta(days=settings.train_warmup_days),
            test_from=test_from,
            test_to=test_to,
        )

    def to_dict(self) -> dict[str, str]:
        return {name: getattr(self, name).isoformat() for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SplitPlan:
        return cls(**{name: datetime.fromisoformat(str(data[name])) for name in cls.__dataclass_fields__})

    def mask_bounds(self, part: str) -> tuple[datetime, datetime]:
        bounds = {
            "train": (self.train_start, self.validation_start),
            "validation": (self.validation_start, self.gap_start),
            "fit": (self.train_start, self.gap_start),
            "test": (self.test_start, self.end),
        }
        return bounds[part]

    def mask(self, ts_us: np.ndarray, part: str) -> np.ndarray:
        lo, hi = self.mask_bounds(part)
        return (ts_us >= _us(lo)) & (ts_us < _us(hi))


ONE_DAY = timedelta(days=1)


def _day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _whole_days(span: timedelta, minimum: int = 0) -> timedelta:
    """A span rounded up to whole days (TRAIN_*_DAYS may be fractional; boundaries stay at 00:00 UTC)."""
    return timedelta(days=max(minimum, math.ceil(span / ONE_DAY - 1e-9)))


def _us(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * 86_400 * US + delta.seconds * US + delta.microseconds


def time_range(data: LabelledFeatures) -> tuple[datetime, datetime]:
    def at(us: int) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))

    return at(int(data.timestamp_us.min())), at(int(data.timestamp_us.max()))


@dataclass
class Splits:
    plan: SplitPlan
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    y_train: np.ndarray
    y_validation: np.ndarray
    y_test: np.ndarray


def split(data: LabelledFeatures, plan: SplitPlan) -> Splits:
    """Masks and labels of each part; rows without a label are left out everywhere."""
    deploy_us = _us(plan.test_start)
    known = data.labels_known_at(deploy_us)
    train = plan.mask(data.timestamp_us, "train") & data.has_label
    validation = plan.mask(data.timestamp_us, "validation") & data.has_label
    test = plan.mask(data.timestamp_us, "test") & data.has_label
    for name, mask, y in (
        ("train", train, known[train]),
        ("validation", validation, known[validation]),
        ("test", test, data.is_fraud[test]),
    ):
        if mask.sum() == 0 or y.sum() == 0:
            raise DatasetError(_empty_part_message(name, mask, data, plan))
    return Splits(
        plan=plan,
        train=train,
        validation=validation,
        test=test,
        y_train=known[train],
        y_validation=known[validation],
        y_test=data.is_fraud[test].astype(np.int8),
    )


def _empty_part_message(name: str, mask: np.ndarray, data: LabelledFeatures, plan: SplitPlan) -> str:
    """Why a part has nothing to learn from, naming the real cause (issue 13): frauds whose labels were
    not known yet at the training cutoff are a label-delay problem, not "too little fraud"."""
    rows, fraud = int(mask.sum()), int(data.is_fraud[mask].sum())
    window = f"{plan.mask_bounds(name)[0].isoformat()} – {plan.mask_bounds(name)[1].isoformat()}"
    if name != "test" and fraud > 0:
        late = data.labelled_us[mask & data.is_fraud]
        known_from = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(late.min()))
        return (
            f"the {name} part ({window}) has {fraud} fraud transaction(s) among {rows} labelled ones, but "
            f"none of their labels was known at the training cutoff {plan.test_start.isoformat()} (the "
            f"test start; the earliest became known {known_from.isoformat()}). Labels count for training "
            "only from labelled_at on; imported rows without a labelled_at get timestamp + the label "
            "delay (--label-delay-days, default 7). Give labelled_at, a label delay matching when your "
            "labels really arrive, a longer TRAIN_GAP_DAYS, or an earlier test window (--test-from)"
        )
    return (
        f"the {name} part ({window}: {rows} labelled transactions, {fraud} fraud) has no fraud to "
        "learn or measure from: give more history, change TRAIN_*_DAYS or choose the test days (--test-from)"
    )


# ------------------------------------------------------------------------------------------ sources
def history_from_database(settings: Settings) -> tuple[History, pd.DataFrame]:
    """The configured database's history and blacklist."""
    from ticketguard.bootstrap import database_engine
    from ticketguard.features.repository import read_blacklist
    from ticketguard.history import read_history

    engine = database_engine(settings, batch=True)
    try:
        with engine.connect() as conn:
            return read_history(conn), read_blacklist(conn)
    finally:
        engine.dispose()


def history_from_file(
    path: Path,
    mapping: Mapping[str, str] | None,
    *,
    events: Path | None = None,
    progress: Progress | None = None,
    notes: list[str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> History:
    """A labelled CSV/Parquet file (any column names, through ``mapping``), checked like an import;
    ``notes`` receives what the user should be told (amounts rounded); ``options`` are further keyword
    arguments of `read_labelled_file` (timezone, label_delay, opaque_ids, id_namespace)."""
    from ticketguard.ingest.service import read_labelled_file

    return read_labelled_file(
        path,
        mapping,
        source="import",
        events_path=events,
        progress=progress,
        notes=notes,
        **dict(options or {}),
    )


# ------------------------------------------------------------------------------------ missingness
OPTIONAL_FIELDS = ("ip_address", "payment_method", "location")


def drop_optional_rows(
    history: History,
    rows: np.ndarray,
    params: FeatureParams,
    *,
    seed: int,
    blacklist: pd.DataFrame | None = None,
) -> tuple[np.ndarray, pd.DataFrame, dict[str, int]]:
    """Features of the transactions at positions ``rows`` as if their caller had left optional fields out.

    Half of the rows lose ip_address, payment_method and location together (an integration that sends
    none of them, like the guide's); the other half lose each of them with probability 1/2. Only the
    transaction itself loses them — its history is what the platform stored — so the features are those
    the serving path computes for such a request. Returns the rows, their features (catalogue order) and
    how many rows lost each field.
    """
    rng = np.random.default_rng(seed)
    tx = history.transactions.iloc[rows]
    n = len(rows)
    together = rng.random(n) < 0.5
    drop = {field: together | (rng.random(n) < 0.5) for field in OPTIONAL_FIELDS}
    queries = tx.copy()
    queries.loc[drop["ip_address"], "ip_address"] = None
    queries.loc[drop["payment_method"], "payment_method"] = None
    queries.loc[drop["location"], ["latitude", "longitude", "country"]] = None
    from ticketguard.features.offline import OfflineFeatures

    features = OfflineFeatures(params).compute(history, queries, blacklist=blacklist)
    return rows, features.reset_index(drop=True), {f: int(m.sum()) for f, m in drop.items()}
