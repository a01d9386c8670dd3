"""Every pocketcloud table in one place: importing this module fills :data:`metadata`.

Each table belongs to one manager (see its ``tables`` module); this module only gathers them for
the migrations and the tests.
"""

from __future__ import annotations

from pocketcloud.api.tables import servers
from pocketcloud.compute.tables import compute_nodes, instance_volumes, instances
from pocketcloud.database import metadata
from pocketcloud.network.tables import fixed_ips, networks
from pocketcloud.scheduler.tables import allocations
from pocketcloud.volume.tables import volumes

__all__ = [
    "allocations",
    "compute_nodes",
    "fixed_ips",
    "instance_volumes",
    "instances",
    "metadata",
    "networks",
    "servers",
    "volumes",
]
