"""Online execution of the feature catalogue: the features of one transaction from the stores' current state.

The scoring API calls ``OnlineFeatures.compute(txn) -> dict[str, float]`` inside a request. Where the
primitives come from is a small interface, `FeatureSource`: `SqlFeatureSource` reads them from the database
(one round trip, plus one when the request has a location); a cache (Redis, in-process) can implement the
same protocol in front of it. The primitives are finished by `specs.finish_one`, the one-row twin of the
`specs.finish` the offline side uses (tests/unit/test_features_finish.py holds the two equal), so a parity
test (tests/integration/test_features_parity.py) holds both executions equal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine

from ticketguard.features.offline import OfflineFeatures
from ticketguard.features.repository import TransactionFacts, epoch_seconds, read_primitives
from ticketguard.features.specs import FEATURE_NAMES, FeatureParams, finish_one, primitive_names
from ticketguard.history import TRANSACTION_COLUMNS, History, conform


class FeatureSource(Protocol):
    """Where online features read their primitives (counts, sums, times known before the transaction)."""

    def primitives(self, txn: TransactionFacts) -> dict[str, float]: ...


class SqlFeatureSource:
    """Primitives straight from the database: one short read-only connection per call, or the caller's."""

    def __init__(self, engine: Engine, params: FeatureParams) -> None:
        self.engine = engine
        self.params = params

    def primitives(self, txn: TransactionFacts) -> dict[str, float]:
        with self.engine.connect() as conn:
            return read_primitives(conn, txn, self.params)

    def primitives_in(self, conn: Connection, txn: TransactionFacts) -> dict[str, float]:
        """Inside a transaction the caller owns (the API's request transaction)."""
        return read_primitives(conn, txn, self.params)


class OnlineFeatures:
    """``compute(txn)`` → the catalogue's features, in `FEATURE_NAMES` order."""

    def __init__(self, source: FeatureSource, params: FeatureParams) -> None:
        self.source = source
        self.params = params
        self._expected = set(primitive_names(params))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return FEATURE_NAMES

    def compute(self, txn: TransactionFacts) -> dict[str, float]:
        return self.finish(txn, self.source.primitives(txn))

    def compute_many(self, txns: Iterable[TransactionFacts]) -> list[dict[str, float]]:
        return [self.compute(txn) for txn in txns]

    def finish(self, txn: TransactionFacts, primitives: dict[str, float]) -> dict[str, float]:
        missing = self._expected - primitives.keys()
        if missing:
            raise ValueError(f"feature source returned no value for primitives {sorted(missing)}")
        q = {
            "timestamp_s": epoch_seconds(txn.timestamp),
            "price_paid": float(txn.price_paid),
            "is_resale": float(txn.is_resale),
            "has_seller": float(txn.seller_address is not None),
            "has_payment_method": float(txn.payment_method is not None),
            "has_ticket": float(txn.ticket_id is not None),
            "has_ip": float(txn.ip_address is not None),
            "latitude": math.nan if txn.latitude is None else float(txn.latitude),
            "longitude": math.nan if txn.longitude is None else float(txn.longitude),
        }
        return finish_one(primitives, q, self.params)


def as_vector(features: dict[str, float], names: Iterable[str] = FEATURE_NAMES) -> np.ndarray:
    """A float32 row in the model's feature order (what `ml.serving` predicts on)."""
    return np.array([features[name] for name in names], dtype=np.float32)


class HistoryFeatureSource:
    """In-memory `FeatureSource` over History frames, executed by the offline engine: for tests and tools
    that have no database. Same answers as `SqlFeatureSource` (both are held to the offline definitions)."""

    def __init__(
        self, history: History, params: FeatureParams, *, blacklist: pd.DataFrame | None = None
    ) -> None:
        self.history = history
        self.params = params
        self.blacklist = blacklist
        self._engine = OfflineFeatures(params)

    def primitives(self, txn: TransactionFacts) -> dict[str, float]:
        row = {name: getattr(txn, name) for name in TransactionFacts.__dataclass_fields__}
        row["price_paid"] = float(txn.price_paid)
        query = conform(pd.DataFrame([row]), TRANSACTION_COLUMNS)
        prims, _ = self._engine.primitives(self.history, query, blacklist=self.blacklist)
        return {name: float(values[0]) for name, values in prims.items()}
