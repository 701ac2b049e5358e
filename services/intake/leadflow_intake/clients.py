"""Who is calling: the client address a per-address limit counts against.

The address is the TCP peer's, unless the peer is one of the trusted proxies
(`LEADFLOW_INTAKE_TRUSTED_PROXIES`): then it is the right-most `X-Forwarded-For` entry
that is not itself a trusted proxy, the client as the first trusted proxy saw it. Entries
to the left of it were written by the client and prove nothing, so a caller cannot pick
the address it is counted under. IPv6 clients are counted by their /64 network: one
host usually holds a whole /64.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str | Iterable[str]) -> tuple[Network, ...]:
    """Networks from `10.0.0.0/8, 127.0.0.1, ::1` (an address is a one-host network)."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    host = value.strip()
    if host.startswith("["):  # [v6]:port
        host = host[1 : host.find("]")]
    elif host.count(":") == 1:  # v4:port
        host = host.split(":")[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]) -> bool:
    return any(ip in network for network in proxies)


def _counted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_address(scope: Scope, proxies: Sequence[Network]) -> str:
    """The address a request is counted under (see the module's docstring)."""
    client = scope.get("client")
    peer = client[0] if client else ""
    ip = _ip(peer) if peer else None
    if ip is None:
        return peer or "unknown"
    if proxies and _trusted(ip, proxies):
        forwarded = [
            value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name == b"x-forwarded-for"
        ]
        for entry in reversed(",".join(forwarded).split(",")):
            hop = _ip(entry)
            if hop is None:
                break  # garbage: what is left of it was not written by a trusted proxy
            ip = hop
            if not _trusted(hop, proxies):
                break
    return _counted(ip)
