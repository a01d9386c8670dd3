from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pocketcloud.database import MIGRATIONS, ensure_schemas
from pocketcloud.tables import metadata
from steward.db import Database
from steward.errors import SchemaOutOfDate


async def test_both_schemas_live_in_one_database_with_their_own_version_tables(
    database_url: str,
) -> None:
    async with Database(database_url) as db:
        await ensure_schemas(db, upgrade=True)
        assert await db.current_revision() == Database.head_revision()
        assert await db.current_revision(migrations=MIGRATIONS) == "0003"
        async with db.engine.connect() as connection:
            tables = set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))
    assert {"alembic_version", "services", "service_leases"} <= tables
    assert {"pocketcloud_alembic_version", *metadata.tables} <= tables


async def test_the_migrations_create_exactly_the_tables_the_managers_declare(
    database_url: str,
) -> None:
    def differences(connection: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, parents: (
                    kind != "table" or name in metadata.tables
                ),
            },
        )
        return list(compare_metadata(context, metadata))

    async with Database(database_url) as db:
        await ensure_schemas(db, upgrade=True)
        async with db.engine.connect() as connection:
            assert await connection.run_sync(differences) == []


async def test_a_shared_database_behind_asks_for_pocketcloud_db_upgrade(
    database_url: str,
) -> None:
    async with Database(database_url) as db:
        await db.ensure_schema(upgrade=True)
        with pytest.raises(SchemaOutOfDate, match="run `pocketcloud db upgrade`"):
            await ensure_schemas(db, upgrade=False)


async def test_an_empty_database_asks_for_pocketcloud_db_upgrade_not_steward_s(
    postgres_url: str,
) -> None:
    # steward's registry schema is checked first; pocketcloud's command upgrades it too.
    async with Database(postgres_url) as db:
        with pytest.raises(
            SchemaOutOfDate, match=r"steward:migrations .* run `pocketcloud db upgrade`"
        ):
            await ensure_schemas(db)


def test_the_migration_tree_ships_in_the_package() -> None:
    import pocketcloud

    tree = Path(pocketcloud.__file__).parent / "migrations"
    assert (tree / "env.py").is_file()
    assert Database.head_revision(MIGRATIONS) == "0003"
