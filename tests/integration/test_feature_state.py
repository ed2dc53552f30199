"""The in-memory online feature state equals the SQL feature source, and stays equal as workers write.

* Parity: every primitive of `FeatureState` (loaded by `StateKeeper` from the database) equals
  `SqlFeatureSource`'s on simulated histories and on a collision-heavy one with labels, ties, nulls and a
  blacklist — at each transaction's own time, so the "strictly before t" rules are exercised against rows
  the state already holds — on SQLite and PostgreSQL.
* Change feed: two keepers sharing one Redis feed (two API workers) see each other's committed rows;
  a lost publication bumps the epoch and every state rebuilds; an unreachable Redis sends the request to the
  SQL path marked degraded; a reload replays what was published while it read the database, once.
"""

from __future__ import annotations

import importlib.util
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, delete, insert, text

from ticketguard import tables
from ticketguard.features.online import SqlFeatureSource
from ticketguard.features.repository import TransactionFacts
from ticketguard.features.service import refresh_graph_snapshot, snapshot_days
from ticketguard.features.specs import FeatureParams, primitive_names
from ticketguard.history import History, write_history
from ticketguard.kit.db import make_engine
from ticketguard.scoring.online import REDIS_DOWN, LocalFeed, RedisFeed, StateKeeper
from ticketguard.security.lists import ListChangeWatcher
from ticketguard.simulate import SimulationConfig, simulate


