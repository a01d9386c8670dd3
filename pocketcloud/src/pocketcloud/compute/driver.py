"""The compute driver seam: what the compute manager asks of its hypervisor.

The manager decides *what* happens to an instance (build it, reboot it, remove it, notice it
died) and keeps the records; a driver *does* it on the host. pocketcloud ships ``fake`` (nothing
runs) and ``process`` (each instance is a real local process whose console is a file).

Drivers register under the entry-point group ``steward.drivers.compute`` and are built with the
keyword arguments ``host``, ``data_dir``, ``memory_mb`` and ``disk_gb`` (the last two None for
the driver's own figures) and ``boot_seconds`` (how long a guest takes to boot: 0 for as fast as
it can; a slow image for demos and for tests of a boot interrupted half-way). ``destroy`` and
``detach_volume`` are idempotent.
"""

from __future__ import annotations

import dataclasses
import typing

from pocketcloud.objects import ConnectionInfo, InstanceSpec, NetworkInfo, PowerState

__all__ = ["ComputeDriver", "HostResources", "Instance"]


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    """What a driver knows of one instance."""

    server_id: str
    name: str
    ram_mb: int
    disk_gb: int
    network: NetworkInfo | None = None

    @classmethod
    def from_spec(cls, spec: InstanceSpec, network: NetworkInfo | None) -> Instance:
        """Return the instance a build request describes, on ``network``."""
        return cls(spec.server_id, spec.name, spec.ram_mb, spec.disk_gb, network)


@dataclasses.dataclass(frozen=True, slots=True)
class HostResources:
    """What a host offers in total, as its driver sees it."""

    memory_mb: int
    disk_gb: int
    hypervisor_type: str


@typing.runtime_checkable
class ComputeDriver(typing.Protocol):
    """What the compute manager needs of its driver. See the module docstring."""

    async def spawn(self, instance: Instance) -> None:
        """Create and start the instance; raise if it does not come up."""
        ...

    async def reboot(self, instance: Instance) -> None:
        """Stop the instance (if it runs) and start it again."""
        ...

    async def destroy(self, instance: Instance) -> None:
        """Stop the instance and remove what it left on the host."""
        ...

    async def get_power_state(self, instance: Instance) -> PowerState:
        """Return whether the instance runs."""
        ...

    async def get_console_output(self, instance: Instance) -> str:
        """Return the end of the instance's console."""
        ...

    async def attach_volume(self, instance: Instance, connection: ConnectionInfo) -> None:
        """Give the instance the volume ``connection`` describes."""
        ...

    async def detach_volume(self, instance: Instance, volume_id: str) -> None:
        """Take the volume away from the instance."""
        ...

    def get_available_resource(self) -> HostResources:
        """Return what the host offers in total."""
        ...

    async def cleanup_host(self) -> None:
        """Release what the driver holds: the compute service stops."""
        ...
