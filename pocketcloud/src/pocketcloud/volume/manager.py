"""VolumeManager: owns volumes, their storage and their attachments.

A volume lives on the volume host that created it (``host``); deleting it, attaching and detaching
it go to that host (``volume.<host>``), while any volume host answers reads, since they share the
table. Attaching records which server holds the volume and hands the compute host the driver's
connection info; detaching makes it available again. A periodic audit measures what each volume
really uses and sends a ``volume.usage`` notification per volume.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import typing
import uuid

import sqlalchemy as sa

import steward
from pocketcloud.errors import InvalidInput, InvalidVolumeState, VolumeNotFound
from pocketcloud.manager import CloudManager, ManagerOptions
from pocketcloud.objects import ConnectionInfo, VolumeRecord, VolumeStatus, wire
from pocketcloud.volume.driver import VolumeDriver
from pocketcloud.volume.tables import volumes
from steward.context import RequestContext
from steward.db import utcnow
from steward.rpc import Target

__all__ = ["AUDIT_INTERVAL", "UsageAudit", "VolumeManager"]

LOG = logging.getLogger(__name__)

AUDIT_INTERVAL = 300.0
"""Seconds between two usage audits."""

_COLUMNS = tuple(VolumeRecord.model_fields)


@dataclasses.dataclass(frozen=True, slots=True)
class UsageAudit:
    """What the last usage audit found on this host."""

    volumes: int
    allocated_gb: int
    used_bytes: int


class VolumeManager(CloudManager):
    """Owns the ``volumes`` table and the storage behind it, through the volume driver."""

    target = Target(version="1.0")

    def __init__(self, host: str | None = None, **options: typing.Unpack[ManagerOptions]) -> None:
        super().__init__(host, service_name="volume", **options)
        self.driver: VolumeDriver | None = None
        self.last_audit: UsageAudit | None = None

    async def init_host(self, service_ref: object | None) -> None:
        """Load the volume driver named by the ``volume_driver`` setting."""
        self.driver = steward.load_driver(
            "volume",
            self.cloud_settings.volume_driver,
            VolumeDriver,
            host=self.host,
            data_dir=self.cloud_settings.data_dir,
        )

    def _require_driver(self) -> VolumeDriver:
        if self.driver is None:
            raise RuntimeError("VolumeManager.init_host() has not run")
        return self.driver

    async def create_volume(
        self, context: RequestContext, name: str, size_gb: int
    ) -> dict[str, typing.Any]:
        """Create a volume of ``size_gb`` GiB on this host; return its record."""
        limit = self.cloud_settings.volume_max_size_gb
        if not 1 <= size_gb <= limit:
            raise InvalidInput(f"`size_gb` must be between 1 and {limit}, got {size_gb}")
        volume_id = str(uuid.uuid4())
        await self._require_driver().create_volume(volume_id, size_gb)
        now = utcnow()
        async with self.db.session() as session:
            await session.execute(
                sa.insert(volumes).values(
                    id=volume_id,
                    name=name,
                    size_gb=size_gb,
                    host=self.host,
                    status=VolumeStatus.AVAILABLE,
                    project_id=context.project_id,
                    created_at=now,
                    updated_at=now,
                )
            )
        LOG.info("Created volume %s (%s, %d GiB)", volume_id, name, size_gb)
        self.notifier.info(
            context, "volume.create.end", {"volume_id": volume_id, "size_gb": size_gb}
        )
        return wire(await self._volume(volume_id))

    async def list_volumes(self, context: RequestContext) -> list[dict[str, typing.Any]]:
        """Return every volume (of every volume host), oldest first."""
        query = (
            sa.select(*(volumes.c[name] for name in _COLUMNS))
            .where(volumes.c.deleted == sa.false())
            .order_by(volumes.c.created_at, volumes.c.id)
        )
        async with self.db.session() as session:
            rows = (await session.execute(query)).mappings().all()
        return [wire(VolumeRecord.model_validate(dict(row))) for row in rows]

    async def get_volume(self, context: RequestContext, volume_id: str) -> dict[str, typing.Any]:
        """Return volume ``volume_id``; raises :class:`VolumeNotFound`."""
        return wire(await self._volume(volume_id))

    async def _volume(self, volume_id: str) -> VolumeRecord:
        query = sa.select(*(volumes.c[name] for name in _COLUMNS)).where(
            volumes.c.id == volume_id, volumes.c.deleted == sa.false()
        )
        async with self.db.session() as session:
            row = (await session.execute(query)).mappings().first()
        if row is None:
            raise VolumeNotFound(f"volume {volume_id!r} does not exist")
        return VolumeRecord.model_validate(dict(row))

    async def _set(
        self,
        volume_id: str,
        *,
        expected: VolumeStatus,
        attached_to: str | None = None,
        **values: object,
    ) -> bool:
        """Update the volume if its status is still ``expected``; return whether it was.

        A compare-and-swap in one statement: of two callers expecting the same state, one wins.
        ``attached_to`` also requires the volume to be attached to that server still.
        """
        statement = (
            sa.update(volumes)
            .where(
                volumes.c.id == volume_id,
                volumes.c.deleted == sa.false(),
                volumes.c.status == expected,
                *(() if attached_to is None else (volumes.c.server_id == attached_to,)),
            )
            .values(**values, updated_at=utcnow())
        )
        async with self.db.session() as session:
            result = await session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def delete_volume(self, context: RequestContext, volume_id: str) -> None:
        """Delete an available volume and its storage; raises :class:`InvalidVolumeState`."""
        volume = await self._volume(volume_id)
        if volume.status != VolumeStatus.AVAILABLE:
            raise InvalidVolumeState(
                f"volume {volume_id} is {volume.status}; detach it from server "
                f"{volume.server_id} before deleting it"
            )
        deleted = await self._set(
            volume_id, expected=VolumeStatus.AVAILABLE, deleted=True, deleted_at=utcnow()
        )
        if not deleted:
            raise InvalidVolumeState(f"volume {volume_id} changed state while being deleted")
        await self._require_driver().delete_volume(volume_id)
        LOG.info("Deleted volume %s", volume_id)
        self.notifier.info(context, "volume.delete.end", {"volume_id": volume_id})

    async def attach_volume(
        self, context: RequestContext, volume_id: str, server_id: str, host: str
    ) -> dict[str, typing.Any]:
        """Attach the volume to server ``server_id`` on compute ``host``; return the connection.

        Attaching again to the same server returns the same connection; a volume attached to
        another server raises :class:`InvalidVolumeState`.
        """
        volume = await self._volume(volume_id)
        driver = self._require_driver()
        if volume.status == VolumeStatus.IN_USE and volume.server_id == server_id:
            data = await driver.initialize_connection(volume_id, host)
            return wire(ConnectionInfo(driver=driver.name, volume_id=volume_id, data=data))
        if volume.status != VolumeStatus.AVAILABLE:
            raise InvalidVolumeState(
                f"volume {volume_id} is {volume.status}"
                + (f" (attached to server {volume.server_id})" if volume.server_id else "")
                + "; only an available volume can be attached"
            )
        # Claim the volume first, then connect it: a loser of the race never touches the
        # connection (on the same compute host, terminating its own would cut the winner's).
        attached = await self._set(
            volume_id,
            expected=VolumeStatus.AVAILABLE,
            status=VolumeStatus.IN_USE,
            server_id=server_id,
            attached_host=host,
            attached_at=utcnow(),
        )
        if not attached:
            raise InvalidVolumeState(
                f"volume {volume_id} was attached to another server meanwhile; "
                "only an available volume can be attached"
            )
        try:
            data = await driver.initialize_connection(volume_id, host)
        except BaseException:
            # Give the claim back, even when cancelled: one short statement.
            await asyncio.shield(self._free(volume_id, server_id))
            raise
        LOG.info("Attached volume %s to server %s on %s", volume_id, server_id, host)
        self.notifier.info(
            context, "volume.attach.end", {"volume_id": volume_id, "server_id": server_id}
        )
        return wire(ConnectionInfo(driver=driver.name, volume_id=volume_id, data=data))

    async def _free(self, volume_id: str, server_id: str) -> None:
        """Make the volume available again, only if ``server_id`` still holds it.

        A stale detach (or a failed attach's undo) must not free another server's attachment.
        """
        await self._set(
            volume_id,
            expected=VolumeStatus.IN_USE,
            attached_to=server_id,
            status=VolumeStatus.AVAILABLE,
            server_id=None,
            attached_host=None,
            attached_at=None,
        )

    async def detach_volume(self, context: RequestContext, volume_id: str, server_id: str) -> None:
        """Detach the volume from ``server_id``; nothing happens if it is not attached to it."""
        volume = await self._volume(volume_id)
        if volume.status != VolumeStatus.IN_USE or volume.server_id != server_id:
            return
        await self._require_driver().terminate_connection(volume_id, volume.attached_host or "")
        await self._free(volume_id, server_id)
        LOG.info("Detached volume %s from server %s", volume_id, server_id)
        self.notifier.info(
            context, "volume.detach.end", {"volume_id": volume_id, "server_id": server_id}
        )

    @steward.periodic_task(spacing=AUDIT_INTERVAL)
    async def audit_usage(self, context: RequestContext) -> None:
        """Measure what each volume of this host uses; notify ``volume.usage`` per volume."""
        query = sa.select(volumes.c.id, volumes.c.size_gb).where(
            volumes.c.host == self.host, volumes.c.deleted == sa.false()
        )
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        driver = self._require_driver()
        used_total = 0
        for volume_id, size_gb in rows:
            used = await driver.get_usage(volume_id)
            used_total += used
            self.notifier.info(
                context,
                "volume.usage",
                {"volume_id": volume_id, "size_gb": size_gb, "used_bytes": used},
            )
        self.last_audit = UsageAudit(
            volumes=len(rows), allocated_gb=sum(size for _, size in rows), used_bytes=used_total
        )
        LOG.info(
            "Usage audit on %s: %d volumes, %d GiB allocated, %d bytes used",
            self.host,
            self.last_audit.volumes,
            self.last_audit.allocated_gb,
            used_total,
        )
