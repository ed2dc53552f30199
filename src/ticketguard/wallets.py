"""One spelling per wallet: ``canonical_wallet`` is the only way an address enters ticketguard.

An EVM address is a 20-byte number. Written in hex it has many spellings — ``0xdeadbeef``,
``0x00000000000000000000000000000000DeaDBeef``, ``0X00…DEADBEEF`` — and a block list keyed by the text
would miss every spelling but the one listed. So every boundary (API request schemas and batch items, block
and allow lists from the CLI, API and automated responses, imports, chain ETL, online and offline features,
GDPR erasure, and anything that looks a wallet up) passes the address through ``canonical_wallet`` and
stores, compares and hashes only its result:

    ``0x`` + 40 lower-case hex digits, left-padded with zeros.

What is accepted:

- ``0x`` (or ``0X``) and 1 to 40 hex digits; anything else is refused with a ``WalletError`` that says
  what is accepted (the boundary adds the field name).
- All lower-case or all upper-case digits: taken as they are (no checksum to check).
- Mixed case over exactly 40 digits: an EIP-55 checksum, which must be right (a mistyped digit would
  otherwise silently become another wallet). Checked with eth_utils; refused when wrong.
- Mixed case over fewer than 40 digits (the deployment guide's own sample,
  ``0x742d35Cc6634C0532925a3b844Bc9e7595f0bEb``, has 39): EIP-55 is defined over the 40-digit form only,
  so there is no checksum to check; it is accepted, left-padded and lower-cased
  (→ ``0x0742d35cc6634c0532925a3b844bc9e7595f0beb``).

Cost on the scoring path: an address already canonical returns after one regular-expression match
(~0.3 µs); only mixed-case 40-digit input pays for a keccak (~27 µs in eth_utils, then cached).

Pure: no infrastructure imports (import-linter holds this module to that).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re

__all__ = [
    "OPAQUE_ID_DEFAULT_NAMESPACE",
    "OPAQUE_ID_SCHEME",
    "WALLET_HELP",
    "WalletError",
    "canonical_wallet",
    "canonical_wallet_or_none",
    "is_canonical",
    "opaque_wallet",
    "wallet_key",
]

WALLET_HELP = (
    "0x followed by 1-40 hex digits (shorter ones are left-padded with zeros); mixed case only as a valid "
    "EIP-55 checksum of the 40-digit form"
)

_CANONICAL = re.compile(r"0x[0-9a-f]{40}")
_SPELLING = re.compile(r"0[xX]([0-9a-fA-F]{1,40})")


class WalletError(ValueError):
    """Not a wallet address; the message says what is accepted (the caller adds the field name)."""


def is_canonical(value: object) -> bool:
    """True for ``0x`` + 40 lower-case hex digits, the one stored spelling."""
    return isinstance(value, str) and _CANONICAL.fullmatch(value) is not None


def canonical_wallet(value: str) -> str:
    """The canonical spelling of ``value`` (see the module docstring), or ``WalletError``."""
    if type(value) is str and _CANONICAL.fullmatch(value) is not None:
        return value  # the common case on every path: already canonical
    if not isinstance(value, str):
        raise WalletError(f"must be a string: {WALLET_HELP}")
    match = _SPELLING.fullmatch(value)
    if match is None:
        raise WalletError(f"must be {WALLET_HELP}")
    digits = match.group(1)
    lower = digits.lower()
    if len(digits) == 40 and digits != lower and digits != digits.upper() and not _checksum_ok(digits):
        raise WalletError(
            "has mixed-case hex digits that are not a valid EIP-55 checksum (a mistyped digit?); "
            "send the checksummed address, or the address in all lower case"
        )
    return "0x" + lower.rjust(40, "0")


def canonical_wallet_or_none(value: str | None) -> str | None:
    """``canonical_wallet`` for optional values (a seller that is not there stays None)."""
    return None if value is None else canonical_wallet(value)


def wallet_key(value: str) -> str:
    """The key a wallet value is compared by where it may also be a stand-in rather than an address (rows
    read back from storage, where a GDPR erasure left a pseudonym ``erased:…``): the canonical spelling of
    an address, anything else unchanged (it never equals an address). Input from outside goes through
    ``canonical_wallet``, which refuses what is not an address."""
    if type(value) is str and _CANONICAL.fullmatch(value) is not None:
        return value
    try:
        return canonical_wallet(value)
    except WalletError:
        return value


# ------------------------------------------------------------------ ids that are not wallet addresses
# A platform that sells with customer accounts rather than wallets (or an external history: card ids,
# customer numbers) maps each id to a wallet-shaped key with `opaque_wallet` (`ticketguard import
# --opaque-ids`, issue 13). It is deterministic, so the same customer is the same "wallet" in every import,
# in training and in the live requests a backend sends (`ticketguard.client.opaque_wallet`).
OPAQUE_ID_SCHEME = "ticketguard-opaque-id/v1"
OPAQUE_ID_DEFAULT_NAMESPACE = "ticketguard"


def opaque_wallet(identifier: str, namespace: str = OPAQUE_ID_DEFAULT_NAMESPACE) -> str:
    """The canonical wallet standing for ``identifier`` (any text: a customer id, a card number's token):

        "0x" + HMAC-SHA256(key=namespace, msg="ticketguard-opaque-id/v1:" + identifier)[:40 hex digits]

    both UTF-8. The namespace is the HMAC key: one per platform keeps two platforms' customer 42 apart, and
    a secret namespace keeps small integer ids from being recomputed by whoever sees the addresses. 160
    bits: the chance of any two of a billion ids colliding is about 3e-31 (the import still checks).
    """
    if not isinstance(identifier, str) or not identifier:
        raise WalletError("an opaque id must be a non-empty string")
    digest = hmac.new(
        namespace.encode("utf-8"), f"{OPAQUE_ID_SCHEME}:{identifier}".encode(), hashlib.sha256
    ).hexdigest()
    return "0x" + digest[:40]


@functools.lru_cache(maxsize=16384)
def _checksum_ok(digits: str) -> bool:
    # Lazy: eth_utils (and its keccak backend) load only when a checksummed address first arrives.
    from eth_utils import to_checksum_address

    return bool(to_checksum_address("0x" + digits) == "0x" + digits)
