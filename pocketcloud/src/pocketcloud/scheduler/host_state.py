"""HostState: what the scheduler knows of one compute host when it chooses.

Built fresh for each choice from three sources, none of which the scheduler's filters change:
the compute host's own report (``compute_nodes``, written by the compute service), its service
record in steward's registry (enabled, up) and the scheduler's own allocations (what it has
already promised on that host, reported or not yet).
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from pocketcloud.compute.tables import compute_nodes
from pocketcloud.rpc import binary_of
from pocketcloud.scheduler.tables import allocations
from steward.db import Database
from steward.registry import Registry

__all__ = ["HostState", "load_host_states"]


@dataclasses.dataclass(frozen=True, slots=True)
class HostState:
    """One compute host as the filters and weighers see it."""

    host: str
    availability_zone: str
    memory_mb: int
    disk_gb: int
    allocated_ram_mb: int
    allocated_disk_gb: int
    enabled: bool
    up: bool
    disabled_reason: str | None = None

    @property
    def free_ram_mb(self) -> int:
        """RAM not yet promised to a server."""
        return self.memory_mb - self.allocated_ram_mb

    @property
    def free_disk_gb(self) -> int:
        """Disk not yet promised to a server."""
        return self.disk_gb - self.allocated_disk_gb


async def load_host_states(db: Database, registry: Registry) -> list[HostState]:
    """Return every compute host that has reported its resources, sorted by name."""
    used = sa.select(
        allocations.c.host,
        sa.func.sum(allocations.c.ram_mb).label("ram_mb"),
        sa.func.sum(allocations.c.disk_gb).label("disk_gb"),
    ).group_by(allocations.c.host)
    async with db.session() as session:
        nodes = (await session.execute(sa.select(compute_nodes))).mappings().all()
        claimed = {row.host: (row.ram_mb, row.disk_gb) for row in await session.execute(used)}
    services = {
        status.record.host: status
        for status in await registry.list_services(binary=binary_of("compute"))
    }
    states = []
    for node in nodes:
        status = services.get(node["host"])
        ram, disk = claimed.get(node["host"], (0, 0))
        states.append(
            HostState(
                host=node["host"],
                availability_zone=node["availability_zone"],
                memory_mb=node["memory_mb"],
                disk_gb=node["disk_gb"],
                allocated_ram_mb=int(ram or 0),
                allocated_disk_gb=int(disk or 0),
                enabled=status is not None and not status.record.disabled,
                up=status is not None and status.up,
                disabled_reason=status.record.disabled_reason if status is not None else None,
            )
        )
    return sorted(states, key=lambda state: state.host)
