"""Block and allow lists: blacklisted wallets, allow-listed (VIP) wallets, blocked IPs with expiry.

The database is the truth; every change is one audited transaction. The request path reads IP blocks from
an in-process snapshot that is refreshed every SECURITY_LIST_CACHE_SECONDS from Redis (shared by every
worker and instance) or, when Redis is not configured or not answering, from the database. Redis holds the
set of active blocks plus a "loaded" marker with a TTL; a missing marker (Redis restarted, flushed, or the
TTL ran out) makes the next reader reload the set from the database — so a Redis restart lifts nothing.

IPs are never stored raw: a block is keyed by the address's keyed hash (``ip:…``), the same token the
security events carry, plus a masked form for people (``203.0.113.x``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from ticketguard.kit.outage import outage_log
from ticketguard.security.audit import audit
from ticketguard.security.redact import hash_ip, mask_ip, mask_wallet
from ticketguard.tables import allowlisted_wallets, blacklisted_wallets, ip_blocks
from ticketguard.wallets import WalletError, canonical_wallet

if TYPE_CHECKING:
    from ticketguard.config import Settings

log = logging.getLogger(__name__)

REDIS_BLOCKS_KEY = "tg:sec:ipblocks"
REDIS_LOADED_KEY = "tg:sec:ipblocks:loaded"
LOADED_TTL_SECONDS = 60  # a block removed while Redis was unreachable disappears from the cache within this


class ListError(ValueError):
    """A list change cannot be done as asked; the message says why."""


def normalize_wallet(wallet: str) -> str:
    """The list key of ``wallet``: its canonical spelling (`ticketguard.wallets.canonical_wallet`), so a
    wallet listed in one spelling is found in every other. Surrounding blanks (a pasted value) are ignored."""
    try:
        return canonical_wallet(wallet.strip())
    except WalletError as exc:
        raise ListError(f"wallet {exc}, got {mask_wallet(wallet.strip())!r}") from None


def _upsert(conn: Connection, table: Any, key: str, values: dict[str, Any]) -> None:
    dialect = conn.dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_fn(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[key], set_={k: v for k, v in values.items() if k != key}
    )
    conn.execute(stmt)


# ------------------------------------------------------------------------------------------ wallets
@dataclass(frozen=True)
class WalletEntry:
    wallet_address: str
    reason: str | None
    added_by: str | None
    timestamp: datetime
    expires_at: datetime | None


def _wallet_table(kind: str) -> Any:
    if kind == "blacklist":
        return blacklisted_wallets
    if kind == "allowlist":
        return allowlisted_wallets
    raise ListError(f"list must be blacklist or allowlist, got {kind!r}")


def add_wallet(
    conn: Connection,
    kind: str,
    wallet: str,
    *,
    reason: str,
    actor: str,
    now: datetime,
    expires_at: datetime | None = None,
) -> str:
    table = _wallet_table(kind)
    address = normalize_wallet(wallet)
    if expires_at is not None and expires_at <= now:
        raise ListError("expiry must be in the future")
    _upsert(
        conn,
        table,
        "wallet_address",
        {
            "wallet_address": address,
            "reason": reason,
            "added_by": actor[:64],
            "timestamp": now,
            "expires_at": expires_at,
        },
    )
    audit(
        conn,
        actor=actor,
        action=f"{kind}.add",
        now=now,
        details={
            "wallet": mask_wallet(address),
            "reason": reason,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return address


def remove_wallet(conn: Connection, kind: str, wallet: str, *, actor: str, now: datetime) -> bool:
    table = _wallet_table(kind)
    address = normalize_wallet(wallet)
    removed = conn.execute(delete(table).where(table.c.wallet_address == address)).rowcount > 0
    if removed:
        audit(conn, actor=actor, action=f"{kind}.remove", now=now, details={"wallet": mask_wallet(address)})
    return removed


def list_wallets(conn: Connection, kind: str, now: datetime) -> list[WalletEntry]:
    table = _wallet_table(kind)
    rows = conn.execute(
        select(table)
        .where(or_(table.c.expires_at.is_(None), table.c.expires_at > now))
        .order_by(table.c.timestamp)
    )
    return [WalletEntry(r.wallet_address, r.reason, r.added_by, r.timestamp, r.expires_at) for r in rows]


def wallet_blacklisted(conn: Connection, wallet: str, now: datetime) -> bool:
    t = blacklisted_wallets
    try:
        wallet = normalize_wallet(wallet)
    except ListError:
        return False  # not an address (e.g. an erasure pseudonym): every entry is a canonical address
    return (
        conn.execute(
            select(t.c.wallet_address).where(
                t.c.wallet_address == wallet, or_(t.c.expires_at.is_(None), t.c.expires_at > now)
            )
        ).first()
        is not None
    )


# ------------------------------------------------------------------------------------------ IPs
@dataclass(frozen=True)
class IpBlock:
    ip_hash: str
    ip_masked: str | None
    reason: str | None
    added_by: str | None
    created_at: datetime
    expires_at: datetime | None


def block_ip_token(
    conn: Connection,
    token: str,
    *,
    masked: str | None,
    reason: str,
    actor: str,
    now: datetime,
    expires_at: datetime | None,
) -> None:
    if expires_at is not None and expires_at <= now:
        raise ListError("expiry must be in the future")
    _upsert(
        conn,
        ip_blocks,
        "ip_hash",
        {
            "ip_hash": token,
            "ip_masked": masked,
            "reason": reason,
            "added_by": actor[:64],
            "created_at": now,
            "expires_at": expires_at,
        },
    )
    audit(
        conn,
        actor=actor,
        action="ip_block.add",
        now=now,
        details={
            "ip": token,
            "masked": masked,
            "reason": reason,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )


def block_ip(
    conn: Connection,
    ip: str,
    *,
    pepper: bytes,
    reason: str,
    actor: str,
    now: datetime,
    expires_at: datetime | None,
) -> str:
    import ipaddress

    try:
        ipaddress.ip_address(ip.strip())
    except ValueError:
        raise ListError(f"ip must be an IPv4 or IPv6 address, got {ip[:45]!r}") from None
    token = hash_ip(ip, pepper)
    block_ip_token(
        conn, token, masked=mask_ip(ip), reason=reason, actor=actor, now=now, expires_at=expires_at
    )
    return token


def unblock_ip_token(conn: Connection, token: str, *, actor: str, now: datetime) -> bool:
    removed = conn.execute(delete(ip_blocks).where(ip_blocks.c.ip_hash == token)).rowcount > 0
    if removed:
        audit(conn, actor=actor, action="ip_block.remove", now=now, details={"ip": token})
    return removed


def active_ip_blocks(conn: Connection, now: datetime) -> list[IpBlock]:
    rows = conn.execute(
        select(ip_blocks)
        .where(or_(ip_blocks.c.expires_at.is_(None), ip_blocks.c.expires_at > now))
        .order_by(ip_blocks.c.created_at)
    )
    return [IpBlock(r.ip_hash, r.ip_masked, r.reason, r.added_by, r.created_at, r.expires_at) for r in rows]


def ip_token_blocked(conn: Connection, token: str, now: datetime) -> bool:
    t = ip_blocks
    return (
        conn.execute(
            select(t.c.ip_hash).where(
                t.c.ip_hash == token, or_(t.c.expires_at.is_(None), t.c.expires_at > now)
            )
        ).first()
        is not None
    )


# ------------------------------------------------------------------------------------------ cache
def _expiry_epoch(block: IpBlock) -> float:
    return block.expires_at.timestamp() if block.expires_at is not None else 0.0


class IpBlockCache:
    """The request path's view of active IP blocks: ``is_blocked(token)`` is a dict look-up; the snapshot
    is refreshed from Redis (or the database) at most every ``max_age`` seconds, by one thread at a time."""

    def __init__(
        self,
        engine: Engine,
        redis: Any | None,
        *,
        max_age: float = 5.0,
        clock: Callable[[], float] = time.time,
        key_prefix: str = "",
    ) -> None:
        self._engine = engine
        self._redis = redis
        self._max_age = max_age
        self._clock = clock
        self._blocks_key = key_prefix + REDIS_BLOCKS_KEY
        self._loaded_key = key_prefix + REDIS_LOADED_KEY
        self._snapshot: dict[str, float] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()
        self.source = "none"

    def is_blocked(self, token: str) -> bool:
        expiry = self._snapshot.get(token)
        return expiry is not None and (expiry == 0.0 or expiry > self._clock())

    def stale(self) -> bool:
        return self._clock() - self._loaded_at >= self._max_age

    def refresh(self, force: bool = False) -> None:
        if not self._lock.acquire(blocking=force):
            return  # another thread is refreshing; keep serving the current snapshot
        try:
            if not force and not self.stale():
                return
            snapshot = self._from_redis() if self._redis is not None else None
            if snapshot is None:
                snapshot = self._from_database()
                self.source = "database"
            else:
                self.source = "redis"
            self._snapshot = snapshot
            self._loaded_at = self._clock()
        except Exception as exc:  # keep the last snapshot; try again next time (in the background)
            outage_log("database").failure(f"IP block list (last snapshot kept): {type(exc).__name__}")
            self._loaded_at = self._clock()
            if self.source == "none":
                self.source = "unavailable"
        finally:
            self._lock.release()

    def _from_database(self) -> dict[str, float]:
        from datetime import UTC

        now = datetime.fromtimestamp(self._clock(), UTC)
        with self._engine.connect() as conn:
            return {b.ip_hash: _expiry_epoch(b) for b in active_ip_blocks(conn, now)}

    def _from_redis(self) -> dict[str, float] | None:
        try:
            pipe = self._redis.pipeline(transaction=False)  # type: ignore[union-attr]
            pipe.exists(self._loaded_key)
            pipe.hgetall(self._blocks_key)
            loaded, raw = pipe.execute()
            if not loaded:
                snapshot = self._from_database()
                self.publish(snapshot)
                return snapshot
            snapshot = {k.decode(): float(v) for k, v in raw.items()}
        except Exception as exc:
            outage_log("redis").failure(f"IP blocks (read from the database): {type(exc).__name__}")
            return None
        outage_log("redis").ok()
        return snapshot

    def publish(self, snapshot: dict[str, float] | None = None) -> None:
        """Write the active set to Redis (from the database unless given) with a fresh loaded marker."""
        if self._redis is None:
            return
        if snapshot is None:
            snapshot = self._from_database()
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._blocks_key)
        if snapshot:
            pipe.hset(self._blocks_key, mapping={k: str(v) for k, v in snapshot.items()})
        pipe.set(self._loaded_key, str(self._clock()), ex=LOADED_TTL_SECONDS)
        pipe.execute()
        self._snapshot = dict(snapshot)
        self._loaded_at = self._clock()

    def reload(self) -> None:
        """A list changed in the database (`ListChangeWatcher`): take the active set from the database now,
        and push it to Redis for the other readers (best effort)."""
        with self._lock:
            try:
                if self._redis is not None:
                    try:
                        self.publish()
                        self.source = "redis"
                        return
                    except Exception:
                        log.warning("IP block list changed but Redis is unavailable; using the database")
                self._snapshot = self._from_database()
                self._loaded_at = self._clock()
                self.source = "database"
            except Exception as exc:
                log.warning("IP block list reload failed, keeping the last snapshot: %s", type(exc).__name__)


LIST_CHANNEL = "ticketguard_lists"  # NOTIFY channel fed by the triggers of migration 0006


class ListChangeWatcher:
    """Calls its subscribers within milliseconds of any committed change to a block/allow list table.

    On PostgreSQL a statement trigger on each list table sends ``NOTIFY ticketguard_lists`` (migration
    0006); this thread LISTENs on a connection of its own, so a change made anywhere — the admin API, the
    CLI, an automated response, plain SQL — reaches every API worker at once. A burst of changes is
    coalesced into one call. After the connection is lost it reconnects (backing off up to 30 s) and calls
    the subscribers once, since changes may have been missed meanwhile. Other databases have no such
    channel: `start` does nothing, and the periodic refreshes bring changes in."""

    COALESCE_S = 0.02
    POLL_S = 0.2  # the longest `stop` waits for the thread (it checks the stop flag this often)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.subscribers: list[Callable[[], None]] = []
        self.connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def supported(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def subscribe(self, callback: Callable[[], None]) -> None:
        self.subscribers.append(callback)

    def start(self) -> None:
        if not self.supported or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="list-changes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _fire(self) -> None:
        for callback in self.subscribers:
            try:
                callback()
            except Exception as exc:  # one subscriber failing does not starve the others
                log.warning("list change subscriber failed: %s", type(exc).__name__)

    def _connect(self) -> Any:
        import psycopg

        cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
        conn = psycopg.connect(*cargs, **{**cparams, "autocommit": True, "connect_timeout": 5})
        conn.execute(f"LISTEN {LIST_CHANNEL}")
        return conn

    def _run(self) -> None:
        backoff = 0.5
        first = True
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except Exception as exc:
                self.connected = False
                outage_log("database").failure(f"list change listener: {type(exc).__name__}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self.connected, backoff = True, 0.5
            if not first:
                self._fire()  # changes while disconnected were not notified
            first = False
            try:
                with conn:
                    while not self._stop.is_set():
                        if any(True for _ in conn.notifies(timeout=self.POLL_S, stop_after=1)):
                            for _ in conn.notifies(timeout=self.COALESCE_S):
                                pass
                            self._fire()
            except Exception as exc:
                self.connected = False
                log.warning("list change listener lost its connection (%s); reconnecting", type(exc).__name__)


def publish_ip_blocks(engine: Engine, redis: Any | None, key_prefix: str = "") -> bool:
    """After a change in the database: push the new active set to Redis now (best effort; the loaded
    marker's TTL bounds how long a cache that missed this stays stale)."""
    if redis is None:
        return False
    try:
        IpBlockCache(engine, redis, key_prefix=key_prefix).publish()
        return True
    except Exception as exc:
        log.warning(
            "could not publish IP blocks to Redis (cache catches up within %d s): %s",
            LOADED_TTL_SECONDS,
            type(exc).__name__,
        )
        return False


def publish_ip_blocks_with(engine: Engine, settings: Settings) -> bool:
    """`publish_ip_blocks` through a short-lived client on the settings' Redis: for the jobs that apply
    blocks (security correlation, alert actions), so the API sees them at once; False without Redis."""
    url = settings.resolved_redis_url
    if not url:
        return False
    import redis

    timeout = max(settings.redis_timeout_ms / 1000, 0.5)
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return publish_ip_blocks(engine, client)
    finally:
        client.close()
