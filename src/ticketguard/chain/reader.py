"""The chain as the ETL needs it (`ChainReader`), and its web3.py implementation.

The reader only reads and translates: a failure that a later try may cure (connection refused, timeout,
HTTP 429/5xx, a node's "limit exceeded" or internal error) becomes `ProviderUnavailable`, which the
pipeline retries with backoff; anything else (bad API key, invalid params) propagates as it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import requests
from web3 import Web3
from web3.exceptions import (
    BlockNotFound,
    ProviderConnectionError,
    TimeExhausted,
    TooManyRequests,
    Web3RPCError,
)
from web3.providers.base import JSONBaseProvider

if TYPE_CHECKING:
    from ticketguard.config import Settings

# JSON-RPC error codes that mean "the node could not serve this now", not "the request is wrong":
# -32000 generic server error (e.g. "header not found" on a lagging node), -32005 limit exceeded
# (Infura, Alchemy rate limits), -32603 internal error; 429 sent as an RPC code by some gateways.
TRANSIENT_RPC_CODES = frozenset({-32000, -32005, -32603, 429})
# Headers per JSON-RPC batch: public gateways cap batch sizes (Alchemy 1000, some 100).
HEADER_BATCH_SIZE = 100


class ProviderUnavailable(Exception):
    """A provider call failed in a way that a later try may cure."""


@dataclass(frozen=True)
class BlockHeader:
    number: int
    hash: str
    parent_hash: str
    timestamp: int


class ChainReader(Protocol):
    """What the ETL reads from a chain. Logs come back as raw JSON-RPC dicts (see `decode`)."""

    def chain_id(self) -> int: ...

    def head_block(self) -> int: ...

    def header(self, number: int) -> BlockHeader | None:
        """The canonical block at `number`, or None if the chain is not that long (any more)."""
        ...

    def headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader]:
        """Canonical blocks by number; a number past the head is missing from the answer."""
        ...

    def logs(self, address: str, from_block: int, to_block: int) -> list[dict[str, Any]]: ...


def _rpc_code(exc: Web3RPCError) -> int | None:
    response = exc.rpc_response or {}
    error = response.get("error") if isinstance(response, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), int):
        return int(error["code"])
    return None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ProviderConnectionError | TooManyRequests | TimeExhausted):
        return True
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else None
        return status is None or status == 429 or status >= 500
    if isinstance(exc, requests.RequestException | OSError):
        return True
    if isinstance(exc, Web3RPCError):
        return _rpc_code(exc) in TRANSIENT_RPC_CODES
    return False


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise ProviderUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
        raise


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex() if isinstance(value, bytes | bytearray) else str(value)


def _header(block: Any) -> BlockHeader:
    return BlockHeader(
        number=int(block["number"]),
        hash=_hex(block["hash"]),
        parent_hash=_hex(block["parentHash"]),
        timestamp=int(block["timestamp"]),
    )


def _plain_log(log: Any) -> dict[str, Any]:
    return {
        "address": str(log["address"]),
        "topics": [_hex(t) for t in log["topics"]],
        "data": _hex(log["data"]),
        "blockNumber": int(log["blockNumber"]),
        "blockHash": _hex(log["blockHash"]),
        "transactionHash": _hex(log["transactionHash"]),
        "logIndex": int(log["logIndex"]),
        "removed": bool(log.get("removed", False)),
    }


class Web3ChainReader:
    """`ChainReader` over any web3.py provider (HTTP, WebSocket-less IPC, or the in-process eth-tester)."""

    def __init__(self, w3: Web3) -> None:
        self._w3 = w3
        # JSON-RPC batching saves a round trip per header on HTTP/IPC; in-process providers lack it.
        self._batching = isinstance(w3.provider, JSONBaseProvider)

    @property
    def web3(self) -> Web3:
        return self._w3

    def chain_id(self) -> int:
        with _translated("eth_chainId"):
            return int(self._w3.eth.chain_id)

    def head_block(self) -> int:
        with _translated("eth_blockNumber"):
            return int(self._w3.eth.block_number)

    def header(self, number: int) -> BlockHeader | None:
        with _translated(f"eth_getBlockByNumber({number})"):
            try:
                return _header(self._w3.eth.get_block(number))
            except BlockNotFound:
                return None

    def headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader]:
        wanted = sorted(set(numbers))
        found: dict[int, BlockHeader] = {}
        if not self._batching:
            for number in wanted:
                header = self.header(number)
                if header is not None:
                    found[number] = header
            return found
        for start in range(0, len(wanted), HEADER_BATCH_SIZE):
            chunk = wanted[start : start + HEADER_BATCH_SIZE]
            try:
                with (
                    _translated(f"batch of {len(chunk)} eth_getBlockByNumber from {chunk[0]}"),
                    self._w3.batch_requests() as batch,
                ):
                    for number in chunk:
                        batch.add(self._w3.eth.get_block(number))
                    blocks = batch.execute()
            except BlockNotFound:
                # The chain got shorter under us (a reorg): ask one by one to learn which are gone.
                for number in chunk:
                    header = self.header(number)
                    if header is not None:
                        found[number] = header
                continue
            for block in blocks:
                # A block past the head comes back as null (web3 leaves it None in a batch).
                if block:
                    header = _header(block)
                    found[header.number] = header
        return found

    def logs(self, address: str, from_block: int, to_block: int) -> list[dict[str, Any]]:
        with _translated(f"eth_getLogs({from_block}..{to_block})"):
            raw = self._w3.eth.get_logs(
                {
                    "address": Web3.to_checksum_address(address),
                    "fromBlock": from_block,
                    "toBlock": to_block,
                }
            )
        return [_plain_log(log) for log in raw]


def web3_for_url(url: str, *, timeout_s: float = 30.0) -> Web3:
    """A Web3 client for an http(s):// endpoint or an IPC socket path.

    web3's own HTTP retry is turned off: the pipeline retries every provider call the same way, with
    its bounded backoff, whatever the transport.
    """
    from web3 import HTTPProvider, IPCProvider

    if url.startswith(("http://", "https://")):
        return Web3(
            HTTPProvider(url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None)
        )
    if url.startswith(("ws://", "wss://")):
        raise ValueError(
            f"WEB3_PROVIDER {url.split('://')[0]}:// is not supported by the ETL; use the provider's "
            "http(s):// endpoint (logs are read in ranges, a subscription is not needed)"
        )
    if "://" not in url:
        return Web3(IPCProvider(url, timeout=max(1, round(timeout_s))))
    raise ValueError(
        f"WEB3_PROVIDER must be an http(s):// URL or an IPC socket path, got {url.split('://')[0]}://"
    )


def reader_from_settings(settings: Settings) -> Web3ChainReader:
    """The reader the configured WEB3_PROVIDER gives (the ETL's counterpart of `bootstrap`)."""
    if not settings.web3_provider:
        raise ValueError("WEB3_PROVIDER is not set: give the node's http(s):// URL or IPC path")
    return Web3ChainReader(
        web3_for_url(settings.web3_provider, timeout_s=settings.chain_rpc_timeout.total_seconds())
    )
