"""Client side of the volume service's RPC API (nova's ``volume/rpcapi.py`` of its day).

API version history:

* 1.0 - create_volume, list_volumes, get_volume, delete_volume, attach_volume, detach_volume

Reads and creation go to any volume host; what changes one volume goes to the host that holds it
(``volume.<host>``), which the caller knows from the volume's record.
"""

from __future__ import annotations

from pocketcloud.objects import ConnectionInfo, VolumeRecord
from pocketcloud.rpc import make_client
from steward.context import RequestContext
from steward.rpc import Transport

__all__ = ["VolumeAPI"]


class VolumeAPI:
    """Asks the volume service. ``version_cap``: the newest version its oldest host speaks."""

    VERSION = "1.0"

    def __init__(
        self, transport: Transport, *, version_cap: str | None = None, timeout: float | None = None
    ) -> None:
        self.client = make_client(
            transport, "volume", "1.0", version_cap=version_cap, timeout=timeout
        )

    async def create_volume(self, context: RequestContext, name: str, size_gb: int) -> VolumeRecord:
        """Create a volume on some volume host; raises InvalidInput."""
        result = await self.client.call(context, "create_volume", name=name, size_gb=size_gb)
        return VolumeRecord.model_validate(result)

    async def list_volumes(self, context: RequestContext) -> list[VolumeRecord]:
        """Return every volume."""
        result = await self.client.call(context, "list_volumes")
        return [VolumeRecord.model_validate(item) for item in result]

    async def get_volume(self, context: RequestContext, volume_id: str) -> VolumeRecord:
        """Return one volume; raises VolumeNotFound."""
        result = await self.client.call(context, "get_volume", volume_id=volume_id)
        return VolumeRecord.model_validate(result)

    async def delete_volume(self, context: RequestContext, volume: VolumeRecord) -> None:
        """Delete ``volume`` on its host; raises InvalidVolumeState if it is attached."""
        client = self.client.prepare(server=volume.host)
        await client.call(context, "delete_volume", volume_id=volume.id)

    async def attach_volume(
        self, context: RequestContext, volume: VolumeRecord, server_id: str, host: str
    ) -> ConnectionInfo:
        """Attach ``volume`` to a server on compute ``host``; return how to reach it."""
        client = self.client.prepare(server=volume.host)
        result = await client.call(
            context, "attach_volume", volume_id=volume.id, server_id=server_id, host=host
        )
        return ConnectionInfo.model_validate(result)

    async def detach_volume(
        self, context: RequestContext, volume: VolumeRecord, server_id: str
    ) -> None:
        """Detach ``volume`` from a server, on the volume's host."""
        client = self.client.prepare(server=volume.host)
        await client.call(context, "detach_volume", volume_id=volume.id, server_id=server_id)
