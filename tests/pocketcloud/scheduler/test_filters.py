from __future__ import annotations

import pytest

from pocketcloud.errors import NoValidHost
from pocketcloud.objects import RequestSpec
from pocketcloud.scheduler.filters import FILTERS, HostFilter, filter_hosts
from pocketcloud.scheduler.host_state import HostState


def _host(name: str, **changes: object) -> HostState:
    values: dict[str, object] = {
        "host": name,
        "availability_zone": "nova",
        "memory_mb": 4096,
        "disk_gb": 100,
        "allocated_ram_mb": 0,
        "allocated_disk_gb": 0,
        "enabled": True,
        "up": True,
    }
    return HostState(**(values | changes))  # type: ignore[arg-type]


def _filters(*names: str) -> list[tuple[str, HostFilter]]:
    return [(name, FILTERS[name]()) for name in names]


ALL = ("ComputeFilter", "AvailabilityZoneFilter", "RamFilter", "DiskFilter")


def _spec(**changes: object) -> RequestSpec:
    return RequestSpec.model_validate({"server_id": "s", "ram_mb": 512, "disk_gb": 10} | changes)


@pytest.mark.parametrize(
    ("host", "spec", "passes"),
    [
        pytest.param(_host("a"), _spec(), True, id="fits"),
        pytest.param(_host("a", enabled=False), _spec(), False, id="disabled"),
        pytest.param(_host("a", up=False), _spec(), False, id="down"),
        pytest.param(_host("a", allocated_ram_mb=3700), _spec(), False, id="ram-claimed"),
        pytest.param(_host("a", allocated_ram_mb=3584), _spec(), True, id="ram-exactly-fits"),
        pytest.param(_host("a"), _spec(disk_gb=101), False, id="disk"),
        pytest.param(_host("a"), _spec(availability_zone="other"), False, id="other-zone"),
        pytest.param(_host("a"), _spec(availability_zone="nova"), True, id="same-zone"),
    ],
)
def test_a_host_passes_only_when_every_filter_agrees(
    host: HostState, spec: RequestSpec, passes: bool
) -> None:
    if passes:
        assert filter_hosts([host], spec, _filters(*ALL)) == [host]
    else:
        with pytest.raises(NoValidHost):
            filter_hosts([host], spec, _filters(*ALL))


def test_no_valid_host_names_the_filter_that_left_none_and_what_it_wanted() -> None:
    hosts = [_host("a", memory_mb=1024), _host("b", memory_mb=2048)]
    with pytest.raises(NoValidHost) as caught:
        filter_hosts(hosts, _spec(ram_mb=4096), _filters(*ALL))
    assert str(caught.value) == (
        "No valid host was found: RamFilter left none of 2 compute hosts "
        "(it looks for 4096 MB of free RAM)"
    )


def test_no_reported_host_is_no_valid_host() -> None:
    with pytest.raises(NoValidHost, match="no compute host has reported its resources yet"):
        filter_hosts([], _spec(), _filters(*ALL))


def test_only_the_enabled_filters_run() -> None:
    host = _host("a", up=False)
    assert filter_hosts([host], _spec(), _filters("RamFilter")) == [host]
