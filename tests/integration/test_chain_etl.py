"""The chain ETL end to end on a real EVM (eth-tester + py-evm, in process) into SQLite and PostgreSQL.

Real contract, real mints, resales and transfers; reorganisations made with the node's snapshot/revert;
provider failures injected at the provider boundary (a subclass of the real in-process provider that
fails chosen calls — the one stand-in here, since a flaky network cannot be had on demand).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, func, insert, select, update
from web3 import EthereumTesterProvider, Web3
from web3.exceptions import Web3RPCError

from ticketguard import tables
from ticketguard.chain import repository
from ticketguard.chain.market import TicketMarket, ether_to_wei
from ticketguard.chain.pipeline import (
    ChainEtl,
    ConcurrentRun,
    EtlConfig,
    EtlReport,
    ProviderFailed,
    ReorgTooDeep,
)
from ticketguard.chain.reader import Web3ChainReader

FACE = ether_to_wei("0.05")
RESALE = ether_to_wei("0.08")


class FlakyTesterProvider(EthereumTesterProvider):
    """The in-process provider, failing the next N calls of chosen methods the way a network does."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: dict[str, int] = {}
        self.error_factory: Callable[[str], Exception] = lambda method: requests.ConnectionError(
            f"injected failure of {method}"
        )
        self.calls: dict[str, int] = {}

    def make_request(self, method: Any, params: Any) -> Any:
        self.calls[method] = self.calls.get(method, 0) + 1
        if self.failures.get(method, 0) > 0:
            self.failures[method] -= 1
            raise self.error_factory(method)
        return super().make_request(method, params)


@dataclass
class Chain:
    w3: Web3
    provider: FlakyTesterProvider
    market: TicketMarket
    accounts: list[str]
    event_id: int

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def block_time(self, number: int) -> datetime:
        return datetime.fromtimestamp(self.w3.eth.get_block(number)["timestamp"], tz=UTC)

    @property
    def head(self) -> int:
        return int(self.w3.eth.block_number)


@pytest.fixture
def chain() -> Chain:
    provider = FlakyTesterProvider()
    w3 = Web3(provider)
    accounts = list(w3.eth.accounts)
    market = TicketMarket.deploy(w3, accounts[0])
    now = int(w3.eth.get_block("latest")["timestamp"])
    event_id = market.create_event(
        accounts[0], capacity=100, face_value_wei=FACE, on_sale_at=now - 60, starts_at=now + 86_400
    )
    return Chain(w3, provider, market, accounts, event_id)


def trade(chain: Chain) -> int:
    """4 primary sales, 1 resale, 1 plain transfer (each in its own block): 6 transaction rows."""
    m, (_org, a, b, c, d, e, *_) = chain.market, chain.accounts
    tokens = [m.buy(chain.event_id, buyer, FACE) for buyer in (a, b, c, d)]
    m.list_for_resale(tokens[0], a, RESALE)
    m.buy_resale(tokens[0], e, RESALE)
    m.transfer(tokens[1], b, c)
    return 6


def make_etl(
    engine: Engine,
    chain: Chain,
    *,
    sleeps: list[float] | None = None,
    changes: Any = None,
    **overrides: Any,
) -> ChainEtl:
    options: dict[str, Any] = {"confirmations": 0, "batch_blocks": 3, "retry_base_delay_s": 0.5}
    options.update(overrides)
    recorded = sleeps if sleeps is not None else []
    return ChainEtl(
        engine,
        Web3ChainReader(chain.w3),
        EtlConfig(contract_address=chain.market.address, **options),
        sleep=recorded.append,
        jitter=lambda: 1.0,  # no randomness: the full delay, so the test can name it
        changes=changes,
    )


def chain_rows(engine: Engine) -> list[dict[str, Any]]:
    t = tables.transactions
    with engine.connect() as conn:
        rows = conn.execute(
            select(t).where(t.c.source == "chain").order_by(t.c.block_number, t.c.chain_log_index)
        )
        return [dict(row) for row in rows.mappings()]


def cursor_of(engine: Engine, report: EtlReport) -> repository.Cursor:
    with engine.connect() as conn:
        cursor = repository.get_cursor(conn, report.cursor_name)
    assert cursor is not None
    return cursor


def assert_no_duplicates(rows: Sequence[dict[str, Any]]) -> None:
    keys = [(r["chain_tx_hash"], r["chain_log_index"]) for r in rows]
    assert len(keys) == len(set(keys))


