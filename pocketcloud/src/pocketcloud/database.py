"""pocketcloud's schema: one metadata for every manager's tables, and its migration tree.

Each manager owns its tables, declared in its package (``pocketcloud/compute/tables.py``...) on
the one :data:`metadata` here, and is the only code that writes them: *smart managers, dumb data*.
The tables live in the same database as steward's registry; pocketcloud's Alembic tree
(``pocketcloud/migrations``) records its revision in its own version table,
``pocketcloud_alembic_version``, so the two schemas upgrade independently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from steward.db import STEWARD_MIGRATIONS, Database, Migrations

__all__ = ["MIGRATIONS", "ensure_schemas", "metadata", "serialized_session", "upsert"]

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


@contextlib.asynccontextmanager
async def serialized_session(db: Database, name: str) -> AsyncIterator[AsyncSession]:
    """Yield a session whose transaction runs alone among those serialized on ``name``.

    For a check-then-insert (is this CIDR free? then insert it) that must not interleave with
    another one, in this process or any other on the same database. The lock is the database's,
    taken before the transaction's first read and held until it commits or rolls back:

    * PostgreSQL: a transaction-scoped advisory lock keyed by ``name``
      (``pg_advisory_xact_lock``), so transactions on other names go on in parallel;
    * SQLite: ``BEGIN IMMEDIATE``, the database's write lock (a SQLite file has one writer at a
      time anyway; readers go on), waited for up to the driver's busy timeout.

    Inside, do only this database's reads and writes: no RPC, no driver work, nothing slow.
    """
    async with db.session() as session:
        if db.dialect == "postgresql":
            await session.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(name)}
            )
        elif db.dialect == "sqlite":
            # pysqlite opens its transaction lazily, at the first write: open it now, taking the
            # write lock before the reads the decision rests on.
            await session.execute(sa.text("BEGIN IMMEDIATE"))
        else:
            raise RuntimeError(
                f"pocketcloud supports SQLite and PostgreSQL, not {db.dialect}: "
                f"it cannot serialize {name!r} there"
            )
        yield session


def _lock_key(name: str) -> int:
    """Return a stable signed 64-bit advisory-lock key for ``name`` (same in every process)."""
    digest = hashlib.blake2b(f"pocketcloud:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def upsert(
    db: Database, table: sa.Table, values: Mapping[str, object], *, keys: Sequence[str]
) -> sa.Insert:
    """Return an insert of ``values`` that updates the row instead when ``keys`` already exist.

    One statement (``INSERT ... ON CONFLICT (keys) DO UPDATE``), where an update that found no
    row followed by an insert lets two writers both insert, and one fail on the primary key.
    """
    statement: postgresql.Insert | sqlite.Insert
    if db.dialect == "postgresql":
        statement = postgresql.insert(table).values(**values)
    else:
        statement = sqlite.insert(table).values(**values)
    changes = {name: statement.excluded[name] for name in values if name not in keys}
    return statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
