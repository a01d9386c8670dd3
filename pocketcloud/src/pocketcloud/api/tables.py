"""The api service's table: servers, the user's record of each server asked for.

Only :class:`~pocketcloud.api.manager.ApiManager` writes it; other services report changes to it
over RPC (``update_server``, ``server_deleted``).
"""

from __future__ import annotations

import sqlalchemy as sa

from pocketcloud.database import metadata

__all__ = ["servers"]

servers = sa.Table(
    "servers",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("host", sa.String(255), nullable=True),
    sa.Column("ram_mb", sa.Integer, nullable=False),
    sa.Column("disk_gb", sa.Integer, nullable=False),
    sa.Column("availability_zone", sa.String(255), nullable=True),
    sa.Column("network_id", sa.String(36), nullable=True),
    sa.Column("address", sa.String(64), nullable=True),
    sa.Column("power_state", sa.String(16), nullable=False),
    sa.Column("fault", sa.Text, nullable=True),
    sa.Column("fault_at", sa.DateTime, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("launched_at", sa.DateTime, nullable=True),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("deleted_at", sa.DateTime, nullable=True),
    sa.Column("project_id", sa.String(255), nullable=True, index=True),
)