# ------------------------------------------------------------------------------------------------ loading
def test_loads_sales_resales_transfers_and_events(engine: Engine, chain: Chain) -> None:
    with engine.begin() as conn:  # an import knew the event first, with the details the chain lacks
        conn.execute(
            insert(tables.events).values(
                event_id=str(chain.event_id),
                name="Big Concert",
                organizer_id="org-1",
                venue="Arena",
                city="Lisbon",
                capacity=1,
                face_value=Decimal("1"),
                on_sale_at=datetime(2026, 1, 1, tzinfo=UTC),
                starts_at=datetime(2026, 2, 1, tzinfo=UTC),
            )
        )
    expected = trade(chain)

    report = make_etl(engine, chain).run()

    rows = chain_rows(engine)
    assert len(rows) == expected == report.rows_inserted
    assert report.blocks == chain.head + 1
    assert report.last_block == chain.head
    assert report.logs > expected  # ERC-721 Transfer / listing logs are read but make no row
    org, a, b, c, _d, e = (x.lower() for x in chain.accounts[:6])
    shape = [
        (r["wallet_address"], r["seller_address"], r["is_resale"], r["price_paid"], r["payment_method"])
        for r in rows
    ]
    assert shape == [
        (a, org, False, Decimal("0.05"), "crypto"),
        (b, org, False, Decimal("0.05"), "crypto"),
        (c, org, False, Decimal("0.05"), "crypto"),
        (_d, org, False, Decimal("0.05"), "crypto"),
        (e, a, True, Decimal("0.08"), "crypto"),
        (c, b, True, None, "transfer"),
    ]
    for row in rows:
        assert row["timestamp"] == chain.block_time(row["block_number"])
        assert row["transaction_id"] == f"chain:{row['chain_tx_hash'][2:50]}:{row['chain_log_index']}"
        assert (row["event_id"], row["status"], row["source"]) == (str(chain.event_id), "confirmed", "chain")
    assert [r["ticket_id"] for r in rows] == ["1", "2", "3", "4", "1", "2"]

    with engine.connect() as conn:
        event = conn.execute(select(tables.events)).mappings().one()
    assert (event["name"], event["venue"]) == ("Big Concert", "Arena")  # kept: the chain does not know them
    assert (event["organizer_id"], event["capacity"], event["face_value"]) == (org, 100, Decimal("0.05"))
    assert event["starts_at"] - event["on_sale_at"] == timedelta(seconds=86_460)
    cursor = cursor_of(engine, report)
    assert (cursor.last_block, cursor.last_block_hash) == (
        chain.head,
        "0x" + chain.w3.eth.get_block(chain.head)["hash"].hex(),
    )


def test_running_again_inserts_nothing(engine: Engine, chain: Chain) -> None:
    expected = trade(chain)
    etl = make_etl(engine, chain)
    first = etl.run()
    second = etl.run()
    assert (first.rows_inserted, second.rows_inserted, second.blocks) == (expected, 0, 0)

    # Even with the cursor lost, the unique (tx hash, log index) keeps a full reload from duplicating.
    with engine.begin() as conn:
        conn.execute(
            update(tables.chain_cursor)
            .where(tables.chain_cursor.c.name == first.cursor_name)
            .values(last_block=-1, last_block_hash=None)
        )
    reload = etl.run()
    assert reload.logs == first.logs
    assert reload.rows_inserted == 0
    rows = chain_rows(engine)
    assert len(rows) == expected
    assert_no_duplicates(rows)


def test_resumes_after_a_crash_between_batches(engine: Engine, chain: Chain) -> None:
    expected = trade(chain)
    committed: list[int] = []

    def crash_after_two(batch: Any, report: EtlReport) -> None:
        committed.append(batch.to_block)
        if len(committed) == 2:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        make_etl(engine, chain, batch_blocks=3).run(on_batch=crash_after_two)

    assert committed == [2, 5]
    rows = chain_rows(engine)
    assert {r["block_number"] for r in rows} == {3, 4, 5}  # sales of blocks 3..5, nothing after
    with engine.connect() as conn:
        cursor = repository.get_cursor(conn, make_etl(engine, chain).cursor_name())
    assert cursor is not None
    assert cursor.last_block == 5

    report = make_etl(engine, chain, batch_blocks=3).run()
    assert report.blocks == chain.head - 5
    rows = chain_rows(engine)
    assert len(rows) == expected
    assert_no_duplicates(rows)
    assert cursor_of(engine, report).last_block == chain.head


def test_a_crash_inside_a_batch_commits_nothing_of_it(
    engine: Engine, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    trade(chain)

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("killed between the row insert and the cursor move")

    monkeypatch.setattr(repository, "move_cursor", crash)
    with pytest.raises(RuntimeError, match="killed"):
        make_etl(engine, chain, batch_blocks=100).run()
    monkeypatch.undo()

    assert chain_rows(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.events)).scalar_one() == 0
    assert make_etl(engine, chain, batch_blocks=100).run().rows_inserted == 6


