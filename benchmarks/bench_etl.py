"""Chain ETL throughput: blocks/s and logs/s (results recorded in docs/chain-etl.md).

    .venv/bin/python benchmarks/bench_etl.py [--nodes tester,anvil] [--postgres-url URL] [--write-doc]
        [--tester-trades 3000 --tester-per-block 20 --tester-empty-between 2]
        [--anvil-trades 8000 --anvil-per-block 8 --anvil-empty-between 4]

Builds a market history on each node: a TicketNFT contract, 10 events, then TRADES transactions
(primary sales, resale listings, resales, plain transfers; PER-BLOCK to a block, with EMPTY-BETWEEN
empty blocks after each, as a busy contract on a busy chain looks), then times `ChainEtl.run()` over
all of it into a fresh SQLite and a fresh PostgreSQL database, and checks the row count.

Nodes: `tester` is the in-process eth-tester/py-evm chain (no network; every call is a Python call;
its eth_getLogs finds each receipt by scanning blocks back from the head, so it is the bottleneck and
the history is kept smaller); `anvil` is Foundry's node from contracts/node_modules over HTTP on
127.0.0.1 (JSON-RPC, batched header reads), the closer stand-in for a real provider. Each run reports
the time spent waiting for the node apart from the ETL's own work (decode + database).
--write-doc replaces the results section of docs/chain-etl.md. With the defaults the in-process part
takes about 25 minutes (four full loads of eth-tester's quadratic eth_getLogs); anvil's about 3.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
from sqlalchemy import create_engine, func, make_url, select, text
from web3 import Web3

from ticketguard import tables
from ticketguard.chain.decode import decode_logs
from ticketguard.chain.market import TicketMarket, ether_to_wei, in_process_web3
from ticketguard.chain.pipeline import ChainEtl, EtlConfig, EtlReport
from ticketguard.chain.reader import Web3ChainReader, web3_for_url
from ticketguard.kit import migrate
from ticketguard.kit.db import make_engine

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "chain-etl.md"
ANVIL = ROOT / "contracts" / "node_modules" / ".bin" / "anvil"
BEGIN, END = "<!-- bench_etl:begin -->", "<!-- bench_etl:end -->"
FACE = ether_to_wei("0.05")


# ------------------------------------------------------------------------------------------- nodes
class Node:
    name: str
    w3: Web3

    def automine(self, on: bool) -> None:
        raise NotImplementedError

    def mine(self, blocks: int) -> None:
        raise NotImplementedError


class TesterNode(Node):
    name = "eth-tester (in process)"

    def __init__(self) -> None:
        # More senders than the default 10: eth-tester takes one transaction per sender per block.
        self.w3 = in_process_web3(accounts=40)
        self._tester = self.w3.provider.ethereum_tester  # type: ignore[attr-defined]

    def automine(self, on: bool) -> None:
        if on:
            self._tester.enable_auto_mine_transactions()
        else:
            self._tester.disable_auto_mine_transactions()

    def mine(self, blocks: int) -> None:
        self._tester.mine_blocks(blocks)


class AnvilNode(Node):
    name = "anvil over HTTP"

    def __init__(self, url: str) -> None:
        self.w3 = web3_for_url(url)

    def automine(self, on: bool) -> None:
        self.w3.provider.make_request("evm_setAutomine", [on])  # type: ignore[arg-type]

    def mine(self, blocks: int) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]


@contextmanager
def anvil() -> Iterator[AnvilNode]:
    if not ANVIL.exists():
        sys.exit("anvil is not installed: run contracts/build.sh (npm ci) first, or use --nodes tester")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--quiet", "--gas-limit", "60000000"],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.post(
                    url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1
                )
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    sys.exit(f"anvil did not start on {url}")
                time.sleep(0.1)
        yield AnvilNode(url)
    finally:
        process.terminate()
        process.wait(timeout=10)


# ------------------------------------------------------------------------------------------- history
def _account(accounts: list[str], lower: str) -> str:
    return next(a for a in accounts if a.lower() == lower)


@dataclass
class History:
    market: TicketMarket
    start_block: int
    blocks: int
    transactions: int
    seconds: float


def build_history(node: Node, *, trades: int, per_block: int, empty_between: int, seed: int) -> History:
    """Sales, listings, resales and transfers; state (owners, listings) follows what was mined."""
    rng = random.Random(seed)
    began = time.perf_counter()
    w3 = node.w3
    organizer, *buyers = w3.eth.accounts
    market = TicketMarket.deploy(w3, organizer)
    start_block = int(w3.eth.block_number)
    now = int(w3.eth.get_block("latest")["timestamp"])
    events = [
        market.create_event(
            organizer,
            capacity=1_000_000,
            face_value_wei=FACE,
            on_sale_at=now - 60,
            starts_at=now + 300 * 86_400,
        )
        for _ in range(10)
    ]
    owner: dict[int, str] = {}
    listed: dict[int, int] = {}
    node.automine(False)
    sent = 0
    while sent < trades:
        # One transaction per sender per block: eth-tester checks a queued transaction's nonce against
        # the last mined state, so a sender's second transaction in the same block would be refused.
        busy: set[int] = set()
        senders: set[str] = set()
        for _ in range(min(per_block, trades - sent)):
            roll = rng.random()
            idle = [b for b in buyers if b not in senders]
            mine_free = [t for t in owner if t not in busy and _account(buyers, owner[t]) not in senders]
            buyable = [t for t in listed if t not in busy]
            if roll < 0.2 and buyable and idle:
                token = rng.choice(buyable)
                candidates = [b for b in idle if b.lower() != owner[token]] or idle
                buyer = rng.choice(candidates)
                market.buy_resale(token, buyer, listed[token], wait=False)
                busy.add(token)
                senders.add(buyer)
            elif roll < 0.5 and mine_free:
                token = rng.choice(mine_free)
                holder = _account(buyers, owner[token])
                if roll < 0.4:
                    market.list_for_resale(token, holder, FACE * rng.choice([1, 2, 3]), wait=False)
                else:
                    recipient = rng.choice([b for b in buyers if b != holder])
                    market.transfer(token, holder, recipient, wait=False)
                busy.add(token)
                senders.add(holder)
            elif idle:
                buyer = rng.choice(idle)
                market.buy(rng.choice(events), buyer, FACE, wait=False)
                senders.add(buyer)
            else:
                break
            sent += 1
        node.mine(1)
        block = int(w3.eth.block_number)
        for fact in decode_logs(Web3ChainReader(w3).logs(market.address, block, block)).movements:
            owner[fact.token_id] = fact.buyer
            listed.pop(fact.token_id, None)
        for log in market.contract.events.TicketListed().get_logs(from_block=block, to_block=block):
            listed[int(log["args"]["tokenId"])] = int(log["args"]["price"])
        if empty_between:
            node.mine(empty_between)
    node.automine(True)
    head = int(w3.eth.block_number)
    return History(market, start_block, head - start_block + 1, sent, time.perf_counter() - began)


# ------------------------------------------------------------------------------------------- databases
@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        yield url


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    name = f"tg_bench_etl_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Result:
    node: str
    database: str
    batch_blocks: int
    report: EtlReport
    rows_in_db: int


def time_etl(node: Node, history: History, url: str, database: str, batch_blocks: int) -> Result:
    engine = make_engine(url)
    try:
        etl = ChainEtl(
            engine,
            Web3ChainReader(node.w3),
            EtlConfig(
                contract_address=history.market.address,
                start_block=history.start_block,
                confirmations=0,
                batch_blocks=batch_blocks,
            ),
        )
        report = etl.run()
        with engine.connect() as conn:
            rows = int(conn.execute(select(func.count()).select_from(tables.transactions)).scalar_one())
    finally:
        engine.dispose()
    return Result(node.name, database, batch_blocks, report, rows)


# ------------------------------------------------------------------------------------------- report
def render(results: list[Result], histories: dict[str, History], load: str, command: str) -> str:
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on this 2-core machine with `{command}`; "
        f"load average before the runs: {load}. Node wait = time in eth_getLogs and block-header calls; "
        "own work = decoding plus the database transaction.",
        "",
        "| node | history | database | batch | blocks | logs | rows | total | node wait | own work "
        "| blocks/s | logs/s | logs/s of own work |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        h, rep = histories[r.node], r.report
        own = rep.logs / rep.write_s if rep.write_s > 0 else 0.0
        lines.append(
            f"| {r.node} | {h.transactions:,} txs in {h.blocks:,} blocks | {r.database} | {r.batch_blocks:,} "
            f"| {rep.blocks:,} | {rep.logs:,} | {rep.rows_inserted:,} | {rep.duration_s:.2f} s "
            f"| {rep.read_s:.2f} s | {rep.write_s:.2f} s "
            f"| {rep.blocks_per_second:,.0f} | {rep.logs_per_second:,.0f} | {own:,.0f} |"
        )
    lines.append("")
    lines.append(
        "Every run checked: rows in the database = rows inserted = sales + resales + transfers that the "
        "node executed (listings, ERC-721 Transfer logs and reverted transactions make no row)."
    )
    return "\n".join(lines)


def write_doc(section: str) -> None:
    text_ = DOC.read_text()
    start, end = text_.index(BEGIN) + len(BEGIN), text_.index(END)
    DOC.write_text(text_[:start] + "\n" + section + "\n" + text_[end:])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for node, trades, per_block, empty in (("tester", 3000, 20, 2), ("anvil", 8000, 8, 4)):
        parser.add_argument(f"--{node}-trades", type=int, default=trades)
        parser.add_argument(f"--{node}-per-block", type=int, default=per_block)
        parser.add_argument(f"--{node}-empty-between", type=int, default=empty)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--nodes", default="tester,anvil")
    parser.add_argument("--batches", default="500,2000", help="CHAIN_BATCH_BLOCKS values to time")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load before: {load}", flush=True)

    results: list[Result] = []
    histories: dict[str, History] = {}
    batches = [int(b) for b in args.batches.split(",")]

    def bench(key: str, node: Node) -> None:
        history = build_history(
            node,
            trades=getattr(args, f"{key}_trades"),
            per_block=getattr(args, f"{key}_per_block"),
            empty_between=getattr(args, f"{key}_empty_between"),
            seed=args.seed,
        )
        histories[node.name] = history
        print(f"{node.name}: {history.transactions} txs, {history.blocks} blocks ({history.seconds:.0f} s)")
        expected: int | None = None
        databases: list[tuple[str, Callable[[], AbstractContextManager[str]]]] = [
            ("SQLite", sqlite_database),
            ("PostgreSQL", lambda: postgres_database(args.postgres_url)),
        ]
        for database, open_db in databases:
            for batch in batches:
                with open_db() as url:
                    result = time_etl(node, history, url, database, batch)
                expected = result.report.rows_inserted if expected is None else expected
                assert result.rows_in_db == result.report.rows_inserted == expected, result
                results.append(result)
                r = result.report
                print(
                    f"  {database:10} batch {batch:5}: {r.blocks} blocks, {r.logs} logs, "
                    f"{r.rows_inserted} rows in {r.duration_s:.2f} s = "
                    f"{r.blocks_per_second:,.0f} blocks/s, {r.logs_per_second:,.0f} logs/s "
                    f"(node wait {r.read_s:.2f} s, own work {r.write_s:.2f} s)",
                    flush=True,
                )

    for name in args.nodes.split(","):
        if name == "tester":
            bench(name, TesterNode())
        elif name == "anvil":
            with anvil() as node:
                bench(name, node)
        else:
            sys.exit(f"--nodes takes tester and/or anvil, got {name!r}")

    print(f"load after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    command = "python benchmarks/bench_etl.py " + " ".join(sys.argv[1:])
    section = render(results, histories, load, command.strip())
    print(section)
    if args.write_doc:
        write_doc(section)
        print(f"written to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
