"""Resources belong to a project: servers, volumes and networks get ``project_id``.

The REST API scopes every resource to the project of the request's token; rows made before (or
with no token configured) have none, and only an admin sees them (a network with none is shared).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLES = ("servers", "volumes", "networks")


def upgrade() -> None:
    """Add a nullable ``project_id`` to each table, indexed for a project's listings."""
    for table in _TABLES:
        op.add_column(table, sa.Column("project_id", sa.String(255), nullable=True))
        op.create_index(f"ix_{table}_project_id", table, ["project_id"])


def downgrade() -> None:
    """Drop the column and its index again."""
    for table in _TABLES:
        op.drop_index(f"ix_{table}_project_id", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("project_id")