def test_reads_only_blocks_with_enough_confirmations(engine: Engine, chain: Chain) -> None:
    trade(chain)
    head = chain.head
    etl = make_etl(engine, chain, confirmations=3, batch_blocks=100)

    report = etl.run()

    assert (report.safe_head, report.last_block) == (head - 3, head - 3)
    assert max(r["block_number"] for r in chain_rows(engine)) == head - 3
    assert len(chain_rows(engine)) == 4  # the sales in blocks 3..6; the resale and transfer (8, 9) wait

    chain.w3.testing.mine(3)
    assert etl.run().rows_inserted == 2
    assert len(chain_rows(engine)) == 6


# ------------------------------------------------------------------------------------------------ reorgs
def test_reorg_replaces_rows_of_orphaned_blocks(engine: Engine, chain: Chain) -> None:
    m, (_org, a, b, c, d, e, *_) = chain.market, chain.accounts
    fork_point = chain.w3.testing.snapshot()
    m.buy(chain.event_id, a, FACE)
    m.buy(chain.event_id, b, FACE)
    chain.w3.testing.mine(2)
    etl = make_etl(engine, chain, confirmations=1, batch_blocks=2)
    first = etl.run()
    assert {r["wallet_address"] for r in chain_rows(engine)} == {a.lower(), b.lower()}

    chain.w3.testing.revert(fork_point)  # a different history from the same parent
    m.forget_nonces()
    m.buy(chain.event_id, c, FACE)
    m.buy(chain.event_id, d, FACE)
    m.buy(chain.event_id, e, FACE)
    chain.w3.testing.mine(2)

    report = etl.run()

    assert report.reorgs == 1
    assert report.rows_deleted == 2
    rows = chain_rows(engine)
    assert [r["wallet_address"] for r in rows] == [c.lower(), d.lower(), e.lower()]
    for row in rows:  # every stored row is on the canonical chain
        block = chain.w3.eth.get_block(row["block_number"])
        assert "0x" + bytes(block["transactions"][0]).hex() == row["chain_tx_hash"]
    cursor = cursor_of(engine, report)
    assert cursor.last_block == chain.head - 1 > first.last_block
    assert cursor.last_block_hash == "0x" + chain.w3.eth.get_block(cursor.last_block)["hash"].hex()


def test_new_rows_and_reorgs_reach_the_api_feature_state(
    engine: Engine, chain: Chain, redis_url: str
) -> None:
    """The API workers' in-memory features see the ETL's rows through the shared feed at once (not at their
    next rebuild); after a reorganisation deleted rows, the epoch makes them rebuild."""
    import redis

    from ticketguard.features.specs import FeatureParams
    from ticketguard.scoring.online import FeedPublisher, RedisFeed, StateKeeper

    client = redis.Redis.from_url(redis_url)

    def feed() -> RedisFeed:
        return RedisFeed(client, key="test:etl:feed", epoch_key="test:etl:epoch")

    keeper = StateKeeper(engine, FeatureParams(), feed())
    assert keeper.rebuild()
    m, (_org, a, b, c, d, e, *_) = chain.market, chain.accounts
    fork_point = chain.w3.testing.snapshot()
    m.buy(chain.event_id, a, FACE)
    m.buy(chain.event_id, b, FACE)
    chain.w3.testing.mine(2)
    etl = make_etl(engine, chain, confirmations=1, batch_blocks=2, changes=FeedPublisher(feed()))
    assert etl.run().rows_inserted == 2
    keeper.sync()
    assert keeper.ready
    assert keeper._state is not None
    assert {row.wallet for row in keeper._state.by_event[str(chain.event_id)]} == {a.lower(), b.lower()}
    assert etl.run().rows_inserted == 0
    keeper.sync()
    assert keeper._state.rows == 2  # a run that inserts nothing publishes nothing

    chain.w3.testing.revert(fork_point)
    m.forget_nonces()
    for buyer in (c, d, e):
        m.buy(chain.event_id, buyer, FACE)
    chain.w3.testing.mine(2)
    assert etl.run().reorgs == 1
    keeper.sync()
    assert not keeper.ready  # rows were deleted: the epoch moved, the state must be rebuilt
    assert keeper.rebuild()
    assert {row.wallet for row in keeper._state.by_event[str(chain.event_id)]} == {
        c.lower(),
        d.lower(),
        e.lower(),
    }
    client.close()


