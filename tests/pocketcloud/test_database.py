from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from pocketcloud.database import MIGRATIONS, ensure_schemas
from pocketcloud.network.tables import networks
from pocketcloud.tables import metadata
from steward.db import Database, utcnow
from steward.errors import SchemaOutOfDate


async def test_both_schemas_live_in_one_database_with_their_own_version_tables(
    database_url: str,
) -> None:
    async with Database(database_url) as db:
        await ensure_schemas(db, upgrade=True)
        assert await db.current_revision() == Database.head_revision()
        assert await db.current_revision(migrations=MIGRATIONS) == Database.head_revision(
            MIGRATIONS
        )
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
    assert (tree / "versions" / "0001_initial.py").is_file()
    assert Database.head_revision(MIGRATIONS) >= "0002"


def _network(name: str, cidr: str, vlan: int | None) -> dict[str, object]:
    return {
        "id": name,
        "name": name,
        "cidr": cidr,
        "gateway": cidr.rsplit(".", 1)[0] + ".1",
        "bridge": f"br{vlan}" if vlan is not None else "br100",
        "vlan": vlan,
        "manager": "vlan" if vlan is not None else "flat",
        "created_at": utcnow(),
    }


async def _networks_at_0001(db: Database, *rows: dict[str, object]) -> None:
    """Bring ``db`` to steward's schema and pocketcloud's 0001, holding these network rows."""
    await db.ensure_schema(upgrade=True)
    await db.upgrade("0001", migrations=MIGRATIONS)
    async with db.session() as session:
        for row in rows:
            await session.execute(sa.insert(networks).values(row))


async def test_upgrading_a_0001_database_keeps_its_networks_and_makes_vlans_unique(
    database_url: str,
) -> None:
    async with Database(database_url) as db:
        await _networks_at_0001(
            db,
            _network("a", "10.0.0.0/24", 500),
            _network("f1", "10.1.0.0/24", None),
            _network("f2", "10.1.1.0/24", None),
        )
        await db.upgrade("0002", migrations=MIGRATIONS)
        assert await db.current_revision(migrations=MIGRATIONS) == "0002"
        async with db.session() as session:
            names = (await session.execute(sa.select(networks.c.name))).scalars().all()
        assert sorted(names) == ["a", "f1", "f2"]
        with pytest.raises(IntegrityError):
            async with db.session() as session:
                await session.execute(sa.insert(networks).values(_network("b", "10.2.0.0/24", 500)))


async def test_upgrading_a_database_with_two_networks_on_one_vlan_names_them(
    database_url: str,
) -> None:
    async with Database(database_url) as db:
        await _networks_at_0001(
            db, _network("a", "10.0.0.0/24", 500), _network("b", "10.0.1.0/24", 500)
        )
        with pytest.raises(RuntimeError) as raised:
            await db.upgrade("0002", migrations=MIGRATIONS)
        assert str(raised.value) == (
            "pocketcloud's schema 0002 makes each network's vlan unique, but these networks share "
            "one: vlan 500: network 'a' (10.0.0.0/24); vlan 500: network 'b' (10.0.1.0/24). "
            "Remove all but one of each (and their servers' addresses), then run "
            "`pocketcloud db upgrade` again"
        )
        assert await db.current_revision(migrations=MIGRATIONS) == "0001"


async def test_upgrading_a_postgresql_database_with_overlapping_networks_names_them(
    postgres_url: str,
) -> None:
    async with Database(postgres_url) as db:
        await _networks_at_0001(
            db,
            _network("a", "10.0.0.0/24", None),
            _network("b", "10.0.0.0/16", 200),
            _network("c", "10.1.0.0/24", 300),
        )
        with pytest.raises(RuntimeError) as raised:
            await db.upgrade("0002", migrations=MIGRATIONS)
        assert str(raised.value) == (
            "pocketcloud's schema 0002 keeps networks' CIDRs from overlapping, but these overlap: "
            "network 'a' (10.0.0.0/24) and 'b' (10.0.0.0/16). Remove all but one of each (and "
            "their servers' addresses), then run `pocketcloud db upgrade` again"
        )
        assert await db.current_revision(migrations=MIGRATIONS) == "0001"
