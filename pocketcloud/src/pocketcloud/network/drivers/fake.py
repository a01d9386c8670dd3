"""The ``fake`` network driver: the set-up a real driver would build, kept in memory.

Tests read :attr:`FakeNetworkDriver.bridges`, :attr:`FakeNetworkDriver.vlans` and
:attr:`FakeNetworkDriver.calls` to see what a network manager asked for.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

__all__ = ["FakeBridge", "FakeNetworkDriver"]


@dataclasses.dataclass(slots=True)
class FakeBridge:
    """A bridge: its enslaved interfaces, its addresses and the server ports on it."""

    interfaces: set[str] = dataclasses.field(default_factory=set)
    addresses: set[str] = dataclasses.field(default_factory=set)
    ports: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)


class FakeNetworkDriver:
    """Records bridges, VLAN interfaces and ports instead of creating them."""

    def __init__(self, *, host: str = "", data_dir: Path | None = None) -> None:
        self.host = host
        self.bridges: dict[str, FakeBridge] = {}
        self.vlans: dict[str, tuple[int, str]] = {}
        self.calls: list[tuple[str, object]] = []

    async def ensure_vlan(self, vlan: int, *, parent: str) -> str:
        """Record VLAN interface ``vlan<vlan>`` on ``parent``."""
        name = f"vlan{vlan}"
        self.calls.append(("ensure_vlan", (vlan, parent)))
        self.vlans[name] = (vlan, parent)
        return name

    async def ensure_bridge(
        self, bridge: str, *, interface: str | None = None, gateway: str | None = None
    ) -> None:
        """Record ``bridge`` with ``interface`` enslaved and ``gateway`` added."""
        self.calls.append(("ensure_bridge", (bridge, interface, gateway)))
        record = self.bridges.setdefault(bridge, FakeBridge())
        if interface is not None:
            record.interfaces.add(interface)
        if gateway is not None:
            record.addresses.add(gateway)

    async def plug(self, bridge: str, *, port: str, address: str, mac: str) -> None:
        """Record a port for a server on ``bridge``."""
        self.calls.append(("plug", (bridge, port, address)))
        self.bridges.setdefault(bridge, FakeBridge()).ports[port] = (address, mac)

    async def unplug(self, bridge: str, *, port: str) -> None:
        """Forget the server port ``port``."""
        self.calls.append(("unplug", (bridge, port)))
        if bridge in self.bridges:
            self.bridges[bridge].ports.pop(port, None)

    async def remove_bridge(self, bridge: str) -> None:
        """Forget ``bridge``."""
        self.calls.append(("remove_bridge", bridge))
        self.bridges.pop(bridge, None)

    async def remove_vlan(self, vlan: int, *, parent: str) -> None:
        """Forget VLAN interface ``vlan<vlan>``."""
        self.calls.append(("remove_vlan", (vlan, parent)))
        self.vlans.pop(f"vlan{vlan}", None)
