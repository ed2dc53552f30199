"""The ETL against a real JSON-RPC node over HTTP: anvil (Foundry's dev node, from npm) on 127.0.0.1.

The node comes from `contracts/package.json` (devDependency `@foundry-rs/anvil`), installed by
`make contracts-deps` (`npm ci` in contracts/; .ci/run does it before the tests).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from typer.testing import CliRunner
from web3 import Web3

from ci_gate import unavailable
from ticketguard import tables
from ticketguard.chain.market import TicketMarket, ether_to_wei
from ticketguard.chain.pipeline import ChainEtl, EtlConfig
from ticketguard.chain.reader import Web3ChainReader, web3_for_url
from ticketguard.cli import app
from ticketguard.kit.db import make_engine

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
ANVIL = CONTRACTS / "node_modules" / ".bin" / "anvil"

FACE = ether_to_wei("0.05")

pytestmark = pytest.mark.xdist_group("anvil")


@pytest.fixture(autouse=True)
def _no_chain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared fixture clears the database variables; the chain ones are cleared here."""
    for name in list(os.environ):
        if name.startswith("CHAIN_") or name in ("WEB3_PROVIDER", "CONTRACT_ADDRESS"):
            monkeypatch.delenv(name)


def _unavailable(reason: str) -> None:
    unavailable("JSON-RPC node", reason)


def _anvil_binary() -> Path:
    if not ANVIL.exists():
        # Installing it is a setup step (`make contracts-deps`, run by .ci/run), never a test's side effect.
        _unavailable(f"{ANVIL} is missing: run `make contracts-deps` (npm ci in contracts/) first")
    return ANVIL


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    binary = _anvil_binary()
    port = _free_port()
    process = subprocess.Popen(
        [str(binary), "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = requests.post(
                    url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1
                )
                if answer.ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                _, err = process.communicate(timeout=5) if process.poll() is not None else (b"", b"")
                pytest.fail(f"anvil did not answer on {url}: {err.decode(errors='replace')[-500:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _trade(w3: Web3) -> tuple[TicketMarket, int]:
    """A fresh contract with 3 sales, 1 resale, 1 transfer: 5 rows. Returns it and its deployment block."""
    organizer, a, b, c, d, *_ = w3.eth.accounts
    market = TicketMarket.deploy(w3, organizer)
    deployed_at = int(w3.eth.block_number)
    now = int(w3.eth.get_block("latest")["timestamp"])
    event_id = market.create_event(
        organizer, capacity=10, face_value_wei=FACE, on_sale_at=now - 60, starts_at=now + 86_400
    )
    tokens = [market.buy(event_id, buyer, FACE) for buyer in (a, b, c)]
    market.list_for_resale(tokens[0], a, ether_to_wei("0.09"))
    market.buy_resale(tokens[0], d, ether_to_wei("0.09"))
    market.transfer(tokens[1], b, c)
    return market, deployed_at


def _count(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(tables.transactions)).scalar_one())
    finally:
        engine.dispose()


def test_etl_command_loads_a_node_over_http(
    anvil_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    w3 = web3_for_url(anvil_url)
    market, deployed_at = _trade(w3)
    for name, value in {
        "DATABASE_URL": db_url,
        "WEB3_PROVIDER": anvil_url,
        "CONTRACT_ADDRESS": market.address,
        "CHAIN_START_BLOCK": str(deployed_at),
        "CHAIN_CONFIRMATIONS": "0",
        "CHAIN_BATCH_BLOCKS": "3",
    }.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    first = runner.invoke(app, ["etl", "run"])
    assert first.exit_code == 0, first.output
    assert "transactions inserted" in first.output
    assert _count(db_url) == 5

    again = runner.invoke(app, ["etl", "run"])
    assert again.exit_code == 0, again.output
    assert _count(db_url) == 5

    status = runner.invoke(app, ["etl", "status"])
    assert status.exit_code == 0, status.output
    assert f"{int(w3.eth.block_number):,}" in status.output
    assert "blocks behind" in status.output

    rewind = runner.invoke(app, ["etl", "rewind", "--to-block", str(deployed_at - 1), "--yes"])
    assert rewind.exit_code == 0, rewind.output
    assert "5 chain transaction(s) deleted" in rewind.output
    assert _count(db_url) == 0
    assert runner.invoke(app, ["etl", "run"]).exit_code == 0
    assert _count(db_url) == 5


def test_etl_command_names_missing_settings(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    result = CliRunner().invoke(app, ["etl", "run"])
    assert result.exit_code == 2
    assert "WEB3_PROVIDER and CONTRACT_ADDRESS must be set" in result.output


def test_reorg_over_http_uses_batched_header_reads(anvil_url: str, sqlite_url: str) -> None:
    w3 = web3_for_url(anvil_url)
    organizer, a, b, c, *_ = w3.eth.accounts
    market = TicketMarket.deploy(w3, organizer)
    start = int(w3.eth.block_number)
    now = int(w3.eth.get_block("latest")["timestamp"])
    event_id = market.create_event(
        organizer, capacity=10, face_value_wei=FACE, on_sale_at=now - 60, starts_at=now + 3600
    )
    fork_point = w3.testing.snapshot()
    market.buy(event_id, a, FACE)
    market.buy(event_id, b, FACE)
    engine = make_engine(sqlite_url)
    reader = Web3ChainReader(w3)
    etl = ChainEtl(
        engine, reader, EtlConfig(contract_address=market.address, start_block=start, confirmations=0)
    )
    try:
        assert etl.run().rows_inserted == 2
        w3.testing.revert(fork_point)
        market.forget_nonces()
        market.buy(event_id, c, FACE)
        for _ in range(2):  # anvil reads evm_mine's parameter as a timestamp, not a count
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

        report = etl.run()

        assert (report.reorgs, report.rows_deleted, report.rows_inserted) == (1, 2, 1)
        with engine.connect() as conn:
            wallets = conn.execute(select(tables.transactions.c.wallet_address)).scalars().all()
        assert wallets == [c.lower()]
    finally:
        engine.dispose()
    headers = reader.headers([start, start + 1, start + 2, 10**9])
    assert sorted(headers) == [start, start + 1, start + 2]  # a block past the head is simply absent


def test_unreachable_provider_fails_after_bounded_retries(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "DATABASE_URL": sqlite_url,
        "WEB3_PROVIDER": f"http://127.0.0.1:{_free_port()}",  # nothing listens there
        "CONTRACT_ADDRESS": "0x" + "11" * 20,
        "CHAIN_RETRY_ATTEMPTS": "3",
        "CHAIN_RETRY_BASE_DELAY": "0.01",
        "CHAIN_RPC_TIMEOUT": "2",
    }.items():
        monkeypatch.setenv(name, value)
    began = time.monotonic()
    result = CliRunner().invoke(app, ["etl", "run"])
    assert result.exit_code == 1, result.output
    assert "eth_chainId failed 3 times" in result.output
    assert "ConnectionError" in result.output
    assert time.monotonic() - began < 10
