"""Model registry: artifacts in XGBoost's UBJ format with a sha256; metadata and deployments in the database.

- Artifacts live in an `ArtifactStore`: `DirectoryStore` under Settings.resolved_model_dir, or
  `ObjectStore` at MODEL_STORE_URL (any fsspec URL: s3://, gs://, az://, … with that filesystem's package
  installed). The registry row keeps the artifact's URI relative to the store.
- Which model is live is the latest `model_deployments` row (promote / rollback append rows; nothing is
  overwritten, so the history of what served when stays).
- Loading re-hashes the bytes and compares the model's ordered feature list with the code's catalogue;
  either mismatch refuses with a message that says what differs. Never pickle: a pickle runs code on load.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import xgboost as xgb
from sqlalchemy import Connection, insert, select

from ticketguard import tables
from ticketguard.config import Settings

ARTIFACT_NAME = "model.ubj"
METADATA_NAME = "metadata.json"
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


class RegistryError(ValueError):
    """A registry operation was refused; the message says why and what to do."""


class ModelIntegrityError(RegistryError):
    """The artifact's bytes are not the ones registered."""


class FeatureMismatchError(RegistryError):
    """The model was trained on a different feature list than the code computes."""


def library_versions() -> dict[str, str]:
    import numpy
    import pandas
    import sklearn

    from ticketguard import __version__

    return {
        "xgboost": xgb.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
        "ticketguard": __version__,
    }


def new_version(now: datetime) -> str:
    return now.astimezone(UTC).strftime("fraud-%Y%m%d-%H%M%S")


def check_version(version: str) -> str:
    if not VERSION_RE.match(version):
        raise RegistryError(
            f"model version {version!r} must be 1–32 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. v1.2.3)"
        )
    return version