def _unit_helpers() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "unit" / "test_features_offline.py"
    spec = importlib.util.spec_from_file_location("features_offline_helpers_state", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mismatches(a: dict[str, float], b: dict[str, float]) -> dict[str, tuple[float, float]]:
    return {k: (a[k], b[k]) for k in b if not np.isclose(a[k], b[k], rtol=1e-9, atol=1e-6, equal_nan=True)}


def _keeper(engine: Engine, params: FeatureParams, feed: Any = None, **kw: Any) -> StateKeeper:
    keeper = StateKeeper(engine, params, feed or LocalFeed(), **kw)
    assert keeper.rebuild(), "the state did not load"
    return keeper


def _assert_parity(engine: Engine, rows: pd.DataFrame, params: FeatureParams) -> StateKeeper:
    keeper = _keeper(engine, params)
    sql = SqlFeatureSource(engine, params)
    state = keeper._state
    assert state is not None
    bad = {}
    with engine.connect() as conn:
        for record in rows.to_dict("records"):
            txn = TransactionFacts.from_mapping(record)
            memory = state.primitives(txn)
            assert set(memory) == set(primitive_names(params))
            diff = _mismatches(memory, sql.primitives_in(conn, txn))
            if diff:
                bad[txn.transaction_id] = diff
    assert not bad, f"{len(bad)} of {len(rows)} differ, e.g. {list(bad.items())[:3]}"
    return keeper


def test_state_equals_sql_on_simulated_history(db_url: str) -> None:
    params = FeatureParams()
    history = simulate(SimulationConfig(transactions=4000, seed=11))
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            write_history(conn, history)
        rows = history.transactions.sample(600, random_state=3)
        keeper = _assert_parity(engine, rows, params)
        assert keeper.info()["transactions"] == len(history.transactions)
        # Features that vary, so the comparison means something (labels included).
        state = keeper._state
        assert state is not None
        values = pd.DataFrame(
            [state.primitives(TransactionFacts.from_mapping(r)) for r in rows.to_dict("records")]
        )
        assert (values.nunique() > 1).sum() >= 30
        assert values["e_risk_fraud"].max() > 0
    finally:
        engine.dispose()


def test_state_equals_sql_with_ties_nulls_labels_and_a_blacklist(db_url: str) -> None:
    helpers = _unit_helpers()
    history: History = helpers.random_history(5, n=500)
    params = helpers.LEAK_PARAMS
    tx = history.transactions
    sellers = tx["seller_address"].dropna().unique()[:3]
    t0 = tx["timestamp"].min().to_pydatetime()
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            write_history(conn, history)
            conn.execute(
                insert(tables.blacklisted_wallets),
                [
                    {"wallet_address": w, "reason": "t", "timestamp": t0 + timedelta(days=d), "expires_at": e}
                    for w, d, e in zip(sellers, (1, 2, 3), (None, t0 + timedelta(days=6), None), strict=True)
                ],
            )
        _assert_parity(engine, tx, params)
    finally:
        engine.dispose()


def test_centrality_is_the_latest_snapshots(engine: Engine) -> None:
    helpers = _unit_helpers()
    history: History = helpers.random_history(6, n=300)
    params = FeatureParams()
    with engine.begin() as conn:
        write_history(conn, history)
    for day in snapshot_days(history.transactions["timestamp"]):
        refresh_graph_snapshot(engine, params, day=day, keep_days=10_000)
    after = history.transactions["timestamp"].max().to_pydatetime() + timedelta(days=2)
    keeper = _keeper(engine, params, clock=lambda: after)
    sql = SqlFeatureSource(engine, params)
    state = keeper._state
    assert state is not None
    seen = 0
    with engine.connect() as conn:
        for w in history.transactions["wallet_address"].unique():
            txn = TransactionFacts(
                transaction_id="q", wallet_address=w, event_id="e", timestamp=after, price_paid=1
            )
            a, b = state.primitives(txn)["centrality"], sql.primitives_in(conn, txn)["centrality"]
            assert a == pytest.approx(b, nan_ok=True)
            seen += 0 if np.isnan(a) else 1
    assert seen > 3


# ------------------------------------------------------------------------------------------ feed
def _api_row(tid: str, wallet: str, event: str, at: datetime, **extra: Any) -> dict[str, Any]:
    row = {
        "transaction_id": tid,
        "wallet_address": wallet,
        "event_id": event,
        "ticket_id": f"{event}-{tid}",
        "price_paid": Decimal("40"),
        "payment_method": "card",
        "is_resale": False,
        "timestamp": at,
        "seller_address": None,
        "ip_address": "198.51.100.7",
        "latitude": None,
        "longitude": None,
        "source": "api",
        "status": "approved",
    }
    return row | extra


def _commit(engine: Engine, keeper: StateKeeper, row: dict[str, Any]) -> None:
    """What the group committer does: the row lands, then it is published."""
    with engine.begin() as conn:
        conn.execute(insert(tables.transactions), [row])
    keeper.publish([row])


def _probe(wallet: str, event: str, at: datetime) -> TransactionFacts:
    return TransactionFacts(
        transaction_id="probe",
        wallet_address=wallet,
        event_id=event,
        timestamp=at,
        price_paid=10,
        ip_address="198.51.100.7",
    )


def _feed(redis_url: str, name: str) -> RedisFeed:
    import redis

    return RedisFeed(redis.Redis.from_url(redis_url), key=f"test:feed:{name}", epoch_key=f"test:epoch:{name}")


def test_two_workers_see_each_others_rows_through_the_redis_feed(postgres_url: str, redis_url: str) -> None:
    params = FeatureParams()
    engine = make_engine(postgres_url)
    try:
        a = _keeper(engine, params, _feed(redis_url, "two"))
        b = _keeper(engine, params, _feed(redis_url, "two"))
        now = datetime.now(UTC)
        w = "0x" + "ab" * 20
        for i in range(3):
            _commit(
                engine,
                a if i % 2 == 0 else b,
                _api_row(f"r{i}", w, "evt-feed", now - timedelta(minutes=3 - i)),
            )
        sql = SqlFeatureSource(engine, params)
        with engine.connect() as conn:
            exact = sql.primitives_in(conn, _probe(w, "evt-feed", now))
        for keeper in (a, b):
            got, degraded = keeper.primitives(_probe(w, "evt-feed", now))
            assert degraded is None
            assert got is not None
            assert got["w_n_1h"] == 3 == exact["w_n_1h"]
            assert not _mismatches(got, exact)
        # A publication lost after its commit (Redis failed): the epoch moves and both states rebuild.
        lost = _api_row("r-lost", w, "evt-feed", now - timedelta(seconds=30))
        with engine.begin() as conn:
            conn.execute(insert(tables.transactions), [lost])
        assert isinstance(a.feed, RedisFeed)
        a.feed.lost = True
        _commit(engine, a, _api_row("r-after", w, "evt-feed", now - timedelta(seconds=20)))
        for keeper in (a, b):
            got, _ = keeper.primitives(_probe(w, "evt-feed", now))
            assert got is None  # stale: the SQL path answers until the rebuild
            assert keeper.status == "stale"
            assert keeper.rebuild()
            got, _ = keeper.primitives(_probe(w, "evt-feed", now))
            assert got is not None
            assert got["w_n_1h"] == 5
    finally:
        engine.dispose()


def test_reload_replays_rows_published_while_it_read_the_database_once(sqlite_url: str) -> None:
    params = FeatureParams()
    engine = make_engine(sqlite_url)
    try:
        feed = LocalFeed()
        keeper = _keeper(engine, params, feed)
        now = datetime.now(UTC)
        w = "0x" + "cd" * 20
        _commit(engine, keeper, _api_row("x1", w, "evt-r", now - timedelta(minutes=2)))
        # A reload whose database read already holds x1, and whose feed replay also brings x1 and x2.
        position = feed.position()
        _commit(engine, keeper, _api_row("x2", w, "evt-r", now - timedelta(minutes=1)))
        keeper.feed = _Rewound(feed, position)
        assert keeper.rebuild()
        got, _ = keeper.primitives(_probe(w, "evt-r", now))
        assert got is not None
        assert (got["w_n_1h"], got["e_n_all"]) == (2, 2)
    finally:
        engine.dispose()


class _Rewound:
    """The feed as a reload sees it when rows were published between its position and its database read."""

    def __init__(self, feed: LocalFeed, position: str) -> None:
        self.feed, self.start = feed, position

    def position(self) -> str:
        return "0"

    def read(self, after: str) -> tuple[list[list[Any]], str, int]:
        return self.feed.read(after)

    def publish(self, rows: list[list[Any]]) -> None:
        self.feed.publish(rows)


def test_redis_down_sends_requests_to_sql_marked_degraded_then_recovers(
    sqlite_url: str, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    import redis

    url, proc = own_redis
    params = FeatureParams()
    engine = make_engine(sqlite_url)
    try:
        client = redis.Redis.from_url(url, socket_timeout=0.2, socket_connect_timeout=0.2)
        keeper = _keeper(engine, params, RedisFeed(client, key="f", epoch_key="e"))
        now = datetime.now(UTC)
        w = "0x" + "ef" * 20
        _commit(engine, keeper, _api_row("d1", w, "evt-d", now - timedelta(minutes=1)))
        got, degraded = keeper.primitives(_probe(w, "evt-d", now))
        assert got is not None
        assert degraded is None
        assert got["w_n_1h"] == 1
        proc.kill()
        proc.wait()
        got, degraded = keeper.primitives(_probe(w, "evt-d", now))
        assert got is None
        assert degraded == REDIS_DOWN
        assert not keeper.ready
        assert not keeper.rebuild()  # no feed to anchor a reload on: the SQL path keeps serving
    finally:
        engine.dispose()


def _wait(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.postgres
def test_list_changes_reach_the_worker_at_once_through_notify(postgres_url: str) -> None:
    """A blacklist change made by plain SQL reaches a worker's in-memory lists in well under a second,
    though its periodic refresh is an hour away; after the listener's connection is killed it reconnects
    and re-reads (changes may have been missed), and later changes arrive again."""
    engine = make_engine(postgres_url)
    keeper = _keeper(engine, FeatureParams(), refresh_s=3600)
    watcher = ListChangeWatcher(engine)
    watcher.subscribe(keeper.refresh_lists)
    fired = threading.Event()
    watcher.subscribe(fired.set)
    bad = "0x" + "ab" * 20
    try:
        watcher.start()
        assert _wait(lambda: watcher.connected, 5.0)
        assert not keeper.wallet_lists(bad, datetime.now(UTC)).blocked
        with engine.begin() as conn:
            conn.execute(
                insert(tables.blacklisted_wallets).values(
                    wallet_address=bad, reason="t", timestamp=datetime.now(UTC) - timedelta(seconds=1)
                )
            )
        assert fired.wait(1.0)
        assert keeper.wallet_lists(bad, datetime.now(UTC)).blocked
        assert keeper._state is not None
        assert bad in keeper._state.blacklist  # the counterparty-blacklisted features see it too

        fired.clear()
        with engine.begin() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query = 'LISTEN ticketguard_lists'"
                )
            ).scalar()
        assert killed == 1
        assert fired.wait(5.0)  # reconnected, and re-read once
        assert _wait(lambda: watcher.connected, 5.0)

        fired.clear()
        with engine.begin() as conn:
            conn.execute(
                delete(tables.blacklisted_wallets).where(tables.blacklisted_wallets.c.wallet_address == bad)
            )
        assert fired.wait(1.0)
        assert not keeper.wallet_lists(bad, datetime.now(UTC)).blocked
    finally:
        watcher.stop()
        engine.dispose()


def test_list_watcher_is_off_on_sqlite(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    watcher = ListChangeWatcher(engine)
    watcher.start()
    assert not watcher.supported
    assert watcher._thread is None
    engine.dispose()


def test_refresh_rereads_labels_only_when_they_changed(sqlite_url: str) -> None:
    """The periodic refresh skips the costly label read while the labels' fingerprint stands still, and
    picks up a new label, a relabel and a removal."""
    engine = make_engine(sqlite_url)
    try:
        keeper = _keeper(engine, FeatureParams())
        now = datetime.now(UTC)
        _commit(engine, keeper, _api_row("l1", "0x" + "11" * 20, "evt-l", now - timedelta(days=30)))
        state = keeper._state
        assert state is not None
        keeper.refresh()
        unchanged = state._fraud_by_event
        keeper.refresh()
        assert state._fraud_by_event is unchanged  # not rebuilt: nothing moved

        def label(**values: Any) -> None:
            with engine.begin() as conn:
                conn.execute(delete(tables.fraud_labels))
                if values:
                    conn.execute(
                        insert(tables.fraud_labels).values(
                            transaction_id="l1",
                            source="analyst",
                            labelled_at=now - timedelta(days=1),
                            **values,
                        )
                    )
            keeper.refresh()

        label(is_fraud=True)
        assert [x.tid for x in state._fraud_by_event["evt-l"]] == ["l1"]
        label(is_fraud=False)  # relabelled legit: same count, same date
        assert "evt-l" not in state._fraud_by_event
        label(is_fraud=True)
        label()  # removed
        assert "evt-l" not in state._fraud_by_event
    finally:
        engine.dispose()


def test_the_loaded_state_is_frozen_out_of_the_cyclic_collector(sqlite_url: str) -> None:
    """A server keeper freezes its state after loading it (full collections would walk every row: a
    pause of every request in flight), and leaves the collector enabled — also when the load fails."""
    import gc

    engine = make_engine(sqlite_url)
    try:
        gc.unfreeze()
        keeper = _keeper(engine, FeatureParams(), freeze_gc=True)
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
        assert keeper._state is not None
        state = keeper._state
        assert gc.is_tracked(state)
        assert all(o is not state for o in gc.get_objects())  # the collector's generations skip it
        engine.dispose()  # a load that fails (the database is gone) still re-enables the collector
        broken = StateKeeper(
            make_engine("sqlite:////nonexistent/dir/x.db"), FeatureParams(), LocalFeed(), freeze_gc=True
        )
        assert not broken.rebuild()
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        engine.dispose()


def test_bulk_writes_outside_the_api_make_the_workers_reload(postgres_url: str, redis_url: str) -> None:
    """A simulation written by the CLI (as an import, retention or an erasure would) moves the shared feed's
    epoch: a worker's state turns stale and reloads with the new rows, not 15 minutes later."""
    from typer.testing import CliRunner

    from ticketguard.cli import app
    from ticketguard.config import Settings
    from ticketguard.scoring.online import redis_client

    settings = Settings(database_url=postgres_url, redis_url=redis_url, api_workers=2)
    engine = make_engine(postgres_url)
    try:
        keeper = StateKeeper.from_settings(settings, engine, FeatureParams(), redis_client(settings))
        assert keeper is not None
        assert keeper.shared
        assert keeper.rebuild()
        assert keeper._state is not None
        assert keeper._state.rows == 0
        result = CliRunner().invoke(
            app,
            ["simulate", "-n", "1000", "--seed", "2", "--days", "30"],
            env={"COLUMNS": "200", "DATABASE_URL": postgres_url, "REDIS_URL": redis_url},
        )
        assert result.exit_code == 0, result.output
        keeper.sync()
        assert not keeper.ready  # the epoch moved
        assert keeper.rebuild()
        assert keeper._state.rows == 1000
    finally:
        engine.dispose()


def test_retention_that_archived_transactions_moves_the_epoch(postgres_url: str, redis_url: str) -> None:
    import redis

    from ticketguard.config import Settings
    from ticketguard.retention.service import RetentionReport, TableReport, tell_feature_state
    from ticketguard.scoring.online import redis_client, shared_feed

    settings = Settings(database_url=postgres_url, redis_url=redis_url)
    feed = shared_feed(settings, redis_client(settings))
    client = redis.Redis.from_url(redis_url)

    def epoch() -> int:
        return int(client.get(feed.epoch_key) or 0)

    now = datetime.now(UTC)

    def report(table: str, archived: int, dry_run: bool = False) -> RetentionReport:
        return RetentionReport(
            dry_run=dry_run,
            now=now,
            tables=[TableReport(table, f"{table}_archive", now, None, archived=archived)],
        )

    tell_feature_state(settings, report("transactions", 0))
    tell_feature_state(settings, report("fraud_predictions", 10))
    tell_feature_state(settings, report("transactions", 10, dry_run=True))
    assert epoch() == 0
    tell_feature_state(settings, report("transactions", 10))
    assert epoch() == 1
    client.close()


def test_a_reload_frees_the_old_state_in_slices_and_restores_the_switch_interval(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload beside live requests: the replaced state is emptied a slice at a time (dropped at once,
    its deallocation held the GIL for 650 ms at 200,000 rows), the new one answers as the old did, and the
    interpreter's switch interval is back to what it was."""
    import sys

    from ticketguard.scoring import online

    history = simulate(SimulationConfig(transactions=3000, seed=5))
    engine = make_engine(db_url)
    interval = sys.getswitchinterval()
    slices: list[int] = []
    real_sleep = time.sleep
    monkeypatch.setattr(online, "DISPOSE_SLICE", 100)
    try:
        with engine.begin() as conn:
            write_history(conn, history)
        keeper = _keeper(engine, FeatureParams(), freeze_gc=True)
        old = keeper._state
        assert old is not None
        probes = [
            TransactionFacts.from_mapping(r)
            for r in history.transactions.sample(50, random_state=1).to_dict("records")
        ]
        before = [old.primitives(t) for t in probes]
        wallets = len(old.by_wallet)
        assert wallets > online.DISPOSE_SLICE  # so that it takes several slices

        def counting_sleep(seconds: float) -> None:
            slices.append(len(old.by_wallet))
            real_sleep(seconds)

        monkeypatch.setattr(online.time, "sleep", counting_sleep)
        assert keeper.rebuild()
        monkeypatch.undo()
        new = keeper._state
        assert new is not None
        assert new is not old
        assert (old.by_wallet, old.by_event, old.by_ticket, old.wallet_totals) == ({}, {}, {}, {})
        assert wallets - 100 in slices  # released the GIL after the first slice of 100
        after = [new.primitives(t) for t in probes]
        assert all(not _mismatches(a, b) for a, b in zip(after, before, strict=True))
        assert sys.getswitchinterval() == interval
    finally:
        import gc

        gc.unfreeze()
        sys.setswitchinterval(interval)
        engine.dispose()


def test_the_periodic_check_reloads_only_when_the_database_differs(sqlite_url: str) -> None:
    """Every rebuild interval the keeper compares its settled transactions with the database's (one count)
    and reloads only when they differ: rows published through the feed keep it equal; a row written by
    plain SQL, or a deleted one, makes it reload; a row younger than SETTLED_S is not judged yet."""
    engine = make_engine(sqlite_url)
    now = datetime.now(UTC)
    try:
        keeper = StateKeeper(engine, FeatureParams(), LocalFeed(), refresh_s=0.05, rebuild_s=0.1)
        old = [
            _api_row(f"t{i}", f"0xw{i % 3}", f"evt-{i % 2}", now - timedelta(hours=2, minutes=i))
            for i in range(6)
        ]
        with engine.begin() as conn:
            conn.execute(insert(tables.transactions), old[:4])
        assert keeper.rebuild()
        assert keeper.matches_database()
        _commit(engine, keeper, old[4])  # through the feed, as the API writes
        keeper.sync()
        assert keeper.matches_database()
        with engine.begin() as conn:  # a young row by plain SQL: not judged before it settles
            conn.execute(insert(tables.transactions), [_api_row("young", "0xw1", "evt-0", now)])
        assert keeper.matches_database()
        with engine.begin() as conn:  # an old row by plain SQL: the state lacks it
            conn.execute(insert(tables.transactions), [old[5]])
        assert not keeper.matches_database()

        keeper.start(load=False)  # the background loop: reloads once, then only checks
        assert _wait(lambda: keeper.rebuilds == 2 and keeper.checks_passed >= 2, 5.0)
        assert keeper.info()["transactions"] == 7
        with engine.begin() as conn:
            conn.execute(delete(tables.transactions).where(tables.transactions.c.transaction_id == "t0"))
        assert _wait(lambda: keeper.rebuilds == 3, 5.0)
        assert keeper.info()["transactions"] == 6
        passed = keeper.checks_passed
        assert _wait(lambda: keeper.checks_passed > passed, 5.0)
        assert keeper.rebuilds == 3
    finally:
        keeper.stop()
        engine.dispose()
