"""The network service's tables: networks and the fixed IPs allocated from them.

Only the network managers (:mod:`pocketcloud.network.manager`) write them. A fixed IP is a row
while it is allocated and is deleted when released, so a free address is one without a row.

What must be unique is unique in the database itself (migration 0002), whatever a writer checked
first: a VLAN, the bridge of a VLAN network (flat networks share theirs, and have no VLAN), an
address and a server within a network. That CIDRs do not overlap is checked under a lock
(:func:`pocketcloud.database.serialized_session`) and, on PostgreSQL, enforced by the exclusion
constraint ``excl_networks0cidr`` that migration 0002 adds (SQLite has no such constraint; the
metadata here leaves it out, and Alembic's comparison ignores it).
"""

from __future__ import annotations

import sqlalchemy as sa

from pocketcloud.database import metadata

__all__ = ["fixed_ips", "networks"]

networks = sa.Table(
    "networks",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("cidr", sa.String(64), nullable=False),
    sa.Column("gateway", sa.String(64), nullable=False),
    sa.Column("bridge", sa.String(15), nullable=False),
    sa.Column("vlan", sa.Integer, nullable=True),
    sa.Column("manager", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("project_id", sa.String(255), nullable=True, index=True),  # None: shared by all
    sa.Index("uniq_networks0vlan", "vlan", unique=True),
    sa.Index(
        "uniq_networks0bridge",
        "bridge",
        unique=True,
        sqlite_where=sa.text("vlan IS NOT NULL"),
        postgresql_where=sa.text("vlan IS NOT NULL"),
    ),
)

fixed_ips = sa.Table(
    "fixed_ips",
    metadata,
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
