"""The API workers' online feature state: loaded from the database, kept in step through a change feed.

Each worker holds a `FeatureState` (ticketguard.features.state) in memory, so scoring a request reads no
database row for its features. How it stays exact:

* **Load.** At start-up (in the background: until it is ready the SQL feature source answers) the worker
  reads every transaction, the fraud labels, the event catalogue, the blacklist and the latest wallet-graph
  snapshot into a fresh state.
* **Change feed.** After the group commit has made a batch of answers durable, and *before* those requests
  are answered, the batch's transactions are appended to the feed: a Redis stream shared by all workers when
  Redis is configured, an in-process list otherwise. Every request first applies the feed entries its
  worker has not seen (one Redis round trip), so it sees every transaction answered before it arrived — in
  any worker — as the SQL path would.
* **Refresh.** A background thread re-reads the slowly changing inputs (labels, lists, events, graph) every
  FEATURE_STATE_REFRESH_SECONDS. Every FEATURE_STATE_REBUILD_SECONDS it checks the state against the
  database — the number of transactions older than `SETTLED_S`, one index-only count there, per-event
  time lists here — and reloads everything when they differ (rows that did not come through the feed:
  plain SQL, a writer without Redis; rows archived or deleted), and at least every `MAX_STATE_AGE_S`
  (which also covers in-place edits of a row's features, which no count sees; the project's own such
  edit, a GDPR erasure, moves the epoch).
  A reload replays the feed from the position it had before reading the database, skipping transactions
  the read already saw, then swaps the new state in.

Failures: Redis unreachable when reading the feed → this request's features come from the database and the
answer is marked ``degraded``; the state is stale (it may have missed entries) and is rebuilt once Redis
answers again. A batch that could not be published (Redis failed after the commit) bumps the feed's
*epoch* as soon as Redis is back; every worker that sees a new epoch rebuilds. Until a state is ready
again, the SQL feature source answers (exact, slower, not degraded).

Without Redis the feed is in-process, which is exact only with one worker: `FEATURE_STATE=auto` then uses
the state only with `API_WORKERS=1` (`memory` forces it, `sql` turns it off).
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import hashlib
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, Engine, case, false, func, make_url, select, true

from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.features.specs import FeatureParams
from ticketguard.features.state import EventFacts, FeatureState, FraudLabel, Row, to_us
from ticketguard.kit.outage import outage_log
from ticketguard.scoring.domain import ListStatus
from ticketguard.scoring.store import list_status

log = logging.getLogger(__name__)
_redis = outage_log("redis")
_reload = outage_log("feature state reload (database or Redis)")

REDIS_DOWN = "redis unavailable: features read from the database"
FEED_KEY = "ticketguard:features:feed"
EPOCH_KEY = "ticketguard:features:epoch"
FEED_MAXLEN = 200_000  # entries (batches) kept; a worker further behind than this rebuilds
READ_COUNT = 10_000
# The interpreter's switch interval while a worker rebuilds its state beside the requests it serves
# (default 5 ms): how long the event loop may wait for the GIL each time it wakes.
REBUILD_SWITCH_S = 0.0005
LOAD_BATCH_ROWS = 2_000  # rows per fetch while loading (see `read_rows`)
# The periodic check (`StateKeeper.matches_database`) compares transactions older than this: a younger one
# may be committed and not yet applied from the feed, or applied and not yet visible to the count.
SETTLED_S = 60.0
MAX_STATE_AGE_S = 86_400.0  # a full reload at least this often, whatever the check says
DISPOSE_SLICE = 2_000  # index entries freed between two GIL releases (see `dispose_gradually`)


class FeedGap(RuntimeError):
    """The feed no longer holds entries this worker has not applied: rebuild."""


class Feed(Protocol):
    """Ordered batches of transactions (as `Row.as_list`), with opaque increasing positions."""

    def position(self) -> str: ...

    def read(self, after: str) -> tuple[list[list[Any]], str, int]:
        """Rows of the entries after ``after``, the new position, and the feed's epoch."""
        ...

    def publish(self, rows: list[list[Any]]) -> None: ...


