"""A service that stopped gracefully says so: services.stopped_at.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add services.stopped_at (null while the service runs or has never stopped cleanly)."""
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("stopped_at", sa.DateTime, nullable=True))


def downgrade() -> None:
    """Drop services.stopped_at."""
    with op.batch_alter_table("services") as batch:
        batch.drop_column("stopped_at")
