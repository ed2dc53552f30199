"""Drive a TicketNFT contract: deploy it, create events, sell, list, resell, transfer.

The write side of the chain, for development chains (anvil, the in-process eth-tester), the benchmark and
the tests; production sales go through the ticketing backend's own wallet code. Accounts must be
unlocked on the node (as they are on dev chains). Gas limits are fixed, not estimated, so that many
transactions can be queued into one block without an EVM run each.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from web3 import Web3
from web3.logs import DISCARD
from web3.types import TxParams

from ticketguard.chain.artifact import ticket_nft
from ticketguard.chain.decode import PRICE_UNIT_WEI, WEI_PER_ETHER

GAS = {
    "deploy": 3_000_000,
    "createEvent": 200_000,
    "buyTicket": 250_000,
    "listForResale": 120_000,
    "buyResale": 200_000,
    "transferFrom": 150_000,
    "withdraw": 100_000,
}


class TransactionFailed(RuntimeError):
    """A transaction was mined but reverted."""


def ether_to_wei(amount: Decimal | str | int) -> int:
    """Exact conversion; refuses amounts that are not whole multiples of the contract's price unit."""
    wei = Decimal(amount) * WEI_PER_ETHER
    if wei != wei.to_integral_value() or int(wei) % PRICE_UNIT_WEI:
        raise ValueError(f"price must be a multiple of 0.00000001 ether, got {amount}")
    return int(wei)


@dataclass(frozen=True)
class Sent:
    tx_hash: str


class TicketMarket:
    """One deployed TicketNFT. With `wait=False` a call only queues its transaction (for batch mining)."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=ticket_nft().abi)
        self._nonces: dict[str, int] = {}

    @classmethod
    def deploy(cls, w3: Web3, deployer: str) -> TicketMarket:
        artifact = ticket_nft()
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx_hash = factory.constructor().transact({"from": deployer, "gas": GAS["deploy"]})
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1 or receipt["contractAddress"] is None:
            raise TransactionFailed(f"deployment 0x{bytes(tx_hash).hex()} reverted")
        return cls(w3, receipt["contractAddress"])

    # ---------------------------------------------------------------------------------- plumbing
    def _next_nonce(self, sender: str) -> int:
        # Tracked here: with auto-mining off, nodes disagree on whether "pending" counts queued txs.
        if sender not in self._nonces:
            self._nonces[sender] = self.w3.eth.get_transaction_count(Web3.to_checksum_address(sender))
        nonce = self._nonces[sender]
        self._nonces[sender] = nonce + 1
        return nonce

    def forget_nonces(self) -> None:
        """Call after the chain was reverted or reorganised under this client."""
        self._nonces.clear()

    def _send(self, function: str, args: tuple[Any, ...], sender: str, value: int = 0, *, wait: bool) -> Any:
        params: TxParams = {
            "from": Web3.to_checksum_address(sender),
            "gas": GAS[function],
            "value": value,  # type: ignore[typeddict-item]
            "nonce": self._next_nonce(sender),  # type: ignore[typeddict-item]
        }
        tx_hash = getattr(self.contract.functions, function)(*args).transact(params)
        if not wait:
            return Sent("0x" + bytes(tx_hash).hex())
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise TransactionFailed(f"{function}{args} from {sender} reverted (tx 0x{bytes(tx_hash).hex()})")
        return receipt

    def _event_arg(self, receipt: Any, event: str, arg: str) -> int:
        # DISCARD: the receipt also holds the ERC-721 Transfer log, which is not this event.
        logs = getattr(self.contract.events, event)().process_receipt(receipt, errors=DISCARD)
        return int(logs[0]["args"][arg])

    # ---------------------------------------------------------------------------------- actions
    def create_event(
        self, organizer: str, *, capacity: int, face_value_wei: int, on_sale_at: int, starts_at: int
    ) -> int:
        receipt = self._send(
            "createEvent", (capacity, face_value_wei, on_sale_at, starts_at), organizer, wait=True
        )
        return self._event_arg(receipt, "EventCreated", "eventId")

    def buy(self, event_id: int, buyer: str, price_wei: int, *, wait: bool = True) -> int | Sent:
        """Primary sale; returns the token id (or the queued transaction with wait=False)."""
        result = self._send("buyTicket", (event_id,), buyer, price_wei, wait=wait)
        return self._event_arg(result, "TicketSold", "tokenId") if wait else result

    def list_for_resale(self, token_id: int, seller: str, price_wei: int, *, wait: bool = True) -> Any:
        return self._send("listForResale", (token_id, price_wei), seller, wait=wait)

    def buy_resale(self, token_id: int, buyer: str, price_wei: int, *, wait: bool = True) -> Any:
        return self._send("buyResale", (token_id,), buyer, price_wei, wait=wait)

    def transfer(self, token_id: int, sender: str, recipient: str, *, wait: bool = True) -> Any:
        return self._send(
            "transferFrom",
            (Web3.to_checksum_address(sender), Web3.to_checksum_address(recipient), token_id),
            sender,
            wait=wait,
        )

    def withdraw(self, payee: str, *, wait: bool = True) -> Any:
        return self._send("withdraw", (), payee, wait=wait)

    def owner_of(self, token_id: int) -> str:
        return str(self.contract.functions.ownerOf(token_id).call()).lower()


def in_process_web3(accounts: int = 10) -> Web3:
    """A fresh in-process chain (eth-tester on py-evm, a dev dependency) with funded, unlocked accounts."""
    from eth_tester import EthereumTester, PyEVMBackend
    from web3 import EthereumTesterProvider

    backend = PyEVMBackend(genesis_state=PyEVMBackend.generate_genesis_state(num_accounts=accounts))
    return Web3(EthereumTesterProvider(EthereumTester(backend)))
