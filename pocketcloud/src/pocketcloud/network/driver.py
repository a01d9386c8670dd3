"""The network driver seam: what a network manager asks of the host's networking.

A manager decides *what* a network looks like (FlatManager: every network on one shared bridge;
VlanManager: a VLAN interface and a bridge of its own per network); a driver *builds* it. The same
calls serve both, so a new driver fits either manager:

* ``ensure_vlan(vlan, parent=...)`` makes the VLAN interface on ``parent`` and returns its name;
* ``ensure_bridge(bridge, interface=..., gateway=...)`` makes the bridge, enslaves ``interface``
  (if any) and gives the bridge the network's gateway address (``"10.0.0.1/24"``);
* ``plug``/``unplug`` give a server a port on a bridge, with its fixed address and MAC;
* ``remove_bridge``/``remove_vlan`` undo the above.

Every call is idempotent: a manager re-ensures its networks at start-up. Drivers register under
the entry-point group ``steward.drivers.network`` and are built with keyword arguments ``host``
and ``data_dir`` (and ``namespace`` when the ``network_namespace`` setting is set). The ``fake``
driver keeps the resulting set-up in memory; the ``linux`` driver
(:mod:`pocketcloud.network.drivers.linux`) runs the same steps with ``ip`` inside a network
namespace of pocketcloud's own, never in the host's.
"""

from __future__ import annotations

import typing

__all__ = ["NetworkDriver"]


@typing.runtime_checkable
class NetworkDriver(typing.Protocol):
    """What a network manager needs of its driver. See the module docstring."""

    async def ensure_vlan(self, vlan: int, *, parent: str) -> str:
        """Create VLAN ``vlan`` on interface ``parent`` if missing; return the interface name."""
        ...

    async def ensure_bridge(
        self, bridge: str, *, interface: str | None = None, gateway: str | None = None
    ) -> None:
        """Create ``bridge`` if missing, attach ``interface`` and add ``gateway`` (CIDR form)."""
        ...

    async def plug(self, bridge: str, *, port: str, address: str, mac: str) -> None:
        """Give server port ``port`` a place on ``bridge`` with ``address`` and ``mac``."""
        ...

    async def unplug(self, bridge: str, *, port: str) -> None:
        """Remove port ``port`` from ``bridge``; nothing happens if it is not there."""
        ...

    async def remove_bridge(self, bridge: str) -> None:
        """Delete ``bridge``; nothing happens if it is not there."""
        ...

    async def remove_vlan(self, vlan: int, *, parent: str) -> None:
        """Delete VLAN ``vlan`` of ``parent``; nothing happens if it is not there."""
        ...
