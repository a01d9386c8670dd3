"""The ``fake`` compute driver: instances as entries in a dict; nothing runs.

Tests use it to drive the compute manager: :attr:`FakeComputeDriver.spawn_error` makes the next
spawn fail, :meth:`FakeComputeDriver.power_off` makes an instance die behind the manager's back.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from pocketcloud.compute.driver import HostResources, Instance
from pocketcloud.objects import ConnectionInfo, PowerState

__all__ = ["FakeComputeDriver", "FakeInstance"]

DEFAULT_MEMORY_MB = 16384
DEFAULT_DISK_GB = 200


@dataclasses.dataclass(slots=True)
class FakeInstance:
    """An instance the fake driver pretends to run."""

    instance: Instance
    power_state: PowerState = PowerState.RUNNING
    boots: int = 1
    volumes: dict[str, ConnectionInfo] = dataclasses.field(default_factory=dict)


class FakeComputeDriver:
    """Keeps instances in :attr:`instances`; offers ``memory_mb`` and ``disk_gb``."""

    def __init__(
        self,
        *,
        host: str = "",
        data_dir: Path | None = None,
        memory_mb: int | None = None,
        disk_gb: int | None = None,
        boot_seconds: float = 0.0,
    ) -> None:
        self.host = host
        self.boot_seconds = boot_seconds
        self.memory_mb = memory_mb or DEFAULT_MEMORY_MB
        self.disk_gb = disk_gb or DEFAULT_DISK_GB
        self.instances: dict[str, FakeInstance] = {}
        self.spawn_error: Exception | None = None

    async def spawn(self, instance: Instance) -> None:
        """Record the instance as running (after ``boot_seconds``), or raise :attr:`spawn_error`.

        :attr:`spawn_error` is raised once, then cleared.
        """
        if self.spawn_error is not None:
            error, self.spawn_error = self.spawn_error, None
            raise error
        if self.boot_seconds:
            await asyncio.sleep(self.boot_seconds)
        self.instances[instance.server_id] = FakeInstance(instance)

    async def reboot(self, instance: Instance) -> None:
        """Count a boot; the instance runs afterwards."""
        fake = self.instances.setdefault(instance.server_id, FakeInstance(instance, boots=0))
        fake.boots += 1
        fake.power_state = PowerState.RUNNING

    async def destroy(self, instance: Instance) -> None:
        """Forget the instance."""
        self.instances.pop(instance.server_id, None)

    def power_off(self, server_id: str) -> None:
        """Make an instance stop, as if it crashed."""
        self.instances[server_id].power_state = PowerState.SHUTDOWN

    async def get_power_state(self, instance: Instance) -> PowerState:
        """Return the recorded power state (NOSTATE for an unknown instance)."""
        fake = self.instances.get(instance.server_id)
        return fake.power_state if fake is not None else PowerState.NOSTATE

    async def get_console_output(self, instance: Instance) -> str:
        """Return a made-up console."""
        fake = self.instances.get(instance.server_id)
        boots = fake.boots if fake is not None else 0
        return f"fake console of {instance.name} ({boots} boots)\n"

    async def attach_volume(self, instance: Instance, connection: ConnectionInfo) -> None:
        """Record the volume on the instance."""
        self.instances[instance.server_id].volumes[connection.volume_id] = connection

    async def detach_volume(self, instance: Instance, volume_id: str) -> None:
        """Forget the volume."""
        fake = self.instances.get(instance.server_id)
        if fake is not None:
            fake.volumes.pop(volume_id, None)

    def get_available_resource(self) -> HostResources:
        """Return the configured totals."""
        return HostResources(self.memory_mb, self.disk_gb, hypervisor_type="fake")

    async def cleanup_host(self) -> None:
        """Nothing to release."""
