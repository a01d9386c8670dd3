"""pocketcloud's first schema: servers, instances, compute nodes, allocations, volumes, networks.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every manager's tables."""
    op.create_table(
        "servers",
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
    )
    op.create_table(
        "instances",
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
    op.create_table(
        "compute_nodes",
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
    op.create_table(
        "instance_volumes",
        sa.Column("server_id", sa.String(36), primary_key=True),
        sa.Column("volume_id", sa.String(36), primary_key=True),
        sa.Column("volume_host", sa.String(255), nullable=False),
        sa.Column("connection_info", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "allocations",
        sa.Column("server_id", sa.String(36), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False, index=True),
        sa.Column("ram_mb", sa.Integer, nullable=False),
        sa.Column("disk_gb", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "volumes",
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
    )
    op.create_table(
        "networks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("gateway", sa.String(64), nullable=False),
        sa.Column("bridge", sa.String(15), nullable=False),
        sa.Column("vlan", sa.Integer, nullable=True),
        sa.Column("manager", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "fixed_ips",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("network_id", sa.String(36), sa.ForeignKey("networks.id"), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("server_id", sa.String(36), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("mac", sa.String(17), nullable=False),
        sa.Column("allocated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("network_id", "address", name="uniq_fixed_ips0network_id0address"),
        sa.UniqueConstraint("network_id", "server_id", name="uniq_fixed_ips0network_id0server_id"),
    )


def downgrade() -> None:
    """Drop every pocketcloud table."""
    for table in (
        "fixed_ips",
        "networks",
        "volumes",
        "allocations",
        "instance_volumes",
        "compute_nodes",
        "instances",
        "servers",
    ):
        op.drop_table(table)
