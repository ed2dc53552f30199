"""Reporting views on real SQLite and PostgreSQL: the figures they compute, and that refreshing them
never blocks a reader."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from sqlalchemy import Engine, Integer, event, make_url, text

from ticketguard import tables
from ticketguard.kit.db import bulk_insert, make_engine
from ticketguard.kit.types import UTCDateTime
from ticketguard.views import VIEW_NAMES, refresh_view, refresh_views

NOW = datetime.now(UTC).replace(microsecond=0)

ALLOW, NEW, VIP, REGULAR, CASUAL, SCALPER, BUYER2 = (f"0x{i:040x}" for i in range(1, 8))


def _ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def _tx(
    tid: str, wallet: str, event: str, price: str | None, days: float, **extra: object
) -> dict[str, object]:
    row: dict[str, object] = {
        "transaction_id": tid,
        "wallet_address": wallet,
        "event_id": event,
        "ticket_id": f"{event}-{tid}",
        "price_paid": price,
        "payment_method": "card",
        "is_resale": False,
        "status": "completed",
        "timestamp": _ago(days),
        "source": "simulator",
    }
    row.update(extra)
    return row


def _seed(engine: Engine) -> None:
    events = [
        {
            "event_id": "EV1",
            "name": "one",
            "organizer_id": "o",
            "capacity": 20,
            "face_value": Decimal("100"),
            "on_sale_at": _ago(500),
            "starts_at": NOW + timedelta(days=30),
        },
    ] + [
        {
            "event_id": f"EV{i}",
            "name": f"e{i}",
            "organizer_id": "o",
            "capacity": 50,
            "face_value": Decimal("150"),
            "on_sale_at": _ago(300),
            "starts_at": NOW + timedelta(days=60),
        }
        for i in range(2, 6)
    ]
    live = [
        _tx("allow-1", ALLOW, "EV1", "100", 100),
        _tx("new-1", NEW, "EV1", "100", 5),
        _tx("new-2", NEW, "EV1", "100", 4),  # blocked by the scorer: not sold
        *[_tx(f"reg-{i}", REGULAR, "EV1", "100", 60 + i) for i in range(3)],
        _tx("reg-failed", REGULAR, "EV1", "100", 59, status="failed"),
        _tx("casual-1", CASUAL, "EV1", "100", 100),
        *[_tx(f"scalp-buy-{i}", SCALPER, "EV1", "100", 70) for i in range(4)],
        *[
            _tx(f"scalp-sell-{i}", BUYER2, "EV1", "150", 50, is_resale=True, seller_address=SCALPER)
            for i in range(3)
        ],
        _tx("transfer-1", ALLOW, "EV1", None, 20, is_resale=True, seller_address=BUYER2),
    ]
    vip_events = ["EV2"] * 3 + ["EV3"] * 3 + ["EV4"] * 2 + ["EV5"] * 2
    live += [_tx(f"vip-{i}", VIP, ev, "150", 40 + 9 * i) for i, ev in enumerate(vip_events)]
    archived = [_tx("casual-old", CASUAL, "EV1", "100", 400)]
    predictions = [
        {"transaction_id": "new-1", "fraud_score": 0.1, "decision": "APPROVED", "timestamp": _ago(5)},
        {"transaction_id": "new-2", "fraud_score": 0.95, "decision": "BLOCKED", "timestamp": _ago(4)},
        {
            "transaction_id": "scalp-sell-0",
            "fraud_score": 0.7,
            "decision": "MANUAL_REVIEW",
            "timestamp": _ago(50),
        },
    ]
    with engine.begin() as conn:
        conn.execute(tables.events.insert(), events)
        bulk_insert(conn, tables.transactions, pd.DataFrame(live))
        bulk_insert(conn, tables.transactions_archive, pd.DataFrame(archived))
        conn.execute(tables.fraud_predictions.insert(), predictions)
        conn.execute(
            tables.fraud_predictions_archive.insert(),
            [
                {
                    "id": 1000,
                    "transaction_id": "casual-old",
                    "fraud_score": 0.05,
                    "decision": "APPROVED",
                    "timestamp": _ago(400),
                }
            ],
        )
        conn.execute(tables.allowlisted_wallets.insert(), [{"wallet_address": ALLOW, "reason": "vip"}])


def test_views_compute_event_analytics_segments_and_hourly_kpis(engine: Engine) -> None:
    _seed(engine)
    results = refresh_views(engine, now=NOW)
    assert [r.name for r in results] == list(VIEW_NAMES)

    with engine.connect() as conn:
        ev1 = conn.execute(text("SELECT * FROM event_analytics WHERE event_id = 'EV1'")).mappings().one()
        # Sold: allow 1 + new 1 (the blocked one excluded) + regular 3 (the failed one excluded)
        # + casual 2 (one of them archived) + scalper 4.
        assert ev1["primary_sold"] == 11
        assert ev1["sold_ratio"] == pytest.approx(11 / 20)
        assert Decimal(ev1["primary_revenue"]) == Decimal(1100)
        assert ev1["resale_count"] == 3
        assert Decimal(ev1["resale_revenue"]) == Decimal(450)
        assert ev1["avg_resale_markup"] == pytest.approx(0.5)
        assert ev1["transfer_count"] == 1
        assert (
            ev1["scored_count"],
            ev1["approved_count"],
            ev1["manual_review_count"],
            ev1["blocked_count"],
        ) == (
            4,
            2,
            1,
            1,
        )
        assert ev1["avg_fraud_score"] == pytest.approx((0.1 + 0.95 + 0.7 + 0.05) / 4)
        ev2 = conn.execute(
            text("SELECT primary_sold, resale_count FROM event_analytics WHERE event_id='EV2'")
        ).one()
        assert tuple(ev2) == (3, 0)

        segments = {
            row.wallet_address: (row.segment, row.behaviour)
            for row in conn.execute(text("SELECT wallet_address, segment, behaviour FROM wallet_segments"))
        }
        assert segments == {
            ALLOW: ("vip", "none"),
            NEW: ("new", "none"),
            VIP: ("vip", "collector"),
            REGULAR: ("regular", "none"),
            CASUAL: ("casual", "none"),
            SCALPER: ("regular", "scalper"),
            BUYER2: ("regular", "none"),
        }
        scalper = conn.execute(
            text(
                "SELECT tickets_bought_365d, resales_sold_365d, avg_sell_markup FROM wallet_segments "
                "WHERE wallet_address = :w"
            ),
            {"w": SCALPER},
        ).one()
        assert (scalper[0], scalper[1]) == (4, 3)
        assert scalper[2] == pytest.approx(0.5)
        casual = conn.execute(
            text("SELECT first_seen_at, tickets_bought_365d FROM wallet_segments WHERE wallet_address = :w")
            .bindparams(w=CASUAL)
            .columns(first_seen_at=UTCDateTime(), tickets_bought_365d=Integer())
        ).one()
        # The 400-day-old purchase (archived) is outside the year but still sets first_seen_at.
        assert casual.tickets_bought_365d == 1
        assert abs(casual.first_seen_at - _ago(400)) < timedelta(seconds=1)
        new_blocked = conn.execute(
            text("SELECT blocked_count FROM wallet_segments WHERE wallet_address = :w"), {"w": NEW}
        ).scalar_one()
        assert new_blocked == 1

        kpi = conn.execute(
            text("SELECT sum(total_transactions), sum(blocked_count), count(*) FROM kpi_hourly")
        ).one()
        assert (int(kpi[0]), int(kpi[1]), kpi[2]) == (2, 1, 2)


def test_refresh_replaces_old_rows_and_rejects_unknown_views(engine: Engine) -> None:
    _seed(engine)
    refresh_views(engine, now=NOW)
    with engine.begin() as conn:
        conn.execute(tables.transactions.delete().where(tables.transactions.c.wallet_address == VIP))
        assert refresh_view(conn, "wallet_segments", now=NOW) == 6
    with pytest.raises(ValueError, match="unknown view nope; accepted: kpi_hourly"):
        refresh_views(engine, ("nope",))


def _sqlite_engine(kind: str, url: str, tmp_path: Path) -> Engine:
    """The two ways the project opens SQLite: the kit's engine (jobs, CLI) and the API workers' pool."""
    if kind == "kit":
        return make_engine(url)
    from ticketguard.api.app import api_engine
    from ticketguard.config import Settings

    return api_engine(Settings(database_url=url, data_dir=tmp_path, _env_file=None))  # type: ignore[call-arg]


@pytest.mark.parametrize("kind", ["kit", "api"])
def test_sqlite_reader_sees_old_rows_while_a_refresh_is_open(
    sqlite_url: str, tmp_path: Path, kind: str
) -> None:
    engine = _sqlite_engine(kind, sqlite_url, tmp_path)
    _seed(engine)
    refresh_views(engine, now=NOW)
    writer = engine.connect()
    writer.begin()
    writer.execute(tables.transactions.delete())
    refresh_view(writer, "wallet_segments", now=NOW)  # now empty inside the open transaction
    try:
        reader = _sqlite_engine(kind, sqlite_url, tmp_path)
        with reader.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM wallet_segments")).scalar_one() == 7
        reader.dispose()
    finally:
        writer.rollback()
        writer.close()
        engine.dispose()


@pytest.mark.parametrize("kind", ["kit", "api"])
def test_sqlite_refresh_commits_while_a_reader_holds_its_snapshot(
    sqlite_url: str, tmp_path: Path, kind: str
) -> None:
    """WAL: a reader in the middle of a read transaction neither blocks the refresh's commit nor sees it;
    the next read sees the new rows. (Under a rollback journal the commit would wait for the reader, and
    fail after the busy timeout.)"""
    engine = _sqlite_engine(kind, sqlite_url, tmp_path)
    _seed(engine)
    refresh_views(engine, now=NOW)
    with engine.begin() as conn:
        conn.execute(tables.transactions.delete().where(tables.transactions.c.wallet_address == VIP))
    path = make_url(sqlite_url).database
    assert path is not None
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM wallet_segments").fetchone() == (7,)
        refreshed = refresh_views(engine, ("wallet_segments",), now=NOW)  # commits under the open reader
        assert refreshed[0].rows == 6
        assert reader.execute("SELECT count(*) FROM wallet_segments").fetchone() == (7,)  # its snapshot
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM wallet_segments").fetchone() == (6,)
    finally:
        reader.close()
        engine.dispose()


def _psycopg_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _read_with_lock_timeout(dsn: str, lock_timeout_ms: int) -> tuple[int | None, str | None]:
    with psycopg.connect(dsn, autocommit=True) as reader:
        reader.execute(f"SET lock_timeout = {lock_timeout_ms}")
        try:
            row = reader.execute("SELECT count(*) FROM event_analytics").fetchone()
            return (row[0] if row else None), None
        except psycopg.errors.LockNotAvailable as exc:
            return None, type(exc).__name__


@pytest.mark.postgres
def test_postgres_refresh_job_does_not_block_a_reader(postgres_url: str) -> None:
    """The project's own refresh — the refresh-views job, as the worker runs it — is held open right after
    its REFRESH of event_analytics (its locks taken, its transaction not committed) while a reader with a
    2 s lock timeout reads the view: the reader gets the old rows and no timeout."""
    from ticketguard.config import Settings
    from ticketguard.jobs.runner import run_job

    engine = make_engine(postgres_url)
    _seed(engine)
    refresh_views(engine)
    dsn = _psycopg_url(postgres_url)
    inside, release = threading.Event(), threading.Event()

    @event.listens_for(engine, "after_cursor_execute")
    def _hold(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("REFRESH MATERIALIZED VIEW") and "event_analytics" in statement:
            inside.set()
            release.wait(60)

    runs: list[Any] = []
    job = threading.Thread(target=lambda: runs.append(run_job("refresh-views", Settings(), engine)))
    job.start()
    try:
        assert inside.wait(60), "the job never refreshed event_analytics"
        count, error = _read_with_lock_timeout(dsn, 2000)
    finally:
        release.set()
        job.join(60)
    assert error is None, "the reader waited for the refresh's lock"
    assert count == 5
    assert runs[0].status == "succeeded", runs[0].error
    engine.dispose()


@pytest.mark.postgres
def test_postgres_plain_refresh_blocks_the_same_reader(postgres_url: str) -> None:
    """The control of the test above: a refresh without CONCURRENTLY (ACCESS EXCLUSIVE) makes the same
    reader time out — so that test would see a blocking refresh."""
    engine = make_engine(postgres_url)
    _seed(engine)
    refresh_views(engine)
    with engine.connect() as conn, conn.begin():
        refresh_view(conn, "event_analytics", concurrently=False)
        outcome: list[tuple[int | None, str | None]] = []
        reader = threading.Thread(
            target=lambda: outcome.append(_read_with_lock_timeout(_psycopg_url(postgres_url), 500))
        )
        reader.start()
        reader.join(60)
    assert outcome == [(None, "LockNotAvailable")]
    engine.dispose()


W_NEW, W_OLD, W_YEAR, W_6D, W_8D = (f"0x{i:040x}" for i in range(101, 106))


def test_view_windows_end_at_7_30_and_365_days_on_both_databases(engine: Engine) -> None:
    """Rows 0.2 days inside and outside each window — kpi_hourly's 7 days, the 'new' segment's 30, the
    365-day counts — give the same figures on SQLite (the refresh's own window parameters) and PostgreSQL
    (the views' SQL)."""
    with engine.begin() as conn:
        conn.execute(
            tables.events.insert(),
            [
                {
                    "event_id": "EV1",
                    "name": "one",
                    "organizer_id": "o",
                    "capacity": 20,
                    "face_value": Decimal("100"),
                    "on_sale_at": _ago(500),
                    "starts_at": NOW + timedelta(days=30),
                }
            ],
        )
        rows = [
            _tx("w-6d", W_6D, "EV1", "100", 6.8),
            _tx("w-8d", W_8D, "EV1", "100", 7.2),
            _tx("w-new", W_NEW, "EV1", "100", 29.8),
            _tx("w-old", W_OLD, "EV1", "100", 30.2),
            _tx("w-year-in", W_YEAR, "EV1", "100", 364.8),
            _tx("w-year-out", W_YEAR, "EV1", "100", 365.2),
        ]
        bulk_insert(conn, tables.transactions, pd.DataFrame(rows))
    results = refresh_views(engine, now=NOW)
    assert all(0 <= r.seconds < 600 for r in results)  # a duration, measured from the refresh's start
    with engine.connect() as conn:
        assert conn.execute(text("SELECT sum(total_transactions) FROM kpi_hourly")).scalar_one() == 1
        segments = {
            row.wallet_address: (row.segment, row.tickets_bought_365d)
            for row in conn.execute(
                text("SELECT wallet_address, segment, tickets_bought_365d FROM wallet_segments")
            )
        }
    assert segments == {
        W_6D: ("new", 1),
        W_8D: ("new", 1),
        W_NEW: ("new", 1),
        W_OLD: ("casual", 1),
        W_YEAR: ("casual", 1),
    }


def test_sqlite_refresh_without_a_reference_time_uses_the_clock(sqlite_url: str) -> None:
    """The refresh-views job passes no ``now``: the SQLite queries take the current time."""
    engine = make_engine(sqlite_url)
    _seed(engine)
    unset = {r.name: r.rows for r in refresh_views(engine)}
    assert unset == {r.name: r.rows for r in refresh_views(engine, now=NOW)}
    assert unset["kpi_hourly"] == 2
    engine.dispose()


@pytest.mark.postgres
def test_postgres_kpi_hourly_helper_refreshes_concurrently_too(postgres_url: str) -> None:
    """`refresh_kpi_hourly` (kept for the original helper's callers) holds its REFRESH open like the job
    test above: a reader of kpi_hourly with a lock timeout still reads."""
    from ticketguard.views import refresh_kpi_hourly

    engine = make_engine(postgres_url)
    _seed(engine)
    refresh_views(engine)
    outcome: list[tuple[int | None, str | None]] = []

    def read() -> None:
        with psycopg.connect(_psycopg_url(postgres_url), autocommit=True) as reader:
            reader.execute("SET lock_timeout = 2000")
            try:
                row = reader.execute("SELECT count(*) FROM kpi_hourly").fetchone()
                outcome.append((row[0] if row else None, None))
            except psycopg.errors.LockNotAvailable as exc:
                outcome.append((None, type(exc).__name__))

    with engine.connect() as conn, conn.begin():
        refresh_kpi_hourly(conn)
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(60)
    assert outcome == [(2, None)]
    engine.dispose()
