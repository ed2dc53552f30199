"""Shared fixtures: databases built through the migrations, on SQLite and on a real PostgreSQL; Redis.

PostgreSQL: `TEST_POSTGRES_URL` or a PostgreSQL `DATABASE_URL`, else 127.0.0.1:5432/test. The probe logs in
to that database and checks the role may create databases. Each test gets a database of its own, at the
migrations' head and empty: cloned ahead of time from a template migrated once per session, and after the
test emptied back to the template in a background thread (dropped and replaced only if the test changed its
schema or settings) — see `_PostgresPool`.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, make_url

from ci_gate import unavailable
from ticketguard.kit import migrate
from ticketguard.kit.db import make_engine

# Shared fixtures of other rooms (a recording HTTP receiver for notifier and callback tests).
pytest_plugins = ("delivery_fixtures",)

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
        unavailable("postgres", reason)
    return POSTGRES_URL


# What makes a database's schema and settings what they are; equal to the template's means deleting its
# rows brings the database back to the template's state. Anything a test changed beyond rows — a trigger, a
# function, a dropped or added column or index, a downgrade, ALTER DATABASE … SET — changes it.
_SCHEMA_FINGERPRINT = """
SELECT md5(coalesce(string_agg(x, '|' ORDER BY x), '')) FROM (
  SELECT 'c:' || n.nspname || '.' || c.relname || ':' || c.relkind::text || ':'
         || c.relpersistence::text || ':' || c.relrowsecurity::text || ':' || coalesce(c.relacl::text, '')
         || ':' || coalesce(array_to_string(c.reloptions, ','), '')
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
     AND n.nspname NOT LIKE 'pg_temp%'
  UNION ALL
  SELECT 'a:' || a.attrelid::regclass || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod)
         || ':' || a.attnotnull::text || ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 't:' || tgrelid::regclass || '.' || tgname || ':' || tgenabled::text
    FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL
  SELECT 'p:' || n.nspname || '.' || p.proname || ':' || md5(p.prosrc)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL
  SELECT 'k:' || conrelid::regclass || '.' || conname || ':' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'i:' || pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
   WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'v:' || oid::regclass || ':' || md5(pg_get_viewdef(oid)) FROM pg_class
   WHERE relkind IN ('v', 'm') AND relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'r:' || polrelid::regclass || '.' || polname FROM pg_policy
  UNION ALL
  SELECT 'n:' || nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' AND nspname <> 'information_schema'
  UNION ALL
  SELECT 'e:' || extname || ':' || extversion FROM pg_extension
) s(x)
"""
_DATABASE_SETTINGS = """
SELECT d.datallowconn::text || ':' || d.datconnlimit || ':' || coalesce(
         (SELECT string_agg(array_to_string(setconfig, ','), ';') FROM pg_db_role_setting
           WHERE setdatabase = d.oid), '')
  FROM pg_database d WHERE d.datname = %s
