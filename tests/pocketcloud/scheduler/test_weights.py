from __future__ import annotations

from pocketcloud.scheduler.host_state import HostState
from pocketcloud.scheduler.weights import normalize, weigh_hosts


def _host(name: str, free_mb: int) -> HostState:
    return HostState(
        host=name,
        availability_zone="nova",
        memory_mb=8192,
        disk_gb=100,
        allocated_ram_mb=8192 - free_mb,
        allocated_disk_gb=0,
        enabled=True,
        up=True,
    )


def test_normalize_scales_to_zero_one_and_equal_values_to_zero() -> None:
    assert normalize([1.0, 3.0, 2.0]) == [0.0, 1.0, 0.5]
    assert normalize([5.0, 5.0]) == [0.0, 0.0]


def test_positive_ram_multiplier_spreads_to_the_host_with_most_free_ram() -> None:
    hosts = [_host("a", 1000), _host("b", 6000), _host("c", 3000)]
    ranked = weigh_hosts(hosts, ram_weight_multiplier=1.0)
    assert [host.host for host in ranked] == ["b", "c", "a"]


def test_negative_ram_multiplier_stacks_on_the_fullest_host() -> None:
    hosts = [_host("a", 1000), _host("b", 6000), _host("c", 3000)]
    ranked = weigh_hosts(hosts, ram_weight_multiplier=-1.0)
    assert [host.host for host in ranked] == ["a", "c", "b"]


def test_ties_go_to_the_first_host_name() -> None:
    ranked = weigh_hosts([_host("b", 100), _host("a", 100)], ram_weight_multiplier=1.0)
    assert [host.host for host in ranked] == ["a", "b"]
