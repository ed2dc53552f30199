"""Which address is the client? Only proxies we trust may tell us. Pure.

The peer of the TCP connection is the client unless it is a configured trusted proxy; then
``X-Forwarded-For`` is read from the right (the hop nearest us), skipping trusted proxies, and the first
address not ours is the client. Anything to the left of that was written by the client itself and is
ignored — so a spoofed ``X-Forwarded-For`` from a direct client, or extra entries prepended through a
proxy, change nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    networks: list[IPNetwork] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"TRUSTED_PROXIES entries must be IP addresses or CIDRs (e.g. 10.0.0.0/8), got {value!r}"
            ) from None
    return tuple(networks)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = value.strip().strip('"')
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 203.0.113.7:5123
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def client_ip(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The client's address; ``forwarded_for`` holds every X-Forwarded-For header value, in order."""
    peer_address = _address(peer or "")
    if peer_address is None:
        # Not a bind address: the unknown client (e.g. an in-process test transport has no peer).
        return "0.0.0.0"  # noqa: S104  # nosec B104
    if not trusted or not _trusted(peer_address, trusted):
        return str(peer_address)
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    current = peer_address
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return str(current)  # garbage from here on was not written by a proxy we trust
        if not _trusted(address, trusted):
            return str(address)
        current = address
    return str(current)
