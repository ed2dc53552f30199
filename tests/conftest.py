"""Shared fixtures: databases built through the migrations, on SQLite and on a real PostgreSQL; Redis.

Service discovery: `TEST_POSTGRES_URL` or a PostgreSQL `DATABASE_URL`; `TEST_REDIS_URL` or `REDIS_URL`;
otherwise the machine's defaults (127.0.0.1:5432/test, 127.0.0.1:6379) if they answer. When a service
cannot be reached, its tests are skipped with a reason — except with `CI=true`, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from ticketguard.kit import migrate
from ticketguard.kit.db import make_engine

# Shared fixtures of other rooms (a recording HTTP receiver for notifier and callback tests).
pytest_plugins = ("delivery_fixtures",)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def _reachable(url: str) -> bool:
    parsed = urlparse(url.replace("+psycopg", ""))
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=0.5):
            return True
    except OSError:
        return False


def _discover_postgres_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL") or os.environ.get("DATABASE_URL") or DEFAULT_PG
    if not url.startswith("postgres"):
        url = DEFAULT_PG
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


# Read once at import: the autouse fixture below clears these variables so Settings built in tests
# never pick them up by accident.
POSTGRES_URL = _discover_postgres_url()
REDIS_URL = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL") or DEFAULT_REDIS


def _unavailable(service: str, url: str) -> None:
    shown = make_url(url).render_as_string(hide_password=True) if "://" in url else url
    message = f"{service} not reachable at {shown}"
    if IN_CI:
        pytest.fail(f"{message}: with CI=true every {service} test must run", pytrace=False)
    pytest.skip(f"{message} (set TEST_{service.upper()}_URL); skipped")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests build Settings explicitly; a developer's `.env` or exported variables must not leak in."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(
            ("DB_", "REDIS_", "FRAUD_THRESHOLD", "RATE_LIMIT", "JWT_", "ADMIN_MFA")
        ) or name in (
            "DATABASE_URL",
            "ENVIRONMENT",
            "DEBUG",
            "DATA_DIR",
            "MODEL_VERSION",
            "MODEL_DIR",
        ):
            monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------------------------------------- SQLite
@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh SQLite database at head, copied from one migrated once per session."""
    path = tmp_path / f"tg-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


# ------------------------------------------------------------------------------------------- PostgreSQL
@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = POSTGRES_URL
    if not _reachable(url):
        _unavailable("postgres", url)
    return url


def _admin_engine(url: str) -> Engine:
    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=None)


@pytest.fixture(scope="session")
def _postgres_template(postgres_admin_url: str) -> Iterator[str]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"tg_template_{worker}_{uuid.uuid4().hex[:6]}"
    admin = _admin_engine(postgres_admin_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    template_url = make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(template_url)
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_url(postgres_admin_url: str, _postgres_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database at head, cloned from a template migrated once per session."""
    name = f"tg_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(postgres_admin_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{_postgres_template}"'))
    yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def empty_postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, never-migrated PostgreSQL database (for migration tests)."""
    name = f"tg_empty_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(postgres_admin_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# ------------------------------------------------------------------------------------------- both
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh migrated database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


# ------------------------------------------------------------------------------------------- Redis
@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database for this test (one logical db per xdist worker), flushed before and after."""
    base = REDIS_URL
    if not _reachable(base):
        _unavailable("redis", base)
    import redis

    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = 1 + (int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0) % 14
    parsed = urlparse(base)
    url = parsed._replace(path=f"/{index}").geturl()
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private redis-server on a free port, for tests that pause or kill Redis (the shared one never is).
    Yields its URL and its process."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("redis", "redis-server binary (PATH)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_timeout=0.2)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.RedisError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("private redis-server did not start")
            time.sleep(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.kill()
    proc.wait(5)


# ------------------------------------------------------------------------------------------- keys
@pytest.fixture(scope="session")
def rsa_pair() -> tuple[str, str]:
    """A fresh RSA-2048 key pair (private PKCS8 PEM, public SPKI PEM) for RS256 tokens."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public
