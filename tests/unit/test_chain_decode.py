"""Decoding TicketNFT logs into rows: real logs from the contract on an in-process EVM (eth-tester)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from eth_abi import encode
from web3 import Web3

from ticketguard.chain.artifact import ticket_nft
from ticketguard.chain.decode import (
    EventCreated,
    TicketMovement,
    UndecodableLog,
    chain_transaction_id,
    decode_log,
    decode_logs,
    event_row,
    transaction_row,
    wei_to_ether,
)
from ticketguard.chain.market import TicketMarket, ether_to_wei, in_process_web3
from ticketguard.chain.reader import Web3ChainReader

REPO = Path(__file__).resolve().parents[2]
FACE = ether_to_wei("0.05")
RESALE = ether_to_wei("0.125")


@pytest.fixture
def chain() -> tuple[Web3, TicketMarket, list[str]]:
    w3 = in_process_web3()
    accounts = list(w3.eth.accounts)
    return w3, TicketMarket.deploy(w3, accounts[0]), accounts


def _all_logs(w3: Web3, market: TicketMarket) -> list[dict]:
    return Web3ChainReader(w3).logs(market.address, 0, w3.eth.block_number)


def test_artifact_was_rebuilt_from_the_committed_source() -> None:
    source = (REPO / "contracts" / "src" / "TicketNFT.sol").read_bytes()
    assert ticket_nft().source_sha256 == hashlib.sha256(source).hexdigest(), (
        "contracts/src/TicketNFT.sol changed without a rebuild: run contracts/build.sh"
    )
    assert ticket_nft().bytecode.startswith("0x60")
    assert ticket_nft().evm_version == "cancun"


def test_decodes_event_sale_resale_and_transfer_from_real_logs(chain) -> None:
    w3, market, (organizer, alice, bob, carol, *_) = chain
    now = w3.eth.get_block("latest")["timestamp"]
    event_id = market.create_event(
        organizer, capacity=500, face_value_wei=FACE, on_sale_at=now - 60, starts_at=now + 86_400
    )
    token = market.buy(event_id, alice, FACE)
    market.list_for_resale(token, alice, RESALE)
    market.buy_resale(token, bob, RESALE)
    market.transfer(token, bob, carol)

    decoded = decode_logs(_all_logs(w3, market))

    assert [type(f) for f in decoded.events] == [EventCreated]
    created = decoded.events[0]
    assert (created.event_id, created.organizer, created.capacity) == (event_id, organizer.lower(), 500)
    assert (created.face_value_wei, created.on_sale_at, created.starts_at) == (FACE, now - 60, now + 86_400)
    kinds = [(m.kind, m.buyer, m.seller, m.price_wei) for m in decoded.movements]
    assert kinds == [
        ("sale", alice.lower(), organizer.lower(), FACE),
        ("resale", bob.lower(), alice.lower(), RESALE),
        ("transfer", carol.lower(), bob.lower(), None),
    ]
    assert all(m.token_id == token and m.event_id == event_id for m in decoded.movements)
    # ERC-721 Transfer ×3, TicketListed: logs without a row of their own.
    assert decoded.ignored == 4


def test_rows_follow_the_documented_mapping(chain) -> None:
    w3, market, (organizer, alice, bob, *_) = chain
    now = w3.eth.get_block("latest")["timestamp"]
    event_id = market.create_event(
        organizer, capacity=10, face_value_wei=FACE, on_sale_at=now - 1, starts_at=now + 3600
    )
    token = market.buy(event_id, alice, FACE)
    market.list_for_resale(token, alice, RESALE)
    receipt = market.buy_resale(token, bob, RESALE)
    logs = _all_logs(w3, market)
    resale = next(f for f in map(decode_log, logs) if isinstance(f, TicketMovement) and f.kind == "resale")
    block_time = w3.eth.get_block(receipt["blockNumber"])["timestamp"]

    row = transaction_row(resale, block_time)

    tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
    assert row == {
        "transaction_id": f"chain:{tx_hash[2:50]}:{resale.position.log_index}",
        "wallet_address": bob.lower(),
        "seller_address": alice.lower(),
        "event_id": str(event_id),
        "ticket_id": str(token),
        "price_paid": Decimal("0.12500000"),
        "payment_method": "crypto",
        "is_resale": True,
        "status": "confirmed",
        "timestamp": datetime.fromtimestamp(block_time, tz=UTC),
        "source": "chain",
        "chain_tx_hash": tx_hash,
        "chain_log_index": resale.position.log_index,
        "block_number": receipt["blockNumber"],
    }
    created = next(f for f in map(decode_log, logs) if isinstance(f, EventCreated))
    assert event_row(created) == {
        "event_id": str(event_id),
        "name": f"on-chain event {event_id}",
        "organizer_id": organizer.lower(),
        "capacity": 10,
        "face_value": Decimal("0.05000000"),
        "on_sale_at": datetime.fromtimestamp(now - 1, tz=UTC),
        "starts_at": datetime.fromtimestamp(now + 3600, tz=UTC),
    }


def test_bytes_and_hex_string_logs_decode_the_same(chain) -> None:
    w3, market, (organizer, alice, *_) = chain
    now = w3.eth.get_block("latest")["timestamp"]
    event_id = market.create_event(
        organizer, capacity=1, face_value_wei=FACE, on_sale_at=now - 1, starts_at=now + 60
    )
    market.buy(event_id, alice, FACE)
    web3_logs = w3.eth.get_logs({"address": market.address, "fromBlock": 0, "toBlock": "latest"})
    as_bytes = [dict(log) for log in web3_logs]  # HexBytes fields, int numbers: web3's own shape
    as_json = _all_logs(w3, market)  # hex strings: the JSON-RPC wire shape
    assert decode_logs(as_bytes) == decode_logs(as_json)


def test_refuses_a_price_the_contract_cannot_emit_naming_the_log(chain) -> None:
    w3, market, (organizer, alice, *_) = chain
    now = w3.eth.get_block("latest")["timestamp"]
    event_id = market.create_event(
        organizer, capacity=1, face_value_wei=FACE, on_sale_at=now - 1, starts_at=now + 60
    )
    market.buy(event_id, alice, FACE)
    sale_log = next(log for log in _all_logs(w3, market) if isinstance(decode_log(log), TicketMovement))
    forged = dict(sale_log, data="0x" + encode(["address", "uint256"], [organizer, FACE + 1]).hex())

    with pytest.raises(UndecodableLog) as refused:
        decode_log(forged)
    assert sale_log["transactionHash"] in str(refused.value)
    assert f"price={FACE + 1} wei is not a multiple of 10000000000 wei" in str(refused.value)


def test_refuses_a_log_with_missing_topics(chain) -> None:
    w3, market, (organizer, *_) = chain
    now = w3.eth.get_block("latest")["timestamp"]
    market.create_event(organizer, capacity=1, face_value_wei=FACE, on_sale_at=now - 1, starts_at=now + 60)
    created = _all_logs(w3, market)[0]
    with pytest.raises(UndecodableLog, match="EventCreated needs 3 topics, got 2"):
        decode_log(dict(created, topics=created["topics"][:2]))


def test_removed_and_foreign_logs_are_ignored(chain) -> None:
    w3, market, (organizer, *_) = chain
    now = w3.eth.get_block("latest")["timestamp"]
    market.create_event(organizer, capacity=1, face_value_wei=FACE, on_sale_at=now - 1, starts_at=now + 60)
    created = _all_logs(w3, market)[0]
    assert decode_log(dict(created, removed=True)) is None
    assert decode_log(dict(created, topics=["0x" + "ab" * 32])) is None
    assert decode_log(dict(created, topics=[])) is None


@pytest.mark.parametrize(
    ("wei", "ether"),
    [
        (0, Decimal("0E-8")),
        (10**10, Decimal("0.00000001")),
        (5 * 10**16, Decimal("0.05")),
        (123_456_789 * 10**18 + 10**10, Decimal("123456789.00000001")),
        (10**27, Decimal("1000000000")),
    ],
)
def test_wei_to_ether_is_exact_at_eight_places(wei: int, ether: Decimal) -> None:
    converted = wei_to_ether(wei)
    assert converted == ether
    assert converted.as_tuple().exponent == -8


def test_transaction_id_is_deterministic_and_fits_the_column() -> None:
    tx_hash = "0x" + "AB" * 32
    assert chain_transaction_id(tx_hash, 7) == chain_transaction_id(tx_hash.lower(), 7)
    assert chain_transaction_id(tx_hash, 7) != chain_transaction_id(tx_hash, 8)
    assert len(chain_transaction_id(tx_hash, 999_999_999)) <= 64
