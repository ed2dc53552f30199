"""The TicketNFT contract's rules, on a real in-process EVM (eth-tester + py-evm)."""

from __future__ import annotations

import ast
from typing import Any

import pytest
from eth_utils import keccak
from web3 import Web3

from ticketguard.chain.artifact import ticket_nft
from ticketguard.chain.market import TicketMarket, TransactionFailed, ether_to_wei, in_process_web3

FACE = ether_to_wei("0.05")


def _selector(error: str) -> bytes:
    abi = next(e for e in ticket_nft().abi if e["type"] == "error" and e["name"] == error)
    signature = f"{error}({','.join(i['type'] for i in abi['inputs'])})"
    return keccak(text=signature)[:4]


def _revert_data(exc: BaseException) -> bytes:
    data = getattr(exc, "data", None)
    if isinstance(data, str):  # web3's ContractCustomError (JSON-RPC nodes)
        return bytes.fromhex(data.removeprefix("0x"))
    # eth-tester reports "execution reverted: b'...'" with the raw revert data.
    return ast.literal_eval(str(exc).split("execution reverted: ", 1)[1])


def _assert_reverts(call: Any, tx: dict[str, Any], error: str) -> None:
    with pytest.raises(Exception) as raised:
        call.call(tx)
    assert _revert_data(raised.value)[:4] == _selector(error), f"expected revert {error}"


@pytest.fixture
def market() -> tuple[Web3, TicketMarket, list[str], int]:
    w3 = in_process_web3()
    accounts = list(w3.eth.accounts)
    market = TicketMarket.deploy(w3, accounts[0])
    now = int(w3.eth.get_block("latest")["timestamp"])
    event_id = market.create_event(
        accounts[0], capacity=2, face_value_wei=FACE, on_sale_at=now - 10, starts_at=now + 3600
    )
    return w3, market, accounts, event_id


def test_primary_sale_mints_at_face_value_and_credits_the_organiser(market) -> None:
    _w3, m, (organizer, alice, *_), event_id = market
    token = m.buy(event_id, alice, FACE)
    assert m.owner_of(token) == alice.lower()
    assert m.contract.functions.eventOf(token).call() == event_id
    assert m.contract.functions.pendingWithdrawals(organizer).call() == FACE


def test_primary_sale_refuses_wrong_payment_and_sold_out(market) -> None:
    _w3, m, (_organizer, alice, bob, carol, *_), event_id = market
    buy = m.contract.functions.buyTicket(event_id)
    _assert_reverts(buy, {"from": alice, "value": FACE - 10**10}, "WrongPayment")
    m.buy(event_id, alice, FACE)
    m.buy(event_id, bob, FACE)
    _assert_reverts(buy, {"from": carol, "value": FACE}, "SoldOut")
    with pytest.raises(TransactionFailed, match="buyTicket"):
        m.buy(event_id, carol, FACE)


def test_event_creation_is_validated(market) -> None:
    w3, m, (organizer, *_), _event_id = market
    now = int(w3.eth.get_block("latest")["timestamp"])
    create = m.contract.functions.createEvent
    tx = {"from": organizer}
    _assert_reverts(create(0, FACE, now, now + 60), tx, "InvalidCapacity")
    _assert_reverts(create(10, FACE + 1, now, now + 60), tx, "PriceNotWholeUnit")
    _assert_reverts(create(10, FACE, now + 60, now + 60), tx, "InvalidSchedule")
    _assert_reverts(create(10, FACE, now, now + 11 * 365 * 86400), tx, "InvalidSchedule")
    _assert_reverts(create(10, 10**9 * 10**18 + 10**10, now, now + 60), tx, "PriceTooHigh")


def test_sales_stop_when_the_event_starts(market) -> None:
    w3, m, (_organizer, alice, *_), event_id = market
    starts_at = m.contract.functions.ticketEvents(event_id).call()[2]
    w3.provider.ethereum_tester.time_travel(starts_at)  # type: ignore[attr-defined]
    w3.testing.mine(1)  # eth_call runs on the latest block: give it the new time
    _assert_reverts(m.contract.functions.buyTicket(event_id), {"from": alice, "value": FACE}, "EventStarted")


def test_resale_moves_ticket_and_credits_seller(market) -> None:
    _w3, m, (_organizer, alice, bob, *_), event_id = market
    token = m.buy(event_id, alice, FACE)
    price = ether_to_wei("0.08")
    m.list_for_resale(token, alice, price)
    _assert_reverts(m.contract.functions.buyResale(token), {"from": bob, "value": FACE}, "WrongPayment")
    m.buy_resale(token, bob, price)
    assert m.owner_of(token) == bob.lower()
    assert m.contract.functions.pendingWithdrawals(alice).call() == price
    # The listing was consumed: the same ticket cannot be bought twice.
    _assert_reverts(m.contract.functions.buyResale(token), {"from": alice, "value": price}, "NotListed")


def test_only_the_holder_lists_and_a_transfer_voids_the_listing(market) -> None:
    _w3, m, (_organizer, alice, bob, carol, *_), event_id = market
    token = m.buy(event_id, alice, FACE)
    price = ether_to_wei("0.08")
    _assert_reverts(m.contract.functions.listForResale(token, price), {"from": bob}, "NotTicketOwner")
    m.list_for_resale(token, alice, price)
    m.transfer(token, alice, carol)
    _assert_reverts(m.contract.functions.buyResale(token), {"from": bob, "value": price}, "NotListed")
    assert m.owner_of(token) == carol.lower()


def test_withdraw_pays_out_once(market) -> None:
    w3, m, (organizer, alice, *_), event_id = market
    m.buy(event_id, alice, FACE)
    before = w3.eth.get_balance(organizer)
    receipt = m.withdraw(organizer)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(organizer) == before + FACE - gas
    assert m.contract.functions.pendingWithdrawals(organizer).call() == 0
    _assert_reverts(m.contract.functions.withdraw(), {"from": organizer}, "NothingToWithdraw")
