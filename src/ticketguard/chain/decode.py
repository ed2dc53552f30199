"""Raw TicketNFT logs → typed chain facts → `transactions` / `events` rows. Pure: no web3, no database.

A raw log is the JSON-RPC shape (`eth_getLogs`), with hex strings or bytes: `topics`, `data`,
`blockNumber`, `blockHash`, `transactionHash`, `logIndex` (and optionally `removed`).

Money rule: the contract prices in wei and only accepts whole multiples of 10 gwei (1e-8 ether) up to
1e9 ether, so `price / 10**18` is exact at the 8 decimal places our Money columns store. A log that breaks
that rule did not come from TicketNFT and is refused (`UndecodableLog`), never rounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from eth_abi import decode as abi_decode
from eth_utils import event_abi_to_log_topic

from ticketguard.chain.artifact import ticket_nft
from ticketguard.wallets import canonical_wallet

WEI_PER_ETHER = 10**18
PRICE_DECIMALS = 8
PRICE_UNIT_WEI = 10 ** (18 - PRICE_DECIMALS)
MAX_PRICE_WEI = 10**9 * WEI_PER_ETHER
MAX_CAPACITY = 10_000_000
MAX_TIMESTAMP = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp())
CHAIN_PAYMENT_METHOD = "crypto"
TRANSFER_PAYMENT_METHOD = "transfer"
CHAIN_STATUS = "confirmed"
CHAIN_SOURCE = "chain"
# transaction_id is String(64): "chain:" + 48 hex digits of the tx hash (192 bits, unique in practice;
# the full hash is in chain_tx_hash) + ":" + log index.
TX_HASH_DIGITS_IN_ID = 48

MovementKind = Literal["sale", "resale", "transfer"]


class UndecodableLog(ValueError):
    """A log from the contract address that TicketNFT cannot have emitted; the ETL stops on it."""


@dataclass(frozen=True)
class LogPosition:
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int

    def describe(self) -> str:
        return f"log {self.log_index} of transaction {self.tx_hash} (block {self.block_number})"


@dataclass(frozen=True)
class EventCreated:
    position: LogPosition
    event_id: int
    organizer: str
    capacity: int
    face_value_wei: int
    on_sale_at: int
    starts_at: int


@dataclass(frozen=True)
class TicketMovement:
    """A primary sale, a market resale, or a plain transfer (price off chain, so None)."""

    position: LogPosition
    kind: MovementKind
    event_id: int
    token_id: int
    buyer: str
    seller: str
    price_wei: int | None


@dataclass(frozen=True)
class DecodedLogs:
    events: list[EventCreated]
    movements: list[TicketMovement]
    ignored: int  # logs of the contract the ETL has no row for (Transfer, Approval, listings, withdrawals)


@dataclass(frozen=True)
class _EventSpec:
    name: str
    indexed: list[tuple[str, str]]  # (name, abi type)
    data: list[tuple[str, str]]


def _specs() -> dict[bytes, _EventSpec]:
    specs: dict[bytes, _EventSpec] = {}
    for name in ("EventCreated", "TicketSold", "TicketResold", "TicketTransferred"):
        abi = ticket_nft().event_abi(name)
        inputs = abi["inputs"]
        specs[event_abi_to_log_topic(abi)] = _EventSpec(  # type: ignore[arg-type]
            name=name,
            indexed=[(i["name"], i["type"]) for i in inputs if i["indexed"]],
            data=[(i["name"], i["type"]) for i in inputs if not i["indexed"]],
        )
    return specs


_SPECS = _specs()


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return bytes.fromhex(value[2:] if value.startswith(("0x", "0X")) else value)
    raise TypeError(f"expected hex string or bytes, got {type(value).__name__}")


def _as_int(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value, 16) if value.startswith(("0x", "0X")) else int(value)
    raise TypeError(f"expected int or hex string, got {type(value).__name__}")


def _as_hash(value: Any) -> str:
    return "0x" + _as_bytes(value).hex()


def position_of(raw: Mapping[str, Any]) -> LogPosition:
    return LogPosition(
        block_number=_as_int(raw["blockNumber"]),
        block_hash=_as_hash(raw["blockHash"]),
        tx_hash=_as_hash(raw["transactionHash"]),
        log_index=_as_int(raw["logIndex"]),
    )


def _fields(spec: _EventSpec, raw: Mapping[str, Any], position: LogPosition) -> dict[str, Any]:
    topics = [_as_bytes(t) for t in raw["topics"]]
    if len(topics) != 1 + len(spec.indexed):
        raise UndecodableLog(
            f"{position.describe()}: {spec.name} needs {1 + len(spec.indexed)} topics, got {len(topics)}"
        )
    values: dict[str, Any] = {}
    try:
        for (name, abi_type), topic in zip(spec.indexed, topics[1:], strict=True):
            values[name] = abi_decode([abi_type], topic)[0]
        decoded = abi_decode([t for _, t in spec.data], _as_bytes(raw["data"]))
    except Exception as exc:  # eth_abi raises several unrelated types for malformed input
        raise UndecodableLog(f"{position.describe()}: {spec.name} does not decode: {exc}") from exc
    values.update({name: value for (name, _), value in zip(spec.data, decoded, strict=True)})
    # eth_abi gives checksummed addresses: stored in the one spelling every boundary uses (lower-cased
    # first: eth_abi computed that checksum itself, there is nothing to check again).
    for name, abi_type in (*spec.indexed, *spec.data):
        if abi_type == "address":
            values[name] = canonical_wallet(values[name].lower())
    return values


def _check_price(price: int, field: str, position: LogPosition) -> int:
    if price % PRICE_UNIT_WEI or not 0 <= price <= MAX_PRICE_WEI:
        raise UndecodableLog(
            f"{position.describe()}: {field}={price} wei is not a multiple of {PRICE_UNIT_WEI} wei "
            f"in 0..{MAX_PRICE_WEI}; TicketNFT never emits that (is CONTRACT_ADDRESS right?)"
        )
    return price


def _check_time(value: int, field: str, position: LogPosition) -> int:
    if not 0 <= value <= MAX_TIMESTAMP:
        raise UndecodableLog(f"{position.describe()}: {field}={value} is not a usable Unix time")
    return value


def decode_log(raw: Mapping[str, Any]) -> EventCreated | TicketMovement | None:
    """One raw log as a chain fact, or None for a log the ETL has no row for."""
    if raw.get("removed"):
        return None
    topics = raw.get("topics") or []
    if not topics:
        return None
    spec = _SPECS.get(_as_bytes(topics[0]))
    if spec is None:
        return None
    position = position_of(raw)
    values = _fields(spec, raw, position)
    if spec.name == "EventCreated":
        capacity = values["capacity"]
        if not 0 < capacity <= MAX_CAPACITY:
            raise UndecodableLog(f"{position.describe()}: capacity={capacity} outside 1..{MAX_CAPACITY}")
        return EventCreated(
            position=position,
            event_id=values["eventId"],
            organizer=values["organizer"],
            capacity=capacity,
            face_value_wei=_check_price(values["faceValue"], "faceValue", position),
            on_sale_at=_check_time(values["onSaleAt"], "onSaleAt", position),
            starts_at=_check_time(values["startsAt"], "startsAt", position),
        )
    if spec.name == "TicketTransferred":
        return TicketMovement(
            position=position,
            kind="transfer",
            event_id=values["eventId"],
            token_id=values["tokenId"],
            buyer=values["to"],
            seller=values["from"],
            price_wei=None,
        )
    return TicketMovement(
        position=position,
        kind="sale" if spec.name == "TicketSold" else "resale",
        event_id=values["eventId"],
        token_id=values["tokenId"],
        buyer=values["buyer"],
        seller=values["seller"],
        price_wei=_check_price(values["price"], "price", position),
    )


def decode_logs(raw_logs: Iterable[Mapping[str, Any]]) -> DecodedLogs:
    events: list[EventCreated] = []
    movements: list[TicketMovement] = []
    ignored = 0
    for raw in raw_logs:
        fact = decode_log(raw)
        if isinstance(fact, EventCreated):
            events.append(fact)
        elif isinstance(fact, TicketMovement):
            movements.append(fact)
        else:
            ignored += 1
    return DecodedLogs(events=events, movements=movements, ignored=ignored)


def wei_to_ether(wei: int) -> Decimal:
    """Exact for every price TicketNFT accepts (multiples of 1e10 wei): 8 decimal places."""
    return (Decimal(wei) / WEI_PER_ETHER).quantize(Decimal(1).scaleb(-PRICE_DECIMALS))


def utc_from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def chain_transaction_id(tx_hash: str, log_index: int) -> str:
    digits = tx_hash[2:] if tx_hash.startswith("0x") else tx_hash
    return f"chain:{digits[:TX_HASH_DIGITS_IN_ID].lower()}:{log_index}"


def transaction_row(movement: TicketMovement, block_timestamp: int) -> dict[str, Any]:
    """The `transactions` row of a sale, resale or transfer; `block_timestamp` is its block's Unix time."""
    position = movement.position
    return {
        "transaction_id": chain_transaction_id(position.tx_hash, position.log_index),
        "wallet_address": movement.buyer,
        "seller_address": movement.seller,
        "event_id": str(movement.event_id),
        "ticket_id": str(movement.token_id),
        "price_paid": None if movement.price_wei is None else wei_to_ether(movement.price_wei),
        "payment_method": TRANSFER_PAYMENT_METHOD if movement.kind == "transfer" else CHAIN_PAYMENT_METHOD,
        "is_resale": movement.kind != "sale",
        "status": CHAIN_STATUS,
        "timestamp": utc_from_unix(block_timestamp),
        "source": CHAIN_SOURCE,
        "chain_tx_hash": position.tx_hash,
        "chain_log_index": position.log_index,
        "block_number": position.block_number,
    }


def event_row(event: EventCreated) -> dict[str, Any]:
    """The `events` row of an EventCreated log (the chain knows no name, venue or city)."""
    return {
        "event_id": str(event.event_id),
        "name": f"on-chain event {event.event_id}",
        "organizer_id": event.organizer,
        "capacity": event.capacity,
        "face_value": wei_to_ether(event.face_value_wei),
        "on_sale_at": utc_from_unix(event.on_sale_at),
        "starts_at": utc_from_unix(event.starts_at),
    }
