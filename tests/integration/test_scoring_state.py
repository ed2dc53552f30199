"""The scoring path's feature source (event aggregates split into a cached base + SQL delta) returns the
same primitives as the plain SQL source, on SQLite and PostgreSQL, including rows written after the base."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from sqlalchemy import insert

from ticketguard import tables
from ticketguard.features.online import SqlFeatureSource
from ticketguard.features.repository import TransactionFacts
from ticketguard.features.specs import FeatureParams
from ticketguard.history import write_history
from ticketguard.kit.db import make_engine
from ticketguard.scoring.state import CachedFeatureSource
from ticketguard.simulate import SimulationConfig, simulate


def _close(a: dict[str, float], b: dict[str, float]) -> list[str]:
    return [k for k in a if not np.isclose(a[k], b[k], rtol=1e-9, atol=1e-9, equal_nan=True)]


def test_cached_event_aggregates_equal_the_sql_source(db_url: str) -> None:
    params = FeatureParams()
    history = simulate(SimulationConfig(transactions=3000, seed=5))
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            write_history(conn, history)
        plain = SqlFeatureSource(engine, params)
        cached = CachedFeatureSource(engine, params, ttl_s=3600)
        rows = history.transactions.sample(300, random_state=3).sort_values("timestamp")
        mismatches = {}
        with engine.connect() as conn:
            for record in rows.to_dict("records"):
                txn = TransactionFacts.from_mapping(record)
                a, b = cached.primitives_in(conn, txn), plain.primitives_in(conn, txn)
                assert a.keys() == b.keys()
                bad = _close(a, b)
                if bad:
                    mismatches[txn.transaction_id] = {k: (a[k], b[k]) for k in bad}
        assert not mismatches, list(mismatches.items())[:3]
        cache = cached.cache
        assert cache is not None
        assert cache.hits > 0  # the comparison ran through cached bases, not only fresh ones
        assert cache.misses > 0

        # A transaction committed after the base was computed is seen through the delta.
        last = rows.iloc[-1].to_dict()
        txn = TransactionFacts.from_mapping(last)
        later = txn.timestamp + timedelta(minutes=5)
        probe = TransactionFacts(
            transaction_id="probe",
            wallet_address="0xabc",
            event_id=txn.event_id,
            timestamp=later,
            price_paid=10,
        )
        with engine.connect() as conn:
            before = cached.primitives_in(conn, probe)
        with engine.begin() as conn:
            conn.execute(
                insert(tables.transactions).values(
                    transaction_id="new-1",
                    wallet_address="0xdef",
                    event_id=txn.event_id,
                    price_paid=123,
                    is_resale=False,
                    timestamp=later - timedelta(seconds=10),
                    latitude=1.0,
                    longitude=2.0,
                )
            )
        with engine.connect() as conn:
            after = cached.primitives_in(conn, probe)
            exact = plain.primitives_in(conn, probe)
        assert after["e_n_all"] == before["e_n_all"] + 1
        assert after["e_spend_all"] == before["e_spend_all"] + 123
        assert after["e_located_n"] == before["e_located_n"] + 1
        assert not _close(after, exact)
    finally:
        engine.dispose()


def test_event_bases_are_shared_through_redis_and_redis_down_falls_back(
    sqlite_url: str, redis_url: str
) -> None:
    import redis

    params = FeatureParams()
    history = simulate(SimulationConfig(transactions=1500, seed=9))
    engine = make_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            write_history(conn, history)
        plain = SqlFeatureSource(engine, params)
        client = redis.Redis.from_url(redis_url)
        worker_a = CachedFeatureSource(engine, params, ttl_s=3600, redis_client=client)
        worker_b = CachedFeatureSource(
            engine, params, ttl_s=3600, redis_client=redis.Redis.from_url(redis_url)
        )
        down = CachedFeatureSource(
            engine,
            params,
            ttl_s=3600,
            redis_client=redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.05),
        )
        rows = history.transactions.sample(40, random_state=1).sort_values("timestamp")
        reasons: list[str | None] = []
        with engine.connect() as conn:
            for record in rows.to_dict("records"):
                txn = TransactionFacts.from_mapping(record)
                exact = plain.primitives_in(conn, txn)
                a, why_a = worker_a.primitives_status(conn, txn)
                b, why_b = worker_b.primitives_status(conn, txn)
                c, why_c = down.primitives_status(conn, txn)
                assert not _close(a, exact)
                assert not _close(b, exact)
                assert not _close(c, exact)  # Redis down: the same numbers, from the database
                assert why_a is None
                assert why_b is None
                reasons.append(why_c)
        # Every base that Redis should have served (not yet in process memory) is reported; hits are not.
        assert down.cache is not None
        degraded = [r for r in reasons if r is not None]
        assert len(degraded) == down.cache.misses > 0
        assert all("redis unavailable" in r for r in degraded)
        assert worker_a.cache is not None
        assert worker_b.cache is not None
        # B found the bases A had computed in Redis instead of computing them again.
        assert worker_b.cache.shared_hits > 0
        assert worker_b.cache.misses < worker_a.cache.misses + worker_a.cache.hits
        assert any(k.startswith(b"ticketguard:scoring:evbase:") for k in client.keys("*"))
    finally:
        engine.dispose()


def test_warm_computes_the_bases_of_the_latest_events(sqlite_url: str) -> None:
    params = FeatureParams()
    history = simulate(SimulationConfig(transactions=1000, seed=4))
    engine = make_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            write_history(conn, history)
        source = CachedFeatureSource(engine, params, ttl_s=3600)
        last = history.transactions.sort_values("timestamp").iloc[-1].to_dict()
        txn = TransactionFacts.from_mapping(last)
        later = txn.timestamp + timedelta(seconds=1)
        with engine.connect() as conn:
            assert source.warm(conn, later, limit=5) == 5
            cache = source.cache
            assert cache is not None
            misses = cache.misses
            probe = TransactionFacts(
                transaction_id="p",
                wallet_address="0xabc",
                event_id=txn.event_id,
                timestamp=later,
                price_paid=1,
            )
            source.primitives_in(conn, probe)  # the latest transaction's event is among the warmed ones
        assert cache.misses == misses
        assert cache.hits >= 1
    finally:
        engine.dispose()