class LocalFeed:
    """The feed of a single worker: in process memory."""

    def __init__(self, maxlen: int = FEED_MAXLEN) -> None:
        self._entries: deque[tuple[int, list[list[Any]]]] = deque(maxlen=maxlen)
        self._seq = 0
        self._lock = threading.Lock()

    def position(self) -> str:
        return str(self._seq)

    def read(self, after: str) -> tuple[list[list[Any]], str, int]:
        since = int(after)
        with self._lock:
            if since >= self._seq:
                return [], after, 0
            if self._entries and self._entries[0][0] > since + 1:
                raise FeedGap(f"feed trimmed past position {since}")
            rows = [row for seq, batch in self._entries if seq > since for row in batch]
            return rows, str(self._seq), 0

    def publish(self, rows: list[list[Any]]) -> None:
        with self._lock:
            self._seq += 1
            self._entries.append((self._seq, rows))


class RedisFeed:
    """The feed shared by all workers: a Redis stream (one entry per committed batch) plus an epoch."""

    def __init__(self, client: Any, *, key: str = FEED_KEY, epoch_key: str = EPOCH_KEY) -> None:
        self.client = client
        self.key = key
        self.epoch_key = epoch_key
        self.lost = False  # a batch could not be published: bump the epoch at the next chance

    def position(self) -> str:
        last = self.client.xrevrange(self.key, count=1)
        return last[0][0].decode() if last else "0-0"

    def read(self, after: str) -> tuple[list[list[Any]], str, int]:
        rows: list[list[Any]] = []
        position = after
        while True:
            pipe = self.client.pipeline(transaction=False)
            pipe.xread({self.key: position}, count=READ_COUNT)
            pipe.get(self.epoch_key)
            answer, epoch = pipe.execute()
            entries = answer[0][1] if answer else []
            for entry_id, fields in entries:
                rows.extend(orjson.loads(fields[b"rows"]))
                position = entry_id.decode()
            if len(entries) < READ_COUNT:
                return rows, position, int(epoch or 0)

    def holds(self, position: str) -> bool:
        """Whether every entry after ``position`` is still in the stream (it was not trimmed past it)."""
        if position == "0-0":
            return True
        info = self.client.xinfo_stream(self.key)
        first = info.get("first-entry")
        return first is None or _stream_id(first[0].decode()) <= _stream_id(position)

    def publish(self, rows: list[list[Any]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        if self.lost:
            pipe.incr(self.epoch_key)
        pipe.xadd(self.key, {"rows": orjson.dumps(rows)}, maxlen=FEED_MAXLEN, approximate=True)
        try:
            pipe.execute()
        except Exception:
            self.lost = True
            raise
        self.lost = False


class FeedPublisher:
    """For writers outside the API (the chain ETL): tells the API workers' states what changed in the
    transactions table, so they need not wait for their periodic rebuild. Rows added are appended to the
    shared feed; rows removed (a chain reorganisation, a rewind) bump the epoch, and every worker rebuilds.
    Best effort: if Redis fails, the workers' next rebuild (FEATURE_STATE_REBUILD_SECONDS) brings them in."""

    def __init__(self, feed: RedisFeed) -> None:
        self.feed = feed

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedPublisher | None:
        """None without Redis: the workers' in-process feeds cannot be reached from another process."""
        client = redis_client(settings)
        return None if client is None else cls(shared_feed(settings, client))

    def added(self, transactions: list[dict[str, Any]]) -> None:
        """After the commit of these new rows of the transactions table."""
        if not transactions:
            return
        try:
            self.feed.publish([row_of(t).as_list() for t in transactions])
        except Exception as exc:
            log.warning("feature feed: %d rows not published (%s)", len(transactions), type(exc).__name__)
            self.invalidate()  # the workers must not miss them: make them rebuild if Redis still answers

    def invalidate(self) -> None:
        """After the commit of a deletion or a bulk change of the transactions table: every worker
        rebuilds its state (the epoch moves)."""
        try:
            self.feed.client.incr(self.feed.epoch_key)
        except Exception as exc:
            log.warning(
                "feature feed: epoch not bumped (%s); workers catch up at their rebuild", type(exc).__name__
            )


def invalidate_feature_state(settings: Settings, why: str) -> bool:
    """After a bulk change of `transactions` outside the API (an import, a simulation, retention, an
    erasure): every API worker reloads its in-memory state from the database. False without Redis (the
    workers pick the change up at their next rebuild, FEATURE_STATE_REBUILD_SECONDS)."""
    publisher = FeedPublisher.from_settings(settings)
    if publisher is None:
        return False
    log.info("feature state invalidated: %s", why)
    publisher.invalidate()
    return True


def redis_client(settings: Settings) -> Any:
    """The Redis client for shared feature state, with the short REDIS_TIMEOUT_MS (None: no Redis)."""
    url = settings.resolved_redis_url
    if not url:
        return None
    import redis

    timeout = settings.redis_timeout_ms / 1000.0
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def shared_feed(settings: Settings, client: Any) -> RedisFeed:
    """The database's feed: one per database, so two deployments sharing a Redis never read each other's
    rows."""
    suffix = feed_suffix(settings)
    return RedisFeed(client, key=f"{FEED_KEY}:{suffix}", epoch_key=f"{EPOCH_KEY}:{suffix}")


def feed_suffix(settings: Settings) -> str:
    """A short digest of the database's address (password left out) that names its feed."""
    url = make_url(settings.resolved_database_url)
    where = f"{url.drivername}://{url.host or ''}:{url.port or ''}/{url.database or ''}"
    return hashlib.sha256(where.encode()).hexdigest()[:12]


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


# ------------------------------------------------------------------------------------------ loading
def read_rows(conn: Connection) -> Iterator[Row]:
    """Every transaction, oldest first, streamed."""
    x = tables.transactions
    # The driver converts a fetched batch in C without releasing the GIL: 20,000 rows held it ~70 ms,
    # a stall for every request of a worker that reloads while it serves; 2,000 rows hold it ~7 ms.
    result = conn.execution_options(yield_per=LOAD_BATCH_ROWS).execute(
        select(
            x.c.transaction_id,
            x.c.timestamp,
            x.c.wallet_address,
            x.c.event_id,
            x.c.ticket_id,
            x.c.price_paid,
            x.c.payment_method,
            x.c.is_resale,
            x.c.seller_address,
            x.c.ip_address,
            x.c.latitude,
            x.c.longitude,
        ).order_by(x.c.timestamp)
    )
    # Wallets, events, tickets, sellers, IPs and payment methods repeat across rows: one string object each
    # (the driver makes a new one per row) — a third of the state's memory.
    intern = sys.intern
    for r in result:
        yield Row(
            r[0],
            to_us(r[1]),
            intern(r[2]),
            intern(r[3]),
            None if r[4] is None else intern(r[4]),
            None if r[5] is None else float(r[5]),
            None if r[6] is None else intern(r[6]),
            bool(r[7]),
            None if r[8] is None else intern(r[8]),
            None if r[9] is None else intern(r[9]),
            r[10],
            r[11],
        )


def row_of(transaction: dict[str, Any]) -> Row:
    """A transactions-table row as the API writes it (`scoring.service`'s PendingWrite.transaction)."""
    price = transaction.get("price_paid")
    return Row(
        str(transaction["transaction_id"]),
        to_us(transaction["timestamp"]),
        transaction["wallet_address"],
        transaction["event_id"],
        transaction.get("ticket_id"),
        None if price is None else float(price),
        transaction.get("payment_method"),
        bool(transaction.get("is_resale")),
        transaction.get("seller_address"),
        transaction.get("ip_address"),
        transaction.get("latitude"),
        transaction.get("longitude"),
    )


def read_labels(conn: Connection) -> list[FraudLabel]:
    x, lab = tables.transactions, tables.fraud_labels
    rows = conn.execute(
        select(x.c.transaction_id, x.c.timestamp, lab.c.labelled_at, x.c.wallet_address, x.c.event_id)
        .add_columns(x.c.seller_address, x.c.ip_address, x.c.payment_method)
        .select_from(lab.join(x, x.c.transaction_id == lab.c.transaction_id))
        .where(lab.c.is_fraud == true())
    )
    return [FraudLabel(r[0], to_us(r[1]), to_us(r[2]), r[3], r[4], r[5], r[6], r[7]) for r in rows]


def labels_fingerprint(conn: Connection) -> tuple[Any, ...]:
    """Cheap (computed in the database): changes when a label is added, removed, relabelled or re-dated."""
    lab = tables.fraud_labels
    fraud = func.sum(case((lab.c.is_fraud == true(), 1), else_=0))
    return tuple(conn.execute(select(func.count(), fraud, func.max(lab.c.labelled_at))).one())


def read_events(conn: Connection) -> dict[str, EventFacts]:
    ev = tables.events
    return {
        r[0]: EventFacts(float(r[1]), float(r[2]), to_us(r[3]) / 1_000_000)
        # Events whose facts an import derived from its sales are unknown to the features (issue 13).
        for r in conn.execute(
            select(ev.c.event_id, ev.c.capacity, ev.c.face_value, ev.c.starts_at).where(
                ev.c.facts_derived == false()
            )
        )
    }


@dataclass(frozen=True)
class WalletLists:
    """Blacklist and allow list, in memory: wallet → (added, expires) in µs."""

    blacklist: dict[str, list[tuple[int, int | None]]]
    allowlist: dict[str, list[tuple[int, int | None]]]

    def status(self, wallet: str, at_us: int) -> ListStatus:
        """As `store.wallet_lists`: on a list if added at or before ``at`` and not expired."""

        def active(entries: dict[str, list[tuple[int, int | None]]]) -> bool:
            return any(a <= at_us and (e is None or e > at_us) for a, e in entries.get(wallet, ()))

        return list_status(active(self.blacklist), active(self.allowlist))


def read_lists(conn: Connection) -> WalletLists:
    out = []
    for table in (tables.blacklisted_wallets, tables.allowlisted_wallets):
        entries: dict[str, list[tuple[int, int | None]]] = {}
        for wallet, added, expires in conn.execute(
            select(table.c.wallet_address, table.c.timestamp, table.c.expires_at)
        ):
            entries.setdefault(wallet, []).append((to_us(added), None if expires is None else to_us(expires)))
        out.append(entries)
    return WalletLists(out[0], out[1])


def read_centrality(conn: Connection, now: datetime) -> tuple[int | None, dict[str, float]]:
    snaps, scores = tables.wallet_graph_snapshots, tables.wallet_graph_scores
    latest = conn.execute(select(func.max(snaps.c.snapshot_at)).where(snaps.c.snapshot_at <= now)).scalar()
    if latest is None:
        return None, {}
    rows = conn.execute(
        select(scores.c.wallet_address, scores.c.centrality).where(scores.c.snapshot_at == latest)
    )
    return to_us(latest), {w: float(c) for w, c in rows}


def dispose_gradually(state: FeatureState) -> None:
    """Empty a replaced state's indexes a slice at a time, releasing the GIL between slices. Dropped at
    once, the last reference would free hundreds of thousands of objects in one deallocation that holds the
    GIL throughout (650 ms for 200,000 transactions): a stall for every request of the worker."""
    for container in list(vars(state).values()):
        if isinstance(container, dict):
            while container:
                for _ in range(min(DISPOSE_SLICE, len(container))):
                    container.popitem()
                time.sleep(0)  # lets the event loop take the GIL
        elif isinstance(container, list):
            while container:
                del container[-DISPOSE_SLICE:]
                time.sleep(0)


# ------------------------------------------------------------------------------------------ keeper
class StateKeeper:
    """Owns one worker's `FeatureState` (see the module doc). Thread-safe."""

    def __init__(
        self,
        engine: Engine,
        params: FeatureParams,
        feed: Feed,
        *,
        refresh_s: float = 5.0,
        rebuild_s: float = 900.0,
        clock: Any = lambda: datetime.now(UTC),
        freeze_gc: bool = False,
    ) -> None:
        self.engine = engine
        self.freeze_gc = freeze_gc
        self.params = params
        self.feed = feed
        self.refresh_s = refresh_s
        self.rebuild_s = rebuild_s
        self.clock = clock
        self.shared = isinstance(feed, RedisFeed)
        self._lock = threading.RLock()
        self._state: FeatureState | None = None
        self._lists = WalletLists({}, {})
        self._lists_version = 0  # bumped by refresh_lists: a load that read the lists before must re-read
        self._labels_fp: tuple[Any, ...] | None = None  # the labels the state holds (see `refresh`)
        self._position = "0"
        self._epoch = 0
        self._stale = True
        self._loaded_at = 0.0  # last full load, or last check that found the state equal to the database
        self._built_at = 0.0  # last full load
        self.checks_passed = 0
        self._rebuilding = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = "loading"
        self.rebuilds = 0
        self.load_seconds: float | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, engine: Engine, params: FeatureParams, redis: Any
    ) -> StateKeeper | None:
        """The keeper FEATURE_STATE asks for, or None (the SQL feature source serves alone)."""
        mode = settings.feature_state
        if mode == "sql":
            return None
        if redis is None and mode == "auto" and settings.api_workers > 1:
            log.warning(
                "in-process feature state off: %d workers and no Redis to keep them in step "
                "(set REDIS_URL, or API_WORKERS=1); features are read from the database",
                settings.api_workers,
            )
            return None
        feed: Feed = LocalFeed() if redis is None else shared_feed(settings, redis)
        return cls(
            engine,
            params,
            feed,
            refresh_s=settings.feature_state_refresh_seconds,
            rebuild_s=settings.feature_state_rebuild_seconds,
            freeze_gc=True,
        )

    # ---------------------------------------------------------------------------------- lifecycle
    def start(self, *, load: bool = True) -> None:
        """Load the state now (``load``: the worker starts ready; if the load fails, the SQL path serves
        and the background thread retries), then keep it fresh in the background."""
        if load and self._state is None:
            self.rebuild()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="feature-state", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            now = time.monotonic()
            due = self.rebuild_s > 0 and now - self._loaded_at >= self.rebuild_s
            if self._stale:
                self.rebuild()
            elif due and now - self._built_at < MAX_STATE_AGE_S and self.matches_database():
                self._loaded_at = now  # the state holds what the database holds: checked again in rebuild_s
                self.checks_passed += 1
                self.refresh()
            elif due:
                self.rebuild()
            else:
                self.refresh()

    def matches_database(self) -> bool:
        """Whether the state holds as many transactions older than `SETTLED_S` as the database: a writer
        that bypassed the feed, or rows archived or deleted, make them differ. A reload costs seconds of a
        core per 100,000 rows; this costs one index-only count. False also when it cannot tell."""
        state = self._state
        if state is None:
            return False
        cut = self.clock() - timedelta(seconds=SETTLED_S)
        x = tables.transactions
        try:
            with self.engine.connect() as conn:
                stored = conn.execute(
                    select(func.count()).select_from(x).where(x.c.timestamp < cut)
                ).scalar_one()
        except Exception as exc:
            _reload.failure(f"feature state check: {type(exc).__name__}")
            return False
        cut_us = to_us(cut)
        with self._lock:
            if self._state is not state:
                return False
            held = sum(bisect.bisect_left(e.times, cut_us) for e in state.event_totals.values())
        if held != stored:
            log.info(
                "feature state differs from the database (%d vs %d settled transactions): reloading",
                held,
                stored,
            )
        return held == stored

    @property
    def ready(self) -> bool:
        return self._state is not None and not self._stale

    def info(self) -> dict[str, Any]:
        state = self._state
        return {
            "status": self.status,
            "feed": "redis" if self.shared else "in-process",
            "transactions": state.rows if state is not None else 0,
            "rebuilds": self.rebuilds,
            "load_seconds": self.load_seconds,
        }

    # ---------------------------------------------------------------------------------- loading
    def rebuild(self) -> bool:
        """Load a fresh state from the database and the feed, then swap it in. False if it failed."""
        if not self._rebuilding.acquire(blocking=False):
            return False
        started = time.monotonic()
        lists_version = self._lists_version
        switch_interval = sys.getswitchinterval()
        if self.freeze_gc:
            # Seconds of pure-Python work while requests are served: the event loop, back from every
            # socket wait, must wait for this thread to drop the GIL — after up to the switch interval
            # (5 ms), several times per request. Shorter while the load runs (see REBUILD_SWITCH_S).
            sys.setswitchinterval(REBUILD_SWITCH_S)
        if self.freeze_gc:
            # Young garbage must not be frozen with the new state (below; older garbage is what the
            # collector's own full passes left, and a full pass here would pause every request). No
            # collection while the new state is built: each would walk the growing state again
            # (12 passes, 2.3 s of a 3.5 s load of 200,000 transactions).
            gc.collect(1)
            gc.disable()
        try:
            position = self.feed.position()
            state = FeatureState(self.params)
            with self.engine.connect() as conn:
                state.add_all(read_rows(conn))
                lists = self._read_slow(conn, state)
            with self._lock:
                rows, position, epoch = self.feed.read(position)
                for values in rows:
                    row = Row.from_list(values)
                    if not state.has(row.tid, row.wallet):
                        state.add(row)
                old, self._state, self._lists = self._state, state, lists
                self._position, self._epoch, self._stale = position, epoch, False
                self._loaded_at = self._built_at = time.monotonic()
            if self.freeze_gc:
                # The state is hundreds of thousands of long-lived objects: left to the cyclic collector,
                # every full collection would walk them all (265 ms for 200,000 transactions, a pause for
                # every request in flight). Frozen, the collector skips them; they are still freed by
                # reference counting when the next rebuild replaces them.
                gc.freeze()
            if self._lists_version != lists_version:
                self.refresh_lists()
            if old is not None:
                dispose_gradually(old)  # no request reads it any more (they read `_state` under the lock)
                del old
            self.rebuilds += 1
            self.load_seconds = round(time.monotonic() - started, 3)
            self.status = "ready"
            log.info("feature state loaded: %d transactions in %.1f s", state.rows, self.load_seconds)
            return True
        except Exception as exc:  # database or Redis unavailable: the SQL path serves; try again later
            _reload.failure(f"feature state load: {type(exc).__name__}")
            self.status = "stale" if self._state is not None else "loading"
            return False
        finally:
            sys.setswitchinterval(switch_interval)
            if self.freeze_gc:
                gc.enable()
            self._rebuilding.release()

    def _read_slow(
        self, conn: Connection, state: FeatureState, *, labels_fp: tuple[Any, ...] | None = None
    ) -> WalletLists:
        """Labels, events, lists and the graph snapshot into ``state``; returns the wallet lists.
        ``labels_fp``: the labels' fingerprint, already read — equal to the one held, the labels are not
        read again."""
        fingerprint = labels_fingerprint(conn) if labels_fp is None else labels_fp
        if labels_fp is None or labels_fp != self._labels_fp:
            state.set_labels(read_labels(conn))
        state.set_events(read_events(conn))
        lists = read_lists(conn)
        state.set_blacklist(lists.blacklist)
        state.set_centrality(*read_centrality(conn, self.clock()))
        self._labels_fp = fingerprint
        return lists

    def refresh(self) -> None:
        """Re-read the slowly changing inputs and catch up with the feed (also for an idle worker)."""
        state = self._state
        if state is None:
            return
        lists_version = self._lists_version
        try:
            scratch = FeatureState(self.params)
            with self.engine.connect() as conn:
                # Labels change rarely and are the costly part (a join, and the per-event/seller/party
                # indexes rebuilt in Python while holding the GIL): only when their fingerprint moved.
                fingerprint = labels_fingerprint(conn)
                labels = fingerprint != self._labels_fp
                lists = self._read_slow(conn, scratch, labels_fp=fingerprint)
        except Exception as exc:
            _reload.failure(f"feature state refresh: {type(exc).__name__}")
            return
        _reload.ok()
        with self._lock:
            if self._state is state:
                if labels:
                    state.take_labels(scratch)
                state.set_events(scratch.events)
                state.set_blacklist(scratch.blacklist)
                state.set_centrality(scratch.centrality_at, scratch.centrality)
                self._lists = lists
        if self._lists_version != lists_version:
            self.refresh_lists()
        with contextlib.suppress(Exception):
            if isinstance(self.feed, RedisFeed) and not self.feed.holds(self._position):
                self._mark_stale("feed trimmed past this worker's position")
                return
            self.sync()

    def refresh_lists(self) -> None:
        """A block/allow list changed (`ListChangeWatcher`): re-read the wallet lists now."""
        self._lists_version += 1
        if self._state is None:
            return
        try:
            with self.engine.connect() as conn:
                lists = read_lists(conn)
        except Exception as exc:
            _reload.failure(f"wallet lists reload: {type(exc).__name__}")
            return
        with self._lock:
            if self._state is not None:
                self._state.set_blacklist(lists.blacklist)
            self._lists = lists

    # ---------------------------------------------------------------------------------- requests
    def sync(self) -> None:
        """Apply the feed entries not applied yet. Raises if the feed cannot be read (state marked stale)."""
        with self._lock:
            if self._state is None or self._stale:
                return
            try:
                rows, position, epoch = self.feed.read(self._position)
            except FeedGap:
                self._mark_stale("feed gap")
                return
            except Exception:
                self._mark_stale("feed unreadable")
                raise
            if epoch != self._epoch:
                self._mark_stale(f"feed epoch {self._epoch} → {epoch}")
                return
            for values in rows:
                self._state.add(Row.from_list(values))
            self._position = position

    def _mark_stale(self, why: str) -> None:
        if not self._stale:
            log.warning("feature state stale (%s): rebuilding; features from the database meanwhile", why)
        self._stale = True
        self.status = "stale"

    def primitives(self, txn: Any) -> tuple[dict[str, float] | None, str | None]:
        """The primitives from memory, or None when the state cannot answer (the caller reads SQL), and
        why the answer is degraded (the shared feed is unreachable) or None."""
        if self._state is None or self._stale:
            return None, None
        try:
            self.sync()
        except Exception:
            return None, REDIS_DOWN
        with self._lock:
            if self._state is None or self._stale:
                return None, None
            return self._state.primitives(txn), None

    def event_of_ticket(self, ticket_id: str) -> str | None:
        with self._lock:
            state = self._state
            rows = state.by_ticket.get(ticket_id) if state is not None else None
            return rows[0].event if rows else None

    def wallet_lists(self, wallet: str, at: datetime) -> ListStatus:
        return self._lists.status(wallet, to_us(at))

    def publish(self, transactions: list[dict[str, Any]]) -> None:
        """After the commit of these transactions, before their requests are answered."""
        rows = [row_of(t).as_list() for t in transactions]
        try:
            self.feed.publish(rows)
        except Exception as exc:
            # Durable in the database but not in the feed: every state must be rebuilt (the epoch).
            _redis.failure(f"feature feed publish: {type(exc).__name__} (states will be rebuilt)")
            self._mark_stale("publish failed")
        else:
            _redis.ok()
