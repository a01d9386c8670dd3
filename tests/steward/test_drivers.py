from __future__ import annotations

import sys
import textwrap
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

from steward import available_drivers, load_driver
from steward.drivers import load_driver_class
from steward.errors import DriverLoadError, DriverNotFound

DRIVERS_MODULE = """
class NetworkDriver:
    def __init__(self, bridge: str = "br0") -> None:
        self.bridge = bridge


class LinuxDriver(NetworkDriver):
    pass


class CiscoDriver(NetworkDriver):
    pass


not_a_class = 42
"""

ENTRY_POINTS = """
[steward.drivers.testnet]
linux = netdrivers:LinuxDriver
cisco = netdrivers:CiscoDriver
ghost = netdrivers_missing:Ghost
number = netdrivers:not_a_class

[steward.drivers.testvol]
file = netdrivers:LinuxDriver
"""


@pytest.fixture
def installed_drivers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real distribution on sys.path registering drivers through entry points."""
    (tmp_path / "netdrivers.py").write_text(textwrap.dedent(DRIVERS_MODULE))
    dist_info = tmp_path / "netdrivers-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: netdrivers\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("netdrivers", None)


def test_available_drivers_lists_names_of_a_kind(installed_drivers: Path) -> None:
    assert available_drivers("testnet") == ["cisco", "ghost", "linux", "number"]
    assert available_drivers("testvol") == ["file"]
    assert available_drivers("nothing_registered") == []


def test_load_by_entry_point_name_with_kwargs(installed_drivers: Path) -> None:
    driver = load_driver("testnet", "linux", bridge="br-int")
    assert type(driver).__name__ == "LinuxDriver"
    assert typing.cast("typing.Any", driver).bridge == "br-int"
    assert load_driver_class("testnet", "cisco").__name__ == "CiscoDriver"


def test_load_by_module_path(installed_drivers: Path) -> None:
    driver = load_driver("testnet", "netdrivers:CiscoDriver")
    assert type(driver).__name__ == "CiscoDriver"


def test_expected_type_is_checked(installed_drivers: Path) -> None:
    import netdrivers  # type: ignore[import-not-found]

    driver = load_driver("testnet", "linux", netdrivers.NetworkDriver)
    assert isinstance(driver, netdrivers.NetworkDriver)
    with pytest.raises(DriverLoadError, match="is not a int"):
        load_driver("testnet", "linux", int)


def test_unknown_name_lists_the_available_ones(installed_drivers: Path) -> None:
    with pytest.raises(DriverNotFound) as caught:
        load_driver("testnet", "juniper")
    message = str(caught.value)
    assert "no 'testnet' driver named 'juniper'" in message
    assert "cisco, ghost, linux, number" in message
    assert caught.value.available == ["cisco", "ghost", "linux", "number"]
    assert isinstance(caught.value, LookupError)


def test_unknown_kind_says_none_are_installed() -> None:
    with pytest.raises(DriverNotFound, match="none are installed"):
        load_driver("hypervisor", "kvm")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("ghost", "'ghost' .*cannot be loaded", id="entry-point-module-missing"),
        pytest.param("number", "is 42, not a class", id="not-a-class"),
        pytest.param("netdrivers:Missing", "has no 'Missing'", id="path-attribute-missing"),
        pytest.param("no_such_module_x:Driver", "cannot import module", id="path-module-missing"),
    ],
)
def test_load_failures_are_clear(installed_drivers: Path, name: str, message: str) -> None:
    with pytest.raises(DriverLoadError, match=message):
        load_driver("testnet", name)


@pytest.mark.parametrize("kind", ["", "a b", "../x"])
def test_kind_must_be_a_name(kind: str) -> None:
    with pytest.raises(ValueError, match="`kind` must be a name"):
        available_drivers(kind)
