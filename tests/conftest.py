"""Shared fixtures: databases built through the migrations, on SQLite and on a real PostgreSQL; Redis.

PostgreSQL: `TEST_POSTGRES_URL` or a PostgreSQL `DATABASE_URL`, else 127.0.0.1:5432/test. The probe logs in
to that database and checks the role may create databases; each test gets a database of its own, cloned
ahead of time (in a background thread) from a template migrated once per session, and dropped in the
background after it.

Redis: the tests start their own `redis-server` (one per session and xdist worker, on a free port of
127.0.0.1; `TEST_REDIS_SERVER` may name the binary) and flush only that — never a Redis the developer has
configured. Tests that pause or kill Redis get one of their own (`own_redis`).

When a service cannot be had, its tests are skipped with the reason — except with `CI=true`, where that
is a failure (in CI every PostgreSQL and Redis test must run).
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, make_url

from ticketguard.kit import migrate
from ticketguard.kit.db import make_engine

# Shared fixtures of other rooms (a recording HTTP receiver for notifier and callback tests).
pytest_plugins = ("delivery_fixtures",)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


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


def _unavailable(service: str, reason: str) -> None:
    message = f"{service}: {reason}"
    if IN_CI:
        pytest.fail(f"{message} — with CI=true every {service} test must run", pytrace=False)
    pytest.skip(message)


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
def _psycopg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _probe_postgres(url: str) -> str | None:
    """Why the tests cannot use this PostgreSQL, or None: logs in to the database itself (a server that
    answers on the port but lacks the database or the role is not enough) and checks CREATEDB."""
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        with psycopg.connect(_psycopg_dsn(url), connect_timeout=3, autocommit=True) as conn:
            row = conn.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot use {shown}: {first_line} (set TEST_POSTGRES_URL)"
    if not row or not row[0]:
        return f"the role of {shown} may not create databases (each test makes its own)"
    return None


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The server's maintenance database URL (a role that may create databases)."""
    reason = _probe_postgres(POSTGRES_URL)
    if reason is not None:
        _unavailable("postgres", reason)
    return POSTGRES_URL


class _PostgresPool:
    """Per-test databases, cloned from the template before they are asked for and dropped after, both in
    background threads: a test waits for neither CREATE DATABASE nor DROP DATABASE (each ~0.1–1 s on a busy
    server). ``ahead`` clones are kept ready."""

    def __init__(self, admin_url: str, template: str | None, prefix: str, ahead: int) -> None:
        self.admin_url = admin_url
        self.template = template
        self.prefix = prefix
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._slots = threading.Semaphore(ahead)
        self._stopping = threading.Event()
        self._doomed: queue.Queue[str | None] = queue.Queue()
        self._filler = threading.Thread(target=self._fill, name=f"pg-pool-{prefix}", daemon=True)
        self._dropper = threading.Thread(target=self._drop_loop, name=f"pg-drop-{prefix}", daemon=True)
        self._filler.start()
        self._dropper.start()

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(_psycopg_dsn(self.admin_url), autocommit=True, connect_timeout=10)

    def _create(self, conn: psycopg.Connection[tuple[object, ...]]) -> str:
        name = f"{self.prefix}_{uuid.uuid4().hex[:12]}"
        template = f' TEMPLATE "{self.template}"' if self.template else ""
        conn.execute(f'CREATE DATABASE "{name}"{template}')
        return name

    def _fill(self) -> None:
        try:
            with self._admin() as conn:
                while True:
                    self._slots.acquire()
                    if self._stopping.is_set():
                        return
                    self._ready.put(self._create(conn))
        except BaseException as exc:  # handed to the test that waits for a database
            self._ready.put(exc)

    def take(self) -> str:
        try:
            item = self._ready.get(timeout=120)
        except queue.Empty:
            pytest.fail("no PostgreSQL test database could be created within 120 s", pytrace=False)
        if isinstance(item, BaseException):
            self._ready.put(item)  # every later test sees the same failure
            raise item
        self._slots.release()
        return item

    def give_back(self, name: str) -> None:
        self._doomed.put(name)

    def _drop_loop(self) -> None:
        with self._admin() as conn:
            while (name := self._doomed.get()) is not None:
                try:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except Exception as exc:  # one that cannot be dropped must not stop the others
                    print(f"could not drop test database {name}: {exc}")

    def close(self) -> None:
        self._stopping.set()
        self._slots.release()
        self._filler.join(60)
        while True:
            try:
                item = self._ready.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, str):
                self._doomed.put(item)
        self._doomed.put(None)
        self._dropper.join(120)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def _postgres_pool(postgres_admin_url: str) -> Iterator[_PostgresPool]:
    template = f"tg_template_{_worker()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(_psycopg_dsn(postgres_admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{template}"')
    try:
        migrate.upgrade(make_url(postgres_admin_url).set(database=template).render_as_string(False))
        pool = _PostgresPool(postgres_admin_url, template, "tg", ahead=2)
        try:
            yield pool
        finally:
            pool.close()
    finally:
        with psycopg.connect(_psycopg_dsn(postgres_admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _empty_postgres_pool(postgres_admin_url: str) -> Iterator[_PostgresPool]:
    pool = _PostgresPool(postgres_admin_url, None, "tg_empty", ahead=1)
    yield pool
    pool.close()


@pytest.fixture
def postgres_url(postgres_admin_url: str, _postgres_pool: _PostgresPool) -> Iterator[str]:
    """A fresh PostgreSQL database at head, of this test alone (cloned from the session's migrated
    template); dropped after the test."""
    name = _postgres_pool.take()
    yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    _postgres_pool.give_back(name)


@pytest.fixture
def empty_postgres_url(postgres_admin_url: str, _empty_postgres_pool: _PostgresPool) -> Iterator[str]:
    """A fresh, never-migrated PostgreSQL database (for migration tests)."""
    name = _empty_postgres_pool.take()
    yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    _empty_postgres_pool.give_back(name)


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
def _redis_binary() -> str:
    binary = os.environ.get("TEST_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        _unavailable("redis", "no redis-server binary on PATH (apt-get install redis-server)")
    return str(binary)


def start_redis_server() -> tuple[str, subprocess.Popen[bytes]]:
    """A private redis-server on a free port of 127.0.0.1, no persistence; returns its URL and process
    once it answers PING."""
    import redis

    binary = _redis_binary()
    for _attempt in range(5):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=port, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    client.ping()
                    return f"redis://127.0.0.1:{port}/0", proc
                except redis.RedisError:
                    time.sleep(0.02)
        finally:
            client.close()
        proc.kill()  # the port was taken meanwhile, or it did not start: another port
        proc.wait(5)
    pytest.fail("a private redis-server did not start", pytrace=False)


def stop_redis_server(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(5)


@pytest.fixture(scope="session")
def _session_redis() -> Iterator[str]:
    url, proc = start_redis_server()
    yield url
    stop_redis_server(proc)


@pytest.fixture
def redis_url(_session_redis: str) -> str:
    """An empty Redis for this test: the session's private redis-server (one per xdist worker), flushed
    before the test."""
    import redis

    client = redis.Redis.from_url(_session_redis)
    client.flushall()
    client.close()
    return _session_redis


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private redis-server for this test alone, for tests that pause or kill Redis. Yields its URL and
    its process."""
    url, proc = start_redis_server()
    yield url, proc
    stop_redis_server(proc)


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
