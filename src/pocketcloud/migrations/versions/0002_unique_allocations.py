"""Unique VLANs and VLAN bridges: two networks can no longer share one, whoever writes them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

Before this revision concurrent creations could store two networks on one VLAN. Such a database
cannot take the unique indexes: the upgrade stops and names the networks, so an operator removes
the duplicates (and the servers on them) first, rather than the upgrade choosing which to keep.
Fixed IPs were unique per network and per server already (0001).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_VLAN_NETWORK = sa.text("vlan IS NOT NULL")


def upgrade() -> None:
    """Refuse a database holding duplicates, then add the unique indexes."""
    _refuse_duplicates("vlan")
    _refuse_duplicates("bridge")
    op.create_index("uniq_networks0vlan", "networks", ["vlan"], unique=True)
    op.create_index(
        "uniq_networks0bridge",
        "networks",
        ["bridge"],
        unique=True,
        sqlite_where=_VLAN_NETWORK,
        postgresql_where=_VLAN_NETWORK,
    )


def _refuse_duplicates(column: str) -> None:
    """Raise, naming them, if two VLAN networks share ``column``'s value."""
    networks = sa.table(
        "networks", sa.column("name"), sa.column("cidr"), sa.column("vlan"), sa.column("bridge")
    )
    value = networks.c[column]
    shared = (
        sa.select(value)
        .where(networks.c.vlan.is_not(None))
        .group_by(value)
        .having(sa.func.count() > 1)
    )
    rows = (
        op.get_bind()
        .execute(
            sa.select(value, networks.c.name, networks.c.cidr)
            .where(value.in_(shared), networks.c.vlan.is_not(None))
            .order_by(value, networks.c.name)
        )
        .all()
    )
    if rows:
        listed = "; ".join(f"{column} {row[0]}: network {row[1]!r} ({row[2]})" for row in rows)
        raise RuntimeError(
            f"pocketcloud's schema 0002 makes each network's {column} unique, but these networks "
            f"share one: {listed}. Remove all but one of each (and their servers' addresses), "
            "then run `pocketcloud db upgrade` again"
        )


def downgrade() -> None:
    """Drop the unique indexes."""
    op.drop_index("uniq_networks0bridge", table_name="networks")
    op.drop_index("uniq_networks0vlan", table_name="networks")
