from __future__ import annotations

import ipaddress

import pytest

from pocketcloud.errors import InvalidInput, NoMoreAddresses
from pocketcloud.network import ipam


def test_the_gateway_is_the_first_host_and_is_never_handed_out() -> None:
    network = ipam.parse_cidr("192.168.5.0/29")
    assert str(ipam.gateway_of(network)) == "192.168.5.1"
    assert str(ipam.first_free_address(network, [])) == "192.168.5.2"
    assert str(ipam.first_free_address(network, ["192.168.5.2", "192.168.5.4"])) == "192.168.5.3"


def test_a_full_network_has_no_more_addresses() -> None:
    network = ipam.parse_cidr("192.168.5.0/29")
    taken = [str(address) for address in list(network.hosts())[1:]]
    with pytest.raises(NoMoreAddresses, match=r"192\.168\.5\.0/29 has no free address"):
        ipam.first_free_address(network, taken)


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("10.0.0.0/8", "prefix between /16 and /29"),
        ("10.0.0.0/30", "prefix between /16 and /29"),
        ("10.0.0.1/24", "host bits zero"),
        ("banana", "IPv4 network such as"),
        ("fd00::/64", "only IPv4"),
        ("0.0.0.0/16", r"overlaps 0\.0\.0\.0/8, the 'this network' range"),
        ("127.0.0.0/16", "the loopback range"),
        ("169.254.0.0/24", "the link-local range"),
        ("224.0.0.0/24", "the multicast range"),
        ("255.255.255.248/29", "the reserved range"),
    ],
)
def test_cidrs_outside_what_is_supported_are_invalid_input(cidr: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ipam.parse_cidr(cidr)


@pytest.mark.parametrize("cidr", ["10.0.0.0/24", "172.16.0.0/16", "192.168.1.0/29", "8.8.8.0/24"])
def test_private_and_public_ranges_are_accepted(cidr: str) -> None:
    assert str(ipam.parse_cidr(cidr)) == cidr


def test_macs_carry_openstack_s_prefix() -> None:
    mac = ipam.random_mac()
    assert mac.startswith("fa:16:3e:")
    assert len(mac.split(":")) == 6
    assert ipaddress.ip_network("10.0.0.0/24").prefixlen == 24
