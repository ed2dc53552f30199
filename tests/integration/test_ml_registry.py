"""Model registry on SQLite and PostgreSQL: checksum and feature-list refusals, promote/rollback, serving."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from sqlalchemy import Engine, select

from ticketguard import tables
from ticketguard.features.specs import FEATURE_NAMES
from ticketguard.ml.registry import (
    DirectoryStore,
    FeatureMismatchError,
    ModelCard,
    ModelIntegrityError,
    ModelRegistry,
    RegistryError,
    read_model_file,
    write_model_file,
)
from ticketguard.ml.serving import LiveModel, ServingModel

NAMES = list(FEATURE_NAMES)


def tiny_booster(seed: int) -> xgb.Booster:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, len(NAMES))).astype(np.float32)
    y = (x[:, 0] + x[:, 3] * 0.5 + rng.normal(scale=0.5, size=400) > 1).astype(int)
    matrix = xgb.DMatrix(x, label=y, feature_names=NAMES)
    return xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": seed}, matrix, 15)


def card(version: str, names: list[str] = NAMES) -> ModelCard:
    return ModelCard(
        version=version,
        created_at=datetime(2026, 5, 1, tzinfo=UTC),
        sha256="",
        artifact_uri="",
        feature_names=names,
        params={"threshold_best_f1": 0.5},
        metrics={"test": {"auc_roc": 0.9, "auc_pr": 0.5}},
        training_window_start=datetime(2026, 1, 1, tzinfo=UTC),
        training_window_end=datetime(2026, 4, 1, tzinfo=UTC),
        n_rows=400,
        n_fraud=40,
    )


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(DirectoryStore(tmp_path / "models"))


def test_register_load_and_refuse_a_changed_artifact(
    engine: Engine, registry: ModelRegistry, tmp_path: Path
) -> None:
    booster = tiny_booster(1)
    with engine.begin() as conn:
        registered = registry.register(conn, booster, card("v1.0.0"))
    assert (tmp_path / "models" / "v1.0.0" / "model.ubj").exists()
    with engine.connect() as conn:
        loaded, stored = registry.load(conn, "v1.0.0", FEATURE_NAMES)
        row = conn.execute(
            select(tables.model_registry).where(tables.model_registry.c.version == "v1.0.0")
        ).one()
    assert stored.sha256 == registered.sha256 == row.sha256
    assert row.feature_names == NAMES
    assert set(row.library_versions) >= {"xgboost", "numpy", "python"}
    x = np.random.default_rng(0).normal(size=(5, len(NAMES))).astype(np.float32)
    np.testing.assert_allclose(loaded.inplace_predict(x), booster.inplace_predict(x))

    artifact = tmp_path / "models" / "v1.0.0" / "model.ubj"
    payload = bytearray(artifact.read_bytes())
    payload[-10] ^= 0xFF
    artifact.write_bytes(bytes(payload))
    with engine.connect() as conn, pytest.raises(ModelIntegrityError, match="does not match the registered"):
        registry.load(conn, "v1.0.0", FEATURE_NAMES)


def test_refuses_a_model_trained_on_other_features(engine: Engine, registry: ModelRegistry) -> None:
    with engine.begin() as conn:
        registry.register(conn, tiny_booster(2), card("v2"))
    older_code = [*NAMES[:-1], "retired_feature"]
    with engine.connect() as conn, pytest.raises(FeatureMismatchError) as error:
        registry.load(conn, "v2", older_code)
    message = str(error.value)
    assert "'retired_feature'" in message
    assert f"'{NAMES[-1]}'" in message
    assert "Retrain" in message


def test_a_model_of_selected_features_loads_and_reads_them_by_name(
    engine: Engine, registry: ModelRegistry
) -> None:
    # Training keeps the features its selection chose (ml.selection): a subset, in its own order.
    kept = [NAMES[5], NAMES[0], NAMES[40]]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
        xgb.DMatrix(x, label=y, feature_names=kept),
        10,
    )
    with engine.begin() as conn:
        registry.register(conn, booster, card("sub", kept))
    with engine.connect() as conn:
        loaded, loaded_card = registry.load(conn, "sub", FEATURE_NAMES)
    model = ServingModel(loaded, loaded_card)
    features = {name: 0.0 for name in NAMES} | {NAMES[5]: 2.0, NAMES[0]: -1.0, NAMES[40]: 3.0}
    assert list(model.vector(features)) == [2.0, -1.0, 3.0]
    assert model.predict(model.vector(features)) == pytest.approx(
        float(booster.inplace_predict(np.array([[2.0, -1.0, 3.0]], dtype=np.float32))[0])
    )
    # A feature the code does not compute (any more) is refused, named.
    with engine.begin() as conn:
        registry.register(conn, booster, card("sub2", [NAMES[5], NAMES[0], "retired_feature"]))
    with engine.connect() as conn, pytest.raises(FeatureMismatchError, match="'retired_feature'"):
        registry.load(conn, "sub2", FEATURE_NAMES)


def test_promote_rollback_and_live_version(engine: Engine, registry: ModelRegistry) -> None:
    with engine.begin() as conn:
        for i, version in enumerate(("a1", "a2", "a3")):
            registry.register(conn, tiny_booster(i), card(version))
        assert registry.live_version(conn) is None
        with pytest.raises(RegistryError, match="nothing to roll back"):
            registry.rollback(conn, actor="t")
        registry.promote(conn, "a1", actor="t")
        registry.promote(conn, "a2", actor="t")
        registry.promote(conn, "a3", actor="t")
        with pytest.raises(RegistryError, match="already live"):
            registry.promote(conn, "a3", actor="t")
        with pytest.raises(RegistryError, match="no model version 'zz'"):
            registry.promote(conn, "zz", actor="t")
        assert registry.rollback(conn, actor="t").model_version == "a2"
        assert registry.live_version(conn) == "a2"
        # Rolling back again returns to the model live before a2's return: a3.
        assert registry.rollback(conn, actor="t").model_version == "a3"
        actions = [d.action for d in registry.deployments(conn)]
    assert actions == ["promote", "promote", "promote", "rollback", "rollback"]
    with engine.begin() as conn, pytest.raises(RegistryError, match="already registered"):
        registry.register(conn, tiny_booster(9), card("a1"))


def test_serving_predicts_one_row_and_explains_exactly(engine: Engine, registry: ModelRegistry) -> None:
    booster = tiny_booster(3)
    with engine.begin() as conn:
        registry.register(conn, booster, card("s1"))
        registry.promote(conn, "s1", actor="t")
    live = LiveModel(engine, registry)
    model = live.get()
    assert isinstance(model, ServingModel)
    assert model.version == "s1"
    assert live.get() is model  # loaded once
    features = {name: float(i % 5) - 2.0 for i, name in enumerate(NAMES)}
    row = model.vector(features)
    assert row.dtype == np.float32
    expected = float(booster.inplace_predict(row.reshape(1, -1))[0])
    assert model.predict(row) == pytest.approx(expected, rel=1e-6)
    for approximate in (False, True):
        why = model.explain(row, approximate=approximate)
        assert why.bias + sum(why.contributions.values()) == pytest.approx(model.margin(row), abs=1e-4)
        assert why.score == pytest.approx(expected, rel=1e-5)
        assert len(why.top(3)) == 3
    with pytest.raises(ValueError, match="feature 'txn_velocity_1h' missing"):
        model.vector({})

    with engine.begin() as conn:
        registry.register(conn, tiny_booster(4), card("s2"))
        registry.promote(conn, "s2", actor="t")
    assert live.refresh() is True
    assert live.get().version == "s2"
    assert live.refresh() is False


def test_exported_file_round_trips_and_refuses_pickle(tmp_path: Path) -> None:
    booster = tiny_booster(5)
    path, meta = write_model_file(tmp_path / "fraud_model_v1.2.3.ubj", booster, card("v1.2.3"))
    assert meta.name == "fraud_model_v1.2.3.metadata.json"
    _, stored = read_model_file(path, FEATURE_NAMES)
    assert stored.version == "v1.2.3"
    with pytest.raises(RegistryError, match="never pickled"):
        write_model_file(tmp_path / "fraud_model.pkl", booster, card("v9"))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ModelIntegrityError):
        read_model_file(path, FEATURE_NAMES)


def test_pinned_version_wins_over_the_live_one(engine: Engine, registry: ModelRegistry) -> None:
    with engine.begin() as conn:
        registry.register(conn, tiny_booster(6), card("p1"))
        registry.register(conn, tiny_booster(7), card("p2"))
        registry.promote(conn, "p2", actor="t")
    assert LiveModel(engine, registry, pinned_version="p1").get().version == "p1"
    assert LiveModel(engine, registry).get().version == "p2"
    with pytest.raises(RegistryError, match="no model version 'p9'"):
        LiveModel(engine, registry, pinned_version="p9").get()


def test_no_live_model_is_a_clear_error(engine: Engine, registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="no model is live"):
        LiveModel(engine, registry).get()


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_object_store_url_registers_loads_and_refuses_tampering(
    engine: Engine, tmp_path: Path, scheme: str
) -> None:
    """MODEL_STORE_URL: artifacts in an fsspec object store (memory:// and file:// stand in for s3:// —
    the same fsspec calls, with no network here)."""
    import uuid

    from ticketguard.config import Settings
    from ticketguard.ml.registry import ObjectStore, artifact_store

    url = f"memory://models-{uuid.uuid4().hex[:8]}" if scheme == "memory" else f"file://{tmp_path}/bucket"
    store = artifact_store(Settings(model_store_url=url, data_dir=tmp_path / "data"))
    assert isinstance(store, ObjectStore)
    registry = ModelRegistry(store)
    booster = tiny_booster(3)
    with engine.begin() as conn:
        registry.register(conn, booster, card("v3.0.0"))
    with engine.connect() as conn:
        loaded, _ = registry.load(conn, "v3.0.0", FEATURE_NAMES)
    x = np.random.default_rng(1).normal(size=(4, len(NAMES))).astype(np.float32)
    np.testing.assert_allclose(loaded.inplace_predict(x), booster.inplace_predict(x))
    assert not (tmp_path / "data" / "models").exists()  # nothing went to the directory store

    with pytest.raises(RegistryError, match="already exist"):  # the store refuses to overwrite, too
        store.put("v3.0.0", {"model.ubj": b"other"})

    payload = bytearray(store.get("v3.0.0/model.ubj"))
    payload[-10] ^= 0xFF
    store.fs.pipe_file(f"{store.root}/v3.0.0/model.ubj", bytes(payload))
    with engine.connect() as conn, pytest.raises(ModelIntegrityError):
        registry.load(conn, "v3.0.0", FEATURE_NAMES)
    with pytest.raises(RegistryError, match="not <version>/<file>"):
        store.get("../etc/passwd")


def test_object_store_url_without_its_filesystem_package_is_a_clear_error() -> None:
    from ticketguard.ml.registry import ObjectStore

    with pytest.raises(RegistryError, match="MODEL_STORE_URL 'nosuchproto://x' cannot be opened"):
        ObjectStore("nosuchproto://x")
