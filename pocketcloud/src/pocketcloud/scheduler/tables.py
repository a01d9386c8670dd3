"""The scheduler's table: allocations, the resources it claimed on a host for each server.

Only :class:`~pocketcloud.scheduler.manager.SchedulerManager` writes it: a claim when it chooses a
host, a release when the compute host reports the server gone or its build failed.
"""

from __future__ import annotations

import sqlalchemy as sa

from pocketcloud.database import metadata

__all__ = ["allocations"]

allocations = sa.Table(
    "allocations",
    metadata,
    sa.Column("server_id", sa.String(36), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False, index=True),
    sa.Column("ram_mb", sa.Integer, nullable=False),
    sa.Column("disk_gb", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)
