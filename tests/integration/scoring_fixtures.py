"""Helpers for the scoring API tests: a small model whose decisions are known, and a real uvicorn server.

The model is trained on two request-driven features so every rung of the ladder can be reached on purpose:
``is_resale`` and ``new_ip_for_wallet`` (1 when the request carries an IP the wallet never used). Training
labels are drawn with these fraud rates, which XGBoost learns closely:

    primary, no new IP → 0.02 (APPROVED)          resale, no new IP → 0.50 (REQUIRE_2FA)
    primary, new IP    → 0.75 (MANUAL_REVIEW)     resale, new IP    → 0.97 (BLOCKED)
"""

from __future__ import annotations

import functools
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
import xgboost as xgb
from sqlalchemy import Engine

from ticketguard.api.app import create_app
from ticketguard.config import Settings
from ticketguard.features.specs import FEATURE_NAMES
from ticketguard.ml.registry import DirectoryStore, ModelCard, ModelRegistry

NAMES = list(FEATURE_NAMES)
RATES = {(0, 0): 0.02, (1, 0): 0.50, (0, 1): 0.75, (1, 1): 0.97}


@functools.lru_cache(maxsize=4)
def _ladder_raw(seed: int, rounds: int) -> bytes:
    rng = np.random.default_rng(seed)
    n = 40_000
    x = np.zeros((n, len(NAMES)), dtype=np.float32)
    resale = rng.integers(0, 2, n)
    new_ip = rng.integers(0, 2, n)
    x[:, NAMES.index("is_resale")] = resale
    x[:, NAMES.index("new_ip_for_wallet")] = new_ip
    rate = np.array([RATES[(int(a), int(b))] for a, b in zip(resale, new_ip, strict=True)])
    y = (rng.random(n) < rate).astype(int)
    matrix = xgb.DMatrix(x, label=y, feature_names=NAMES)
    params = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.3, "nthread": 1, "seed": seed}
    return bytes(xgb.train(params, matrix, rounds).save_raw(raw_format="ubj"))


def ladder_booster(seed: int = 0, rounds: int = 60) -> xgb.Booster:
    booster = xgb.Booster()
    booster.load_model(bytearray(_ladder_raw(seed, rounds)))
    return booster


def model_card(version: str) -> ModelCard:
    return ModelCard(
        version=version,
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
        sha256="",
        artifact_uri="",
        feature_names=NAMES,
        params={},
        metrics={"test": {"auc_roc": 0.9}},
        training_window_start=None,
        training_window_end=None,
        n_rows=40_000,
        n_fraud=0,
    )


def register_model(
    engine: Engine, model_dir: Path, version: str, booster: xgb.Booster, *, promote: bool
) -> None:
    registry = ModelRegistry(DirectoryStore(model_dir))
    with engine.begin() as conn:
        registry.register(conn, booster, model_card(version))
        if promote:
            registry.promote(conn, version, actor="test")


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    # These tests drive traffic from one client IP; rate limits are the security tests' subject (they set
    # their own), so here they are out of the way unless a test asks for them.
    for limit in ("rate_limit_ip", "rate_limit_user", "rate_limit_global"):
        overrides.setdefault(limit, 1_000_000)
    # The operations routes' own limits too (tests poll /health): merged over the defaults.
    overrides.setdefault("rate_limit_routes", {"/health": 1_000_000, "/metrics": 1_000_000})
    # `running_api` serves from one in-thread uvicorn: one worker, so FEATURE_STATE=auto serves features
    # from the in-process state (the production path); tests of the SQL path set feature_state="sql".
    overrides.setdefault("api_workers", 1)
    return Settings(database_url=database_url, data_dir=data_dir, _env_file=None, **overrides)  # type: ignore[call-arg]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_api(settings: Settings, **app_kwargs: Any) -> Iterator[str]:
    """The app under a real uvicorn on 127.0.0.1 and a free port, in a thread; yields the base URL."""
    app = create_app(settings, **app_kwargs)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wallet() -> str:
    return "0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8]


def txn_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def request_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transaction_id": txn_id(),
        "wallet_address": wallet(),
        "ticket_id": "evt_001-000001",
        "price_paid": 50.0,
        "event_id": "evt_001",
    }
    body.update(overrides)
    return body
