"""Serving: the live model loaded once per process, one-row predictions, and explanations.

The scoring API (next issue) uses it like this::

    live = LiveModel.from_settings(settings, engine)         # at start-up
    model = live.get()                                       # per request: the loaded model, no I/O
    row = model.vector(features)                             # dict from OnlineFeatures.compute → float32 row
    score = model.predict(row)                               # inplace_predict, one OpenMP thread
    why = model.explain(row, approximate=True)               # bias + contributions == margin
    live.refresh()                                           # now and then: reload if the live version moved

One thread per booster (``nthread=1``): API workers are processes, and OpenMP threads fighting over the
same cores cost more than they give for one row. No DMatrix is built for a prediction; explanations need
one (XGBoost computes contributions only from a DMatrix), so the API decides which requests get them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from sqlalchemy import Engine

from ticketguard.config import Settings
from ticketguard.features.specs import FEATURE_NAMES
from ticketguard.ml.registry import ModelCard, ModelRegistry, RegistryError, artifact_store


@dataclass(frozen=True)
class Explanation:
    score: float
    margin: float
    bias: float
    contributions: dict[str, float]  # log-odds contribution per feature; bias + sum == margin

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The k features that pushed the score most, either way, largest first."""
        return sorted(self.contributions.items(), key=lambda kv: -abs(kv[1]))[:k]


class ServingModel:
    def __init__(self, booster: xgb.Booster, card: ModelCard) -> None:
        booster.set_param({"nthread": 1})
        self.booster = booster
        self.card = card
        self.version = card.version
        self.feature_names: tuple[str, ...] = tuple(card.feature_names)

    def vector(self, features: Mapping[str, float]) -> np.ndarray:
        """The model's input row (float32, model feature order); every model feature must be present."""
        try:
            return np.array([features[name] for name in self.feature_names], dtype=np.float32)
        except KeyError as exc:
            raise ValueError(
                f"feature {exc.args[0]!r} missing: model {self.version} needs {list(self.feature_names)}"
            ) from None

    def _row(self, row: np.ndarray) -> np.ndarray:
        row = np.asarray(row, dtype=np.float32)
        if row.shape[-1] != len(self.feature_names):
            raise ValueError(
                f"row has {row.shape[-1]} values, model {self.version} takes {len(self.feature_names)}"
            )
        return row.reshape(1, -1) if row.ndim == 1 else row

    def predict(self, row: np.ndarray) -> float:
        """Fraud probability of one row."""
        return float(self.booster.inplace_predict(self._row(row), validate_features=False)[0])

    def predict_many(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(
            self.booster.inplace_predict(self._row(rows), validate_features=False), dtype=np.float64
        )

    def margin(self, row: np.ndarray) -> float:
        return float(
            self.booster.inplace_predict(self._row(row), predict_type="margin", validate_features=False)[0]
        )

    def explain(self, row: np.ndarray, *, approximate: bool = False) -> Explanation:
        """TreeSHAP contributions (exact), or Saabas-style path contributions (``approximate``, ~5× faster).
        Both add up with the bias to the margin."""
        matrix = xgb.DMatrix(self._row(row), feature_names=list(self.feature_names), nthread=1)
        values = self.booster.predict(matrix, pred_contribs=True, approx_contribs=approximate)[0]
        margin = float(values.sum())
        return Explanation(
            score=float(1.0 / (1.0 + np.exp(-margin))),
            margin=margin,
            bias=float(values[-1]),
            contributions={name: float(v) for name, v in zip(self.feature_names, values[:-1], strict=True)},
        )


class LiveModel:
    """Holds the live (or pinned) model of one process; `refresh()` reloads when the deployment changed."""

    def __init__(
        self,
        engine: Engine,
        registry: ModelRegistry,
        *,
        pinned_version: str | None = None,
        expected_features: Sequence[str] = FEATURE_NAMES,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.pinned_version = pinned_version
        self.expected_features = tuple(expected_features)
        self._model: ServingModel | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> LiveModel:
        return cls(
            engine,
            ModelRegistry(artifact_store(settings)),
            pinned_version=settings.model_version,
        )

    def _wanted_version(self) -> str:
        if self.pinned_version:
            return self.pinned_version
        with self.engine.connect() as conn:
            version = self.registry.live_version(conn)
        if version is None:
            raise RegistryError("no model is live: train one (`ticketguard train`) and promote it")
        return version

    def _load(self, version: str) -> ServingModel:
        with self.engine.connect() as conn:
            booster, card = self.registry.load(conn, version, self.expected_features, nthread=1)
        return ServingModel(booster, card)

    def get(self) -> ServingModel:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load(self._wanted_version())
        return self._model

    def refresh(self) -> bool:
        """Reload if the live version is not the loaded one; True when it changed."""
        wanted = self._wanted_version()
        if self._model is not None and self._model.version == wanted:
            return False
        model = self._load(wanted)
        with self._lock:
            self._model = model
        return True
