"""The client address a request is counted under, with and without trusted proxies."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from leadflow_intake.clients import client_address, parse_networks
from leadflow_intake.settings import IntakeSettings


def scope(peer: str | None, *forwarded: str) -> dict[str, Any]:
    return {
        "client": (peer, 51234) if peer is not None else None,
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


PROXIES = parse_networks("10.0.0.0/8, 127.0.0.1")


@pytest.mark.parametrize(
    ("request_scope", "proxies", "address"),
    [
        # No trusted proxy: the peer, whatever the header says.
        (scope("203.0.113.9", "198.51.100.1"), (), "203.0.113.9"),
        (scope("127.0.0.1", "198.51.100.1"), (), "127.0.0.1"),
        # An untrusted peer cannot choose its address with the header.
        (scope("203.0.113.9", "198.51.100.1"), PROXIES, "203.0.113.9"),
        # Behind a trusted proxy: the address that proxy saw.
        (scope("10.1.2.3", "198.51.100.1"), PROXIES, "198.51.100.1"),
        # What the client wrote itself (left of what the proxy appended) proves nothing.
        (scope("10.1.2.3", "1.2.3.4, 198.51.100.1"), PROXIES, "198.51.100.1"),
        (scope("10.1.2.3", "1.2.3.4", "198.51.100.1"), PROXIES, "198.51.100.1"),
        # Two trusted proxies in a row.
        (scope("127.0.0.1", "198.51.100.1, 10.9.9.9"), PROXIES, "198.51.100.1"),
        # Garbage where the client should be: counted under the last trusted hop.
        (scope("10.1.2.3", "not-an-address"), PROXIES, "10.1.2.3"),
        (scope("10.1.2.3"), PROXIES, "10.1.2.3"),
        # IPv6 clients by /64; IPv4-mapped ones as IPv4.
        (scope("2001:db8:1:2:aaaa::1"), (), "2001:db8:1:2::/64"),
        (scope("::ffff:203.0.113.9"), (), "203.0.113.9"),
        (scope("10.1.2.3", "[2001:db8::5]:443"), PROXIES, "2001:db8::/64"),
        # No network peer (a test client, a Unix socket).
        (scope("testclient"), (), "testclient"),
        (scope(None), (), "unknown"),
    ],
)
def test_client_address(request_scope: dict[str, Any], proxies: Any, address: str) -> None:
    assert client_address(request_scope, proxies) == address


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        parse_networks("10.0.0.0/8, proxy.internal")


def test_a_bad_trusted_proxies_setting_is_refused_with_a_sentence() -> None:
    with pytest.raises(ValidationError, match="LEADFLOW_INTAKE_TRUSTED_PROXIES must list IP"):
        IntakeSettings(trusted_proxies="10.0.0.0/8, proxy.internal")
