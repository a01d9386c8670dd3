"""Networks that cannot collide, whoever writes them: unique VLANs, bridges, CIDRs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

Unique VLANs and VLAN bridges everywhere, and on PostgreSQL no two overlapping CIDRs (an exclusion
constraint; SQLite has none, and pocketcloud serializes creations there instead).

Before this revision concurrent creations could store two networks on one VLAN or range. Such a
database cannot take the constraints: the upgrade stops and names the networks, so an operator
removes the duplicates (and the servers on them) first, rather than the upgrade choosing which to
keep. Fixed IPs were unique per network and per server already (0001).
"""

from __future__ import annotations

import ipaddress
import itertools

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_VLAN_NETWORK = sa.text("vlan IS NOT NULL")

_NETWORKS = sa.table(
    "networks", sa.column("name"), sa.column("cidr"), sa.column("vlan"), sa.column("bridge")
)


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
    if op.get_bind().dialect.name == "postgresql":
        _refuse_overlaps()
        # cidr && cidr: the ranges overlap (GiST's inet_ops, built into PostgreSQL).
        op.execute(
            "ALTER TABLE networks ADD CONSTRAINT excl_networks0cidr "
            "EXCLUDE USING gist ((cidr::cidr) inet_ops WITH &&)"
        )


def _refuse_overlaps() -> None:
    """Raise, naming them, if two networks' CIDRs overlap."""
    query = sa.select(_NETWORKS.c.name, _NETWORKS.c.cidr).order_by(_NETWORKS.c.name)
    rows = op.get_bind().execute(query).all()
    pairs = [
        f"network {first.name!r} ({first.cidr}) and {second.name!r} ({second.cidr})"
        for first, second in itertools.combinations(rows, 2)
        if ipaddress.ip_network(first.cidr).overlaps(ipaddress.ip_network(second.cidr))
    ]
    if pairs:
        raise RuntimeError(
            "pocketcloud's schema 0002 keeps networks' CIDRs from overlapping, but these overlap: "
            f"{'; '.join(pairs)}. Remove all but one of each (and their servers' addresses), "
            "then run `pocketcloud db upgrade` again"
        )


def _refuse_duplicates(column: str) -> None:
    """Raise, naming them, if two VLAN networks share ``column``'s value."""
    networks = _NETWORKS
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
    """Drop the constraints."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE networks DROP CONSTRAINT excl_networks0cidr")
    op.drop_index("uniq_networks0bridge", table_name="networks")
    op.drop_index("uniq_networks0vlan", table_name="networks")
