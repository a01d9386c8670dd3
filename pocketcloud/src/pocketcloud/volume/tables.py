"""The volume service's table: volumes, and which server each is attached to.

Only :class:`~pocketcloud.volume.manager.VolumeManager` writes it.
"""

from __future__ import annotations

import sqlalchemy as sa

from pocketcloud.database import metadata

__all__ = ["volumes"]

volumes = sa.Table(
    "volumes",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("size_gb", sa.Integer, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("server_id", sa.String(36), nullable=True),
    sa.Column("attached_host", sa.String(255), nullable=True),
    sa.Column("attached_at", sa.DateTime, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("deleted_at", sa.DateTime, nullable=True),
    sa.Column("project_id", sa.String(255), nullable=True, index=True),
)
