"""Fixed-IP address management: which CIDRs are allowed, the gateway, the next free address.

Pure functions over :mod:`ipaddress`; the network manager keeps the allocations in its tables.
A network's first host address is its gateway; the network and broadcast addresses are never
handed out.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable

from pocketcloud.errors import InvalidInput, NoMoreAddresses

__all__ = [
    "MAX_PREFIX",
    "MIN_PREFIX",
    "first_free_address",
    "gateway_of",
    "parse_cidr",
    "random_mac",
]

MIN_PREFIX = 16
"""Largest network accepted (/16: 65,534 addresses)."""
MAX_PREFIX = 29
"""Smallest network accepted (/29: a gateway and five servers)."""


def parse_cidr(cidr: str) -> ipaddress.IPv4Network:
    """Return the IPv4 network ``cidr`` names; raise :class:`InvalidInput` saying what is wrong."""
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise InvalidInput(
            f"`cidr` must be an IPv4 network such as 10.0.0.0/24 (host bits zero), got {cidr!r}"
        ) from exc
    if not isinstance(network, ipaddress.IPv4Network):
        raise InvalidInput(f"only IPv4 networks are supported, got {cidr!r}")
    if not MIN_PREFIX <= network.prefixlen <= MAX_PREFIX:
        raise InvalidInput(
            f"`cidr` must have a prefix between /{MIN_PREFIX} and /{MAX_PREFIX}, got {cidr!r}"
        )
    for special, name in _UNUSABLE:
        if network.overlaps(special):
            raise InvalidInput(
                f"`cidr` {cidr!r} overlaps {special}, the {name} range, which no host network "
                "may use; choose a private range such as 10.0.0.0/24"
            )
    return network


_UNUSABLE = tuple(
    (ipaddress.IPv4Network(cidr), name)
    for cidr, name in (
        ("0.0.0.0/8", "'this network'"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)
"""Ranges a network's fixed IPs can never come from (RFC 6890's special-purpose ones)."""


def gateway_of(network: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """Return the network's gateway: its first host address."""
    return network.network_address + 1


def first_free_address(
    network: ipaddress.IPv4Network, taken: Iterable[str]
) -> ipaddress.IPv4Address:
    """Return the lowest host address that is neither the gateway nor in ``taken``.

    Raises :class:`NoMoreAddresses` when every address is taken.
    """
    used = {ipaddress.IPv4Address(address) for address in taken}
    used.add(gateway_of(network))
    for address in network.hosts():
        if address not in used:
            return address
    raise NoMoreAddresses(f"network {network} has no free address left")


def random_mac() -> str:
    """Return a random MAC address with OpenStack's ``fa:16:3e`` prefix."""
    return "fa:16:3e:" + ":".join(f"{byte:02x}" for byte in secrets.token_bytes(3))
