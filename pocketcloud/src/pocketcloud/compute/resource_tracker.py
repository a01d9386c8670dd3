"""ResourceTracker: keeps this compute host's row in ``compute_nodes`` true (nova's name).

The row says what the host offers (from the driver, or the settings) and what its instances use
(from the compute service's own ``instances`` table). The scheduler reads it to choose hosts; only
the compute service writes it.
"""

from __future__ import annotations

import sqlalchemy as sa

from pocketcloud.compute.driver import ComputeDriver
from pocketcloud.compute.tables import compute_nodes, instances
from pocketcloud.database import upsert
from steward.db import Database, utcnow

__all__ = ["ResourceTracker"]


class ResourceTracker:
    """Writes host ``host``'s resources, in availability zone ``availability_zone``."""

    def __init__(self, db: Database, host: str, *, availability_zone: str) -> None:
        self.db = db
        self.host = host
        self.availability_zone = availability_zone

    async def update(self, driver: ComputeDriver) -> None:
        """Write what the host offers (``driver``) and what its instances use now."""
        resources = driver.get_available_resource()
        usage = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(instances.c.ram_mb), 0),
            sa.func.coalesce(sa.func.sum(instances.c.disk_gb), 0),
        ).where(instances.c.host == self.host)
        values: dict[str, object] = {
            "availability_zone": self.availability_zone,
            "hypervisor_type": resources.hypervisor_type,
            "memory_mb": resources.memory_mb,
            "disk_gb": resources.disk_gb,
            "updated_at": utcnow(),
        }
        async with self.db.session() as session:
            count, ram, disk = (await session.execute(usage)).one()
            values |= {"running_vms": count, "memory_mb_used": ram, "disk_gb_used": disk}
            # One statement: an update that finds no row, then an insert, lets two first
            # reports both insert (the periodic one and a build's, or a restarted service's).
            await session.execute(
                upsert(self.db, compute_nodes, {"host": self.host, **values}, keys=["host"])
            )