def test_reorg_to_a_shorter_chain_is_undone_even_with_nothing_new_to_read(
    engine: Engine, chain: Chain
) -> None:
    m, (_org, a, b, *_) = chain.market, chain.accounts
    fork_point = chain.w3.testing.snapshot()
    m.buy(chain.event_id, a, FACE)
    m.buy(chain.event_id, b, FACE)
    etl = make_etl(engine, chain, confirmations=0, batch_blocks=1)
    etl.run()
    assert len(chain_rows(engine)) == 2

    chain.w3.testing.revert(fork_point)
    chain.w3.testing.mine(1)  # the new chain is one block shorter and holds no sale

    report = etl.run()

    assert (report.reorgs, report.rows_deleted, report.rows_inserted) == (1, 2, 0)
    assert chain_rows(engine) == []
    assert cursor_of(engine, report).last_block == chain.head


def test_reorg_below_every_checkpoint_stops_until_rewound(engine: Engine, chain: Chain) -> None:
    m, (_org, a, b, c, *_) = chain.market, chain.accounts
    fork_point = chain.w3.testing.snapshot()
    for buyer in (a, b, c):
        m.buy(chain.event_id, buyer, FACE)
    etl = make_etl(engine, chain, batch_blocks=1, checkpoints_kept=2)
    etl.run()
    chain.w3.testing.revert(fork_point)
    m.forget_nonces()
    m.buy(chain.event_id, c, FACE)
    chain.w3.testing.mine(3)

    with pytest.raises(ReorgTooDeep, match="ticketguard etl rewind --to-block"):
        etl.run()
    assert len(chain_rows(engine)) == 3  # nothing deleted without a person's decision

    assert etl.rewind_to(-1) == 3
    report = etl.run()
    assert [r["wallet_address"] for r in chain_rows(engine)] == [c.lower()]
    assert report.last_block == chain.head


# ------------------------------------------------------------------------------------------------ failures
def test_provider_errors_are_retried_with_exponential_backoff(engine: Engine, chain: Chain) -> None:
    expected = trade(chain)
    chain.provider.failures = {"eth_getLogs": 2, "eth_getBlockByNumber": 1}
    sleeps: list[float] = []

    report = make_etl(engine, chain, sleeps=sleeps, batch_blocks=100, retry_base_delay_s=0.5).run()

    assert report.retries == 3
    assert sleeps == [0.5, 1.0, 0.5]  # getLogs twice (0.5, 1.0), then one header (0.5)
    assert len(chain_rows(engine)) == expected


def test_gives_up_after_the_attempt_limit_keeping_earlier_batches(engine: Engine, chain: Chain) -> None:
    trade(chain)
    sleeps: list[float] = []
    etl = make_etl(engine, chain, sleeps=sleeps, batch_blocks=5, retry_attempts=4, retry_max_delay_s=1.5)

    def fail_from_now_on(batch: Any, report: EtlReport) -> None:
        chain.provider.failures = {"eth_getLogs": 1000}

    calls_before = chain.provider.calls.get("eth_getLogs", 0)
    with pytest.raises(
        ProviderFailed, match=r"eth_getLogs 5\.\.9 failed 4 times; last error: .*injected failure"
    ):
        etl.run(on_batch=fail_from_now_on)

    assert chain.provider.calls["eth_getLogs"] - calls_before == 1 + 4
    assert sleeps == [0.5, 1.0, 1.5]  # capped at retry_max_delay_s
    assert {r["block_number"] for r in chain_rows(engine)} == {3, 4}  # the first batch stays


def test_errors_a_retry_cannot_cure_are_not_retried(engine: Engine, chain: Chain) -> None:
    trade(chain)
    chain.provider.failures = {"eth_getLogs": 1}
    chain.provider.error_factory = lambda method: Web3RPCError(
        "invalid params",
        rpc_response={"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "bad"}},
    )
    sleeps: list[float] = []
    with pytest.raises(Web3RPCError, match="invalid params"):
        make_etl(engine, chain, sleeps=sleeps).run()
    assert sleeps == []


def test_a_concurrent_run_cannot_commit_the_same_range(engine: Engine, chain: Chain) -> None:
    trade(chain)
    other = make_etl(engine, chain, batch_blocks=100)
    real = Web3ChainReader(chain.w3)

    class RacingReader:
        """The real reader; the other run completes while this one is between reading and committing."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def logs(self, *args: Any) -> list[dict[str, Any]]:
            found = real.logs(*args)
            other.run()
            return found

    etl = ChainEtl(engine, RacingReader(), EtlConfig(contract_address=chain.market.address, confirmations=0))
    with pytest.raises(ConcurrentRun, match="another ETL run is active"):
        etl.run()
    rows = chain_rows(engine)
    assert len(rows) == 6
    assert_no_duplicates(rows)