"""


class _PostgresPool:
    """Per-test databases that cost a test nothing: cloned from the migrated template ahead of time, and
    after a test *recycled* in a background thread — its sessions ended, its rows deleted (sequences
    restarted, materialized views refreshed) — when its schema and settings still equal the template's;
    dropped and replaced only when a test changed them. DROP DATABASE waits for a checkpoint and for every
    backend of the server to close the database's files (0.5–3 s on this shared, busy server, and a cost to
    everyone on it); emptying ~30 small tables takes tens of milliseconds. ``template=None``: never-migrated
    databases, always dropped."""

    def __init__(self, admin_url: str, template: str | None, prefix: str, ahead: int) -> None:
        self.admin_url = admin_url
        self.template = template
        self.prefix = prefix
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._wanted = threading.Semaphore(ahead)  # databases the filler still has to create
        self._returned: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        self._names: set[str] = set()  # every database of this pool not yet dropped
        self._names_lock = threading.Lock()
        self._fingerprint: tuple[str, str] | None = None
        self._populated: dict[str, bool] = {}
        if template is not None:
            self._fingerprint, self._populated = self._describe(template)
        self._filler = threading.Thread(target=self._fill, name=f"pg-pool-{prefix}", daemon=True)
        self._recycler = threading.Thread(target=self._recycle_loop, name=f"pg-recycle-{prefix}", daemon=True)
        self._filler.start()
        self._recycler.start()

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(_psycopg_dsn(self.admin_url), autocommit=True, connect_timeout=10)

    def _connect(self, name: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(_psycopg_dsn(self.admin_url, name), autocommit=True, connect_timeout=10)

    def _describe(self, name: str) -> tuple[tuple[str, str], dict[str, bool]]:
        with self._admin() as admin:
            row = admin.execute(_DATABASE_SETTINGS, (name,)).fetchone()
        with self._connect(name) as conn:
            schema = conn.execute(_SCHEMA_FINGERPRINT).fetchone()
            populated = conn.execute(
                "SELECT oid::regclass::text, relispopulated FROM pg_class "
                "WHERE relkind = 'm' AND relnamespace = 'public'::regnamespace"
            ).fetchall()
        assert row is not None
        assert schema is not None
        return (str(schema[0]), str(row[0])), {str(v): bool(p) for v, p in populated}

    # ---------------------------------------------------------------------------------------- filling
    def _fill(self) -> None:
        try:
            with self._admin() as conn:
                while True:
                    self._wanted.acquire()
                    if self._stopping.is_set():
                        return
                    name = f"{self.prefix}_{uuid.uuid4().hex[:12]}"
                    template = f' TEMPLATE "{self.template}"' if self.template else ""
                    conn.execute(f'CREATE DATABASE "{name}"{template}')
                    with self._names_lock:
                        self._names.add(name)
                    self._ready.put(name)
        except BaseException as exc:  # handed to the test that waits for a database
            self._ready.put(exc)

    def take(self) -> str:
        try:  # usually one is ready, or the previous test's comes back from its reset within a second
            item = self._ready.get(timeout=1.0)
        except queue.Empty:
            self._wanted.release()  # a fresh clone, unless a recycled one comes back first
            try:
                item = self._ready.get(timeout=120)
            except queue.Empty:
                pytest.fail("no PostgreSQL test database could be had within 120 s", pytrace=False)
        if isinstance(item, BaseException):
            self._ready.put(item)  # every later test sees the same failure
            raise item
        return item

    def give_back(self, name: str) -> None:
        self._returned.put(name)

    # ---------------------------------------------------------------------------------------- recycling
    def _recycle_loop(self) -> None:
        with self._admin() as admin:
            while (name := self._returned.get()) is not None:
                try:
                    if self._reset(admin, name):
                        self._ready.put(name)
                        continue
                except Exception as exc:  # cannot be reset: dropped and replaced below
                    print(f"test database {name} not recycled: {type(exc).__name__}: {exc}")
                self._drop(admin, name)
                self._wanted.release()

    def _reset(self, admin: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
        """Back to the template's state, if only rows changed. False: drop it."""
        if self._fingerprint is None:
            return False
        # Sessions a test left open (an engine not disposed, a killed server's pool): ended first.
        deadline = time.monotonic() + 10
        while admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchone() != (0,):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        settings = admin.execute(_DATABASE_SETTINGS, (name,)).fetchone()
        with self._connect(name) as conn:
            schema = conn.execute(_SCHEMA_FINGERPRINT).fetchone()
            if (str(schema[0]) if schema else "", str(settings[0]) if settings else "") != self._fingerprint:
                return False
            tables = [
                str(row[0])
                for row in conn.execute(
                    "SELECT oid::regclass::text FROM pg_class WHERE relkind IN ('r', 'p') "
                    "AND relnamespace = 'public'::regnamespace AND relname <> 'alembic_version'"
                )
            ]
            sequences = [
                str(row[0])
                for row in conn.execute(
                    "SELECT oid::regclass::text FROM pg_class WHERE relkind = 'S' "
                    "AND relnamespace = 'public'::regnamespace"
                )
            ]
            with conn.transaction():
                # DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE gives each table and each of
                # its ~100 indexes new files (0.5 s). Foreign keys are not checked meanwhile (replica role).
                conn.execute("SET LOCAL session_replication_role = replica")
                for table in tables:
                    conn.execute(f"DELETE FROM {table}")
                for sequence in sequences:
                    conn.execute(f"ALTER SEQUENCE {sequence} RESTART")
                for view, populated in self._populated.items():
                    conn.execute(f"REFRESH MATERIALIZED VIEW {view}{'' if populated else ' WITH NO DATA'}")
        return True

    def _drop(self, admin: psycopg.Connection[tuple[object, ...]], name: str) -> None:
        try:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as exc:  # one that cannot be dropped must not stop the others
            print(f"could not drop test database {name}: {exc}")
        with self._names_lock:
            self._names.discard(name)

    def close(self) -> None:
        self._stopping.set()
        self._wanted.release()
        self._filler.join(60)
        self._returned.put(None)
        self._recycler.join(120)

        def drop(name: str) -> None:
            with self._admin() as admin:
                self._drop(admin, name)

        # At once: each DROP DATABASE waits for a checkpoint and for every backend of the server to close
        # its files; side by side they share those waits.
        with ThreadPoolExecutor(max(1, len(self._names))) as pool:
            list(pool.map(drop, sorted(self._names)))


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
    """A PostgreSQL database at head, empty, of this test alone (a clone of the session's migrated template,
    or one emptied back to it after an earlier test)."""
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
        unavailable("redis", "no redis-server binary on PATH (apt-get install redis-server)")
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
