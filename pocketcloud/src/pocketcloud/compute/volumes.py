"""VolumeAttachments: the compute side of attaching volumes (nova's block device mappings).

Attaching asks the volume's own host to attach it (which records who holds it and returns the
connection info), gives the connection to the compute driver, and records the attachment in the
compute service's ``instance_volumes`` table, so deleting a server detaches what it holds.
"""

from __future__ import annotations

import sqlalchemy as sa

from pocketcloud.compute.driver import ComputeDriver, Instance
from pocketcloud.compute.tables import instance_volumes
from pocketcloud.errors import InvalidVolumeState
from pocketcloud.volume.rpcapi import VolumeAPI
from steward.context import RequestContext
from steward.db import Database, utcnow

__all__ = ["VolumeAttachments"]


class VolumeAttachments:
    """Attaches and detaches volumes for the instances of compute host ``host``."""

    def __init__(self, db: Database, host: str, volume_api: VolumeAPI) -> None:
        self.db = db
        self.host = host
        self.volume_api = volume_api

    async def attach(
        self, context: RequestContext, driver: ComputeDriver, instance: Instance, volume_id: str
    ) -> None:
        """Attach volume ``volume_id``; raises VolumeNotFound or InvalidVolumeState."""
        volume = await self.volume_api.get_volume(context, volume_id)
        connection = await self.volume_api.attach_volume(
            context, volume, instance.server_id, self.host
        )
        try:
            await driver.attach_volume(instance, connection)
        except Exception:
            await self.volume_api.detach_volume(context, volume, instance.server_id)
            raise
        async with self.db.session() as session:
            await session.execute(self._delete(instance.server_id, volume_id))
            await session.execute(
                sa.insert(instance_volumes).values(
                    server_id=instance.server_id,
                    volume_id=volume_id,
                    volume_host=volume.host,
                    connection_info=connection.model_dump(mode="json"),
                    created_at=utcnow(),
                )
            )

    async def detach(
        self, context: RequestContext, driver: ComputeDriver, instance: Instance, volume_id: str
    ) -> None:
        """Detach volume ``volume_id``; raises InvalidVolumeState if the instance lacks it."""
        volume = await self.volume_api.get_volume(context, volume_id)
        if volume.server_id != instance.server_id:
            raise InvalidVolumeState(
                f"volume {volume_id} is not attached to server {instance.server_id}"
            )
        await driver.detach_volume(instance, volume_id)
        await self.volume_api.detach_volume(context, volume, instance.server_id)
        async with self.db.session() as session:
            await session.execute(self._delete(instance.server_id, volume_id))

    async def detach_all(
        self, context: RequestContext, driver: ComputeDriver, instance: Instance
    ) -> None:
        """Detach every volume the instance holds (before it is deleted)."""
        query = sa.select(instance_volumes.c.volume_id).where(
            instance_volumes.c.server_id == instance.server_id
        )
        async with self.db.session() as session:
            volume_ids = list((await session.execute(query)).scalars())
        for volume_id in volume_ids:
            await self.detach(context, driver, instance, volume_id)

    async def forget(self, server_id: str) -> None:
        """Drop every attachment record of ``server_id``."""
        async with self.db.session() as session:
            await session.execute(
                sa.delete(instance_volumes).where(instance_volumes.c.server_id == server_id)
            )

    @staticmethod
    def _delete(server_id: str, volume_id: str) -> sa.Delete:
        return sa.delete(instance_volumes).where(
            instance_volumes.c.server_id == server_id, instance_volumes.c.volume_id == volume_id
        )
