"""pocketcloud's schema: one metadata for every manager's tables, and its migration tree.

Each manager owns its tables, declared in its package (``pocketcloud/compute/tables.py``...) on
the one :data:`metadata` here, and is the only code that writes them: *smart managers, dumb data*.
The tables live in the same database as steward's registry; pocketcloud's Alembic tree
(``pocketcloud/migrations``) records its revision in its own version table,
``pocketcloud_alembic_version``, so the two schemas upgrade independently.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from steward.db import STEWARD_MIGRATIONS, Database, Migrations

__all__ = ["MIGRATIONS", "ensure_schemas", "metadata"]

metadata = sa.MetaData()
"""Every pocketcloud table; ``pocketcloud/migrations`` creates them."""

MIGRATIONS = Migrations(
    "pocketcloud:migrations",
    version_table="pocketcloud_alembic_version",
    upgrade_command="pocketcloud db upgrade",
)
"""pocketcloud's migration tree, beside steward's in the same database."""

_STEWARD_TREE = dataclasses.replace(STEWARD_MIGRATIONS, upgrade_command="pocketcloud db upgrade")
# steward's registry tree, whose upgrade a pocketcloud operator also runs with `pocketcloud db
# upgrade` (which upgrades both).


async def ensure_schemas(db: Database, *, upgrade: bool | None = None) -> None:
    """Bring steward's registry schema, then pocketcloud's, up to date (see ``ensure_schema``).

    ``upgrade`` None upgrades the embedded SQLite database by itself and asks an operator to
    upgrade any other one.
    """
    await db.ensure_schema(upgrade=upgrade, migrations=_STEWARD_TREE)
    await db.ensure_schema(upgrade=upgrade, migrations=MIGRATIONS)
