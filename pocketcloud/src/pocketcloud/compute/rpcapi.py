"""Client side of the compute service's RPC API (nova's ``compute/rpcapi.py``).

Every method goes to one host, ``compute.<host>``: the host that runs (or will run) the server.

API version history:

* 1.0 - build_and_run_instance, reboot_instance, terminate_instance, attach_volume,
  detach_volume
* 1.1 - get_console_output
"""

from __future__ import annotations

from pocketcloud.errors import ServiceUnavailable
from pocketcloud.objects import InstanceSpec, wire
from pocketcloud.rpc import make_client
from steward.context import RequestContext
from steward.rpc import Transport

__all__ = ["ComputeAPI"]


class ComputeAPI:
    """Asks one compute host. ``version_cap``: the newest version the oldest host speaks.

    A method newer than the cap raises :class:`ServiceUnavailable` before anything is sent, as
    nova's rpcapi does when ``can_send_version`` says no.
    """

    VERSION = "1.1"

    def __init__(
        self, transport: Transport, *, version_cap: str | None = None, timeout: float | None = None
    ) -> None:
        self.client = make_client(
            transport, "compute", "1.0", version_cap=version_cap, timeout=timeout
        )

    async def build_and_run_instance(
        self, context: RequestContext, host: str, instance: InstanceSpec
    ) -> None:
        """Cast: build and start the server on ``host``."""
        client = self.client.prepare(server=host)
        await client.cast(context, "build_and_run_instance", instance=wire(instance))

    async def reboot_instance(self, context: RequestContext, host: str, server_id: str) -> None:
        """Cast: restart the server on ``host``."""
        await self.client.prepare(server=host).cast(context, "reboot_instance", server_id=server_id)

    async def terminate_instance(self, context: RequestContext, host: str, server_id: str) -> None:
        """Cast: stop and remove the server on ``host``."""
        await self.client.prepare(server=host).cast(
            context, "terminate_instance", server_id=server_id
        )

    async def attach_volume(
        self, context: RequestContext, host: str, server_id: str, volume_id: str
    ) -> None:
        """Attach a volume to the server on ``host``; raises InvalidVolumeState, NotFound."""
        await self.client.prepare(server=host).call(
            context, "attach_volume", server_id=server_id, volume_id=volume_id
        )

    async def detach_volume(
        self, context: RequestContext, host: str, server_id: str, volume_id: str
    ) -> None:
        """Detach a volume from the server on ``host``."""
        await self.client.prepare(server=host).call(
            context, "detach_volume", server_id=server_id, volume_id=volume_id
        )

    async def get_console_output(self, context: RequestContext, host: str, server_id: str) -> str:
        """Return the end of the server's console (1.1)."""
        if not self.client.can_send_version("1.1"):
            raise ServiceUnavailable(
                f"compute services are capped at version {self.client.version_cap}; "
                "console output needs 1.1"
            )
        client = self.client.prepare(server=host, version="1.1")
        output: str = await client.call(context, "get_console_output", server_id=server_id)
        return output