@dataclass
class ModelCard:
    """What the registry knows about one model."""

    version: str
    created_at: datetime
    sha256: str
    artifact_uri: str
    feature_names: list[str]
    params: dict[str, Any]
    metrics: dict[str, Any]
    training_window_start: datetime | None
    training_window_end: datetime | None
    n_rows: int
    n_fraud: int
    library_versions: dict[str, str] = field(default_factory=library_versions)
    notes: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("created_at", "training_window_start", "training_window_end"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        values = dict(data)
        for key in ("created_at", "training_window_start", "training_window_end"):
            if values.get(key) is not None:
                values[key] = datetime.fromisoformat(values[key])
        kwargs: dict[str, Any] = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        return cls(**kwargs)


def sha256_hex(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def check_features(card: ModelCard, expected: Sequence[str]) -> None:
    """The model's features must all be computed by the code (``expected``). A model may use fewer — the
    features its training selected (`ticketguard.ml.selection`); it reads them by name."""
    got = list(card.feature_names)
    want = list(expected)
    extra = [n for n in got if n not in want]
    duplicated = len(set(got)) != len(got)
    if not extra and not duplicated and got:
        return
    unused = [n for n in want if n not in got]
    detail = []
    if extra:
        detail.append(f"the model expects {extra} which the code no longer computes")
        if unused:
            more = f" and {len(unused) - 10} more" if len(unused) > 10 else ""
            detail.append(f"the code computes {unused[:10]}{more} which the model does not use")
    if duplicated:
        detail.append("the model lists a feature twice")
    if not got:
        detail.append("the model lists no features")
    raise FeatureMismatchError(
        f"model {card.version} was trained on {len(got)} features, the code computes {len(want)}: "
        + "; ".join(detail)
        + ". Retrain (`ticketguard train`) or deploy a model built for this code."
    )


def load_booster(
    payload: bytes, card: ModelCard, expected_features: Sequence[str], *, nthread: int
) -> xgb.Booster:
    """A booster from verified bytes: sha256 and feature list checked before XGBoost parses anything."""
    digest = sha256_hex(payload)
    if digest != card.sha256:
        raise ModelIntegrityError(
            f"model {card.version}: artifact sha256 {digest[:16]}… does not match the registered "
            f"{card.sha256[:16]}…: the file was changed or corrupted; refusing to load it"
        )
    check_features(card, expected_features)
    booster = xgb.Booster(params={"nthread": nthread})
    booster.load_model(bytearray(payload))
    if booster.feature_names is not None and list(booster.feature_names) != list(card.feature_names):
        raise FeatureMismatchError(
            f"model {card.version}: the artifact's own feature names differ from its registry entry"
        )
    return booster


# ------------------------------------------------------------------------------------------ stores
class ArtifactStore(Protocol):
    """Where artifact bytes live; URIs are the store's own (relative) names."""

    def put(self, version: str, files: dict[str, bytes]) -> dict[str, str]: ...

    def get(self, uri: str) -> bytes: ...

    def delete(self, version: str) -> None: ...


class DirectoryStore:
    """Artifacts under one directory: ``<root>/<version>/model.ubj`` (+ metadata.json), written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, version: str, files: dict[str, bytes]) -> dict[str, str]:
        folder = self.root / check_version(version)
        if folder.exists() and any(folder.iterdir()):
            raise RegistryError(
                f"artifacts for model {version} already exist in {folder}; pick another version"
            )
        folder.mkdir(parents=True, exist_ok=True)
        uris = {}
        for name, payload in files.items():
            target = folder / name
            partial = target.with_suffix(target.suffix + ".partial")
            partial.write_bytes(payload)
            partial.replace(target)
            uris[name] = f"{version}/{name}"
        return uris

    def delete(self, version: str) -> None:
        folder = self.root / check_version(version)
        for child in folder.glob("*"):
            child.unlink()
        if folder.exists():
            folder.rmdir()

    def get(self, uri: str) -> bytes:
        path = (self.root / uri).resolve()
        if self.root.resolve() not in path.parents:
            raise RegistryError(f"artifact URI {uri!r} points outside the model directory {self.root}")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise RegistryError(f"artifact {uri!r} is missing from the model directory {self.root}") from None


class ObjectStore:
    """Artifacts in an object store (or any fsspec filesystem): ``<url>/<version>/model.ubj`` (+ metadata).

    Object writes are atomic per object; the sha256 in the database is checked on every load, so a partial
    or tampered object is refused, never served."""

    def __init__(self, url: str) -> None:
        import fsspec

        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise RegistryError(f"MODEL_STORE_URL {url!r} cannot be opened: {exc}") from None
        self.url = url
        self.root = root.rstrip("/")

    def _path(self, uri: str) -> str:
        parts = uri.split("/")
        if len(parts) != 2 or parts[0] != check_version(parts[0]) or parts[1] in ("", ".", ".."):
            raise RegistryError(f"artifact URI {uri!r} is not <version>/<file>")
        return f"{self.root}/{uri}"

    def put(self, version: str, files: dict[str, bytes]) -> dict[str, str]:
        folder = f"{self.root}/{check_version(version)}"
        if self.fs.exists(folder) and self.fs.ls(folder):
            raise RegistryError(
                f"artifacts for model {version} already exist in {self.url}; pick another version"
            )
        self.fs.makedirs(folder, exist_ok=True)  # a no-op on object stores, needed on file://
        uris = {}
        for name, payload in files.items():
            self.fs.pipe_file(f"{folder}/{name}", payload)
            uris[name] = f"{version}/{name}"
        return uris

    def get(self, uri: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._path(uri)))
        except FileNotFoundError:
            raise RegistryError(f"artifact {uri!r} is missing from the model store {self.url}") from None

    def delete(self, version: str) -> None:
        folder = f"{self.root}/{check_version(version)}"
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)


def artifact_store(settings: Settings) -> ArtifactStore:
    """MODEL_STORE_URL when configured, else the directory MODEL_DIR (default DATA_DIR/models)."""
    if settings.model_store_url:
        return ObjectStore(settings.model_store_url)
    return DirectoryStore(settings.resolved_model_dir)


# ------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Deployment:
    model_version: str
    action: str
    actor: str | None
    reason: str | None
    deployed_at: datetime


class ModelRegistry:
    """Register, list, promote, roll back and load models. Methods take the caller's connection: the
    entrypoint owns the transaction."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def register(self, conn: Connection, booster: xgb.Booster, card: ModelCard) -> ModelCard:
        check_version(card.version)
        if self._row(conn, card.version) is not None:
            raise RegistryError(f"model version {card.version} is already registered; pick another version")
        payload = bytes(booster.save_raw(raw_format="ubj"))
        card.sha256 = sha256_hex(payload)
        metadata = json.dumps(card.to_json(), indent=2, default=str).encode()
        uris = self.store.put(card.version, {ARTIFACT_NAME: payload, METADATA_NAME: metadata})
        card.artifact_uri = uris[ARTIFACT_NAME]
        try:
            self._insert(conn, card)
        except Exception:
            # The row is rolled back with the caller's transaction; the files must not outlive it.
            self.store.delete(card.version)
            raise
        return card

    def _insert(self, conn: Connection, card: ModelCard) -> None:
        conn.execute(
            insert(tables.model_registry).values(
                version=card.version,
                created_at=card.created_at,
                artifact_uri=card.artifact_uri,
                sha256=card.sha256,
                feature_names=card.feature_names,
                params=card.params,
                metrics=card.metrics,
                training_window_start=card.training_window_start,
                training_window_end=card.training_window_end,
                n_rows=card.n_rows,
                n_fraud=card.n_fraud,
                library_versions=card.library_versions,
                notes=card.notes,
            )
        )

    def _row(self, conn: Connection, version: str) -> Any:
        return conn.execute(
            select(tables.model_registry).where(tables.model_registry.c.version == version)
        ).first()

    def get(self, conn: Connection, version: str) -> ModelCard:
        row = self._row(conn, version)
        if row is None:
            known = ", ".join(c.version for c in self.list_models(conn)[-5:]) or "none registered"
            raise RegistryError(f"no model version {version!r} in the registry (latest: {known})")
        m = row._mapping
        return ModelCard(
            version=m["version"],
            created_at=m["created_at"],
            sha256=m["sha256"],
            artifact_uri=m["artifact_uri"],
            feature_names=list(m["feature_names"]),
            params=m["params"] or {},
            metrics=m["metrics"] or {},
            training_window_start=m["training_window_start"],
            training_window_end=m["training_window_end"],
            n_rows=m["n_rows"] or 0,
            n_fraud=m["n_fraud"] or 0,
            library_versions=m["library_versions"] or {},
            notes=m["notes"],
        )

    def list_models(self, conn: Connection) -> list[ModelCard]:
        versions = conn.execute(
            select(tables.model_registry.c.version).order_by(
                tables.model_registry.c.created_at, tables.model_registry.c.version
            )
        ).scalars()
        return [self.get(conn, v) for v in versions]

    def deployments(self, conn: Connection) -> list[Deployment]:
        d = tables.model_deployments
        rows = conn.execute(select(d).order_by(d.c.deployed_at, d.c.id)).all()
        return [Deployment(r.model_version, r.action, r.actor, r.reason, r.deployed_at) for r in rows]

    def live_version(self, conn: Connection) -> str | None:
        d = tables.model_deployments
        return conn.execute(
            select(d.c.model_version).order_by(d.c.deployed_at.desc(), d.c.id.desc()).limit(1)
        ).scalar()

    def promote(self, conn: Connection, version: str, *, actor: str, reason: str | None = None) -> Deployment:
        self.get(conn, version)  # must exist
        if self.live_version(conn) == version:
            raise RegistryError(f"model {version} is already live")
        return self._deploy(conn, version, "promote", actor, reason)

    def rollback(self, conn: Connection, *, actor: str, reason: str | None = None) -> Deployment:
        """Make the model that was live before the current one live again."""
        history = self.deployments(conn)
        if not history:
            raise RegistryError("no model has been deployed yet: nothing to roll back")
        current = history[-1].model_version
        previous = next((d.model_version for d in reversed(history) if d.model_version != current), None)
        if previous is None:
            raise RegistryError(f"model {current} is the only one ever deployed: nothing to roll back to")
        return self._deploy(conn, previous, "rollback", actor, reason or f"rollback from {current}")

    def _deploy(
        self, conn: Connection, version: str, action: str, actor: str, reason: str | None
    ) -> Deployment:
        now = datetime.now(UTC)
        last = self.deployments(conn)
        if last and last[-1].deployed_at >= now:
            # Keep deployments strictly ordered in time even when two happen within the clock's resolution.
            from datetime import timedelta

            now = last[-1].deployed_at + timedelta(microseconds=1)
        conn.execute(
            insert(tables.model_deployments).values(
                model_version=version, action=action, actor=actor, reason=reason, deployed_at=now
            )
        )
        return Deployment(version, action, actor, reason, now)

    def load(
        self, conn: Connection, version: str, expected_features: Sequence[str], *, nthread: int = 1
    ) -> tuple[xgb.Booster, ModelCard]:
        card = self.get(conn, version)
        payload = self.store.get(card.artifact_uri)
        return load_booster(payload, card, expected_features, nthread=nthread), card


# ------------------------------------------------------------------------------------------ files
def write_model_file(path: Path, booster: xgb.Booster, card: ModelCard) -> tuple[Path, Path]:
    """Export a model beside the registry (``train --output``): the booster in XGBoost's format chosen by
    the extension (.ubj or .json) and ``<stem>.metadata.json`` holding the card and the file's sha256."""
    suffix = path.suffix.lower()
    if suffix not in (".ubj", ".json"):
        raise RegistryError(
            f"--output {path}: models are saved as XGBoost UBJ (.ubj) or JSON (.json), never pickled "
            "(.pkl would run code when loaded)"
        )
    payload = bytes(booster.save_raw(raw_format=suffix[1:]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    file_card = ModelCard.from_json(card.to_json())
    file_card.sha256 = sha256_hex(payload)
    file_card.artifact_uri = path.name
    meta = path.with_name(path.stem + ".metadata.json")
    meta.write_text(json.dumps(file_card.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
    return path, meta


def read_model_file(
    path: Path, expected_features: Sequence[str], *, nthread: int = 1
) -> tuple[xgb.Booster, ModelCard]:
    meta = path.with_name(path.stem + ".metadata.json")
    if not path.exists():
        raise RegistryError(f"model file {path} does not exist")
    if not meta.exists():
        raise RegistryError(
            f"model file {path} has no {meta.name} beside it: its checksum cannot be verified"
        )
    card = ModelCard.from_json(json.loads(meta.read_text(encoding="utf-8")))
    return load_booster(path.read_bytes(), card, expected_features, nthread=nthread), card
