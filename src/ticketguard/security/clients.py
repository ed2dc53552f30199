"""API clients: create (the key is shown once), list, revoke; and the request-path key check."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from ticketguard.security.audit import audit
from ticketguard.security.auth import (
    AuthError,
    Principal,
    api_key_prefix,
    generate_api_key,
    hash_api_key,
    key_matches,
    parse_scopes,
)
from ticketguard.tables import api_clients


class ClientError(ValueError):
    """A clients command cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    name: str
    key_prefix: str
    scopes: frozenset[str]
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None


def _record(row: object) -> ClientRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return ClientRecord(
        client_id=m["client_id"],
        name=m["name"],
        key_prefix=m["key_prefix"],
        scopes=frozenset(m["scopes"].split(",")),
        created_at=m["created_at"],
        created_by=m["created_by"],
        revoked_at=m["revoked_at"],
    )


def create_client(
    conn: Connection, *, name: str, scopes: str, actor: str, pepper: bytes, now: datetime
) -> tuple[ClientRecord, str]:
    name = name.strip()
    if not name or len(name) > 100:
        raise ClientError(f"name must be 1-100 characters, got {len(name)}")
    scope_set = parse_scopes(scopes)
    new_key = generate_api_key()
    client_id = "c_" + secrets.token_hex(8)
    try:
        with conn.begin_nested():
            conn.execute(
                insert(api_clients).values(
                    client_id=client_id,
                    name=name,
                    key_prefix=new_key.prefix,
                    key_hash=hash_api_key(new_key.key, pepper),
                    scopes=",".join(sorted(scope_set)),
                    created_at=now,
                    created_by=actor,
                )
            )
    except IntegrityError:
        raise ClientError(f"a client named {name!r} already exists") from None
    audit(
        conn,
        actor=actor,
        action="client.create",
        now=now,
        details={"client_id": client_id, "name": name, "scopes": sorted(scope_set)},
    )
    record = ClientRecord(client_id, name, new_key.prefix, scope_set, now, actor, None)
    return record, new_key.key


def list_clients(conn: Connection) -> list[ClientRecord]:
    rows = conn.execute(select(api_clients).order_by(api_clients.c.created_at, api_clients.c.name))
    return [_record(row) for row in rows]


def revoke_client(conn: Connection, *, name_or_id: str, actor: str, now: datetime) -> ClientRecord:
    row = conn.execute(
        select(api_clients).where(
            (api_clients.c.name == name_or_id) | (api_clients.c.client_id == name_or_id)
        )
    ).first()
    if row is None:
        raise ClientError(f"no client named or with id {name_or_id!r}; see `ticketguard clients list`")
    record = _record(row)
    if record.revoked_at is not None:
        return record  # idempotent: revoking twice changes nothing and audits nothing new
    conn.execute(
        update(api_clients)
        .where(api_clients.c.client_id == record.client_id)
        .values(revoked_at=now, revoked_by=actor)
    )
    audit(
        conn,
        actor=actor,
        action="client.revoke",
        now=now,
        details={"client_id": record.client_id, "name": record.name},
    )
    return ClientRecord(**{**record.__dict__, "revoked_at": now})


@dataclass(frozen=True)
class _KeyRow:
    client_id: str
    key_hash: str
    scopes: frozenset[str]
    revoked: bool


class ApiKeyAuthenticator:
    """Checks API keys against the table, with a short in-process cache (CACHE_SECONDS) so a request does
    not pay a database round trip; a revocation therefore takes effect within that many seconds."""

    CACHE_SECONDS = 5.0

    def __init__(self, engine: Engine, pepper: bytes, clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._pepper = pepper
        self._clock = clock
        self._cache: dict[str, tuple[float, _KeyRow | None]] = {}
        self._lock = threading.Lock()

    def _lookup(self, prefix: str) -> _KeyRow | None:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(prefix)
        if hit is not None and now - hit[0] < self.CACHE_SECONDS:
            return hit[1]
        try:
            row = self._fetch(prefix)
        except Exception:
            if hit is not None:  # the database is unreachable: a key known a moment ago stays known
                return hit[1]
            raise
        found = (
            None
            if row is None
            else _KeyRow(
                row.client_id, row.key_hash, frozenset(row.scopes.split(",")), row.revoked_at is not None
            )
        )
        with self._lock:
            if len(self._cache) > 10_000:  # unknown prefixes are cached too; keep a prober from growing it
                self._cache.clear()
            self._cache[prefix] = (now, found)
        return found

    def _fetch(self, prefix: str) -> Any:
        with self._engine.connect() as conn:
            return conn.execute(
                select(
                    api_clients.c.client_id,
                    api_clients.c.key_hash,
                    api_clients.c.scopes,
                    api_clients.c.revoked_at,
                ).where(api_clients.c.key_prefix == prefix)
            ).first()

    def authenticate(self, key: str) -> Principal:
        prefix = api_key_prefix(key)
        if prefix is None:
            raise AuthError("malformed API key")
        row = self._lookup(prefix)
        if row is None:
            raise AuthError("unknown API key")
        if not key_matches(key, row.key_hash, self._pepper):
            raise AuthError("API key does not match")
        if row.revoked:
            raise AuthError("API key revoked")
        return Principal(kind="api_key", subject=row.client_id, client_id=row.client_id, scopes=row.scopes)
