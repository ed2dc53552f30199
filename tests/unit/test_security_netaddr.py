from __future__ import annotations

import pytest

from ticketguard.security.netaddr import client_ip, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "127.0.0.1"])


def test_direct_client_spoofing_forwarded_for_changes_nothing() -> None:
    assert client_ip("203.0.113.9", ["1.2.3.4"], PROXIES) == "203.0.113.9"
    assert client_ip("203.0.113.9", ["1.2.3.4"], ()) == "203.0.113.9"


def test_trusted_proxy_hop_names_the_client() -> None:
    assert client_ip("10.1.2.3", ["198.51.100.7"], PROXIES) == "198.51.100.7"


def test_prepended_entries_are_ignored_through_a_proxy_chain() -> None:
    # client wrote "6.6.6.6" itself; our proxies appended the real client, then each other
    assert client_ip("127.0.0.1", ["6.6.6.6, 198.51.100.7, 10.0.0.5"], PROXIES) == "198.51.100.7"
    assert client_ip("127.0.0.1", ["6.6.6.6", "198.51.100.7"], PROXIES) == "198.51.100.7"


def test_garbage_hop_stops_at_the_last_trusted_address() -> None:
    assert client_ip("10.0.0.1", ["198.51.100.7, not-an-ip"], PROXIES) == "10.0.0.1"


def test_all_trusted_and_odd_forms() -> None:
    assert client_ip("10.0.0.1", [], PROXIES) == "10.0.0.1"
    assert client_ip("10.0.0.1", ["[2001:db8::1]:443"], PROXIES) == "2001:db8::1"
    assert client_ip("10.0.0.1", ["198.51.100.7:5000"], PROXIES) == "198.51.100.7"
    assert client_ip("::ffff:203.0.113.9", [], ()) == "203.0.113.9"
    assert client_ip(None, ["1.2.3.4"], PROXIES) == "0.0.0.0"


def test_bad_trusted_proxy_setting_is_named() -> None:
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        parse_networks(["10.0.0.0/33"])
