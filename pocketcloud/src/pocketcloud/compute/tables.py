"""The compute service's tables: its instances, its hosts' resources, attached volumes.

Only :class:`~pocketcloud.compute.manager.ComputeManager` writes them. The scheduler reads
``compute_nodes`` (as nova's scheduler reads its compute nodes) and never writes it.
"""

from __future__ import annotations

import sqlalchemy as sa

from pocketcloud.database import metadata

__all__ = ["compute_nodes", "instance_volumes", "instances"]

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("server_id", sa.String(36), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("ram_mb", sa.Integer, nullable=False),
    sa.Column("disk_gb", sa.Integer, nullable=False),
    sa.Column("power_state", sa.String(16), nullable=False),
    sa.Column("network_info", sa.JSON, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

compute_nodes = sa.Table(
    "compute_nodes",
    metadata,
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("availability_zone", sa.String(255), nullable=False),
    sa.Column("hypervisor_type", sa.String(64), nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("memory_mb_used", sa.Integer, nullable=False),
    sa.Column("disk_gb", sa.Integer, nullable=False),
    sa.Column("disk_gb_used", sa.Integer, nullable=False),
    sa.Column("running_vms", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

instance_volumes = sa.Table(
    "instance_volumes",
    metadata,
    sa.Column("server_id", sa.String(36), primary_key=True),
    sa.Column("volume_id", sa.String(36), primary_key=True),
    sa.Column("volume_host", sa.String(255), nullable=False),
    sa.Column("connection_info", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)
