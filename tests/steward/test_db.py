from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from steward.config import load_settings
from steward.db import STEWARD_MIGRATIONS, Database, Migrations, utcnow
from steward.errors import SchemaOutOfDate


async def test_embedded_sqlite_is_upgraded_by_itself(database_url: str) -> None:
    async with Database(database_url) as db:
        assert await db.current_revision() is None
        if db.is_embedded:
            await db.ensure_schema()
            assert await db.current_revision() == Database.head_revision()
        else:
            with pytest.raises(SchemaOutOfDate, match="run `steward db upgrade`"):
                await db.ensure_schema()
            await db.upgrade()
            await db.ensure_schema()  # current now: nothing to do
        assert await db.current_revision() == Database.head_revision() == "0002"


async def test_upgrade_creates_the_registry_tables(database_url: str) -> None:
    async with Database(database_url) as db:
        await db.upgrade()
        async with db.engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        assert {"services", "service_leases", "alembic_version"} <= set(tables)


async def test_schema_error_masks_the_password() -> None:
    db = Database("postgresql+asyncpg://postgres:hunter2@127.0.0.1:5432/postgres")
    try:
        with pytest.raises(SchemaOutOfDate) as caught:
            await db.ensure_schema(upgrade=False)
        assert "hunter2" not in str(caught.value)
        assert "postgres:***@" in str(caught.value)
    finally:
        await db.dispose()


async def test_now_is_the_database_clock_in_naive_utc(database_url: str) -> None:
    async with Database(database_url) as db:
        now = await db.now()
    assert now.tzinfo is None
    assert abs(now - utcnow()) < datetime.timedelta(minutes=5)


async def test_sessions_commit_or_roll_back(database_url: str) -> None:
    async with Database(database_url) as db:
        await db.upgrade()
        insert = sa.text("INSERT INTO service_leases VALUES ('x', 'a', '2030-01-01 00:00:00')")

        async def insert_then_fail() -> None:
            async with db.session() as session:
                await session.execute(insert)
                raise RuntimeError

        with pytest.raises(RuntimeError):
            await insert_then_fail()
        async with db.session() as session:
            assert await session.scalar(sa.text("SELECT count(*) FROM service_leases")) == 0


def test_from_settings_and_repr_masks() -> None:
    settings = load_settings(overrides={"database_url": "postgresql+asyncpg://u:pw@h/db"})
    db = Database.from_settings(settings)
    assert db.dialect == "postgresql"
    assert not db.is_embedded
    assert "pw" not in repr(db)


_APP_ENV = """
from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    version_table=context.config.attributes["version_table"],
)
with context.begin_transaction():
    context.run_migrations()
"""

_APP_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "a1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("widgets", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("widgets")
"""


def _app_migrations(tmp_path: Path) -> Migrations:
    tree = tmp_path / "app_migrations"
    (tree / "versions").mkdir(parents=True)
    (tree / "env.py").write_text(_APP_ENV)
    (tree / "versions" / "a1_widgets.py").write_text(_APP_REVISION)
    return Migrations(str(tree), version_table="app_version", upgrade_command="app db upgrade")


async def test_a_second_migration_tree_keeps_its_own_version_table(
    database_url: str, tmp_path: Path
) -> None:
    app = _app_migrations(tmp_path)
    assert Database.head_revision(app) == "a1"
    async with Database(database_url) as db:
        await db.upgrade()
        assert await db.current_revision(migrations=app) is None
        await db.upgrade(migrations=app)
        assert await db.current_revision() == "0002"
        assert await db.current_revision(migrations=app) == "a1"
        async with db.engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        assert {"services", "alembic_version", "widgets", "app_version"} <= set(tables)
        await db.ensure_schema(migrations=app)  # current: nothing to do
        await db.ensure_schema()


async def test_ensure_schema_of_a_second_tree_names_its_upgrade_command(
    database_url: str, tmp_path: Path
) -> None:
    app = _app_migrations(tmp_path)
    async with Database(database_url) as db:
        await db.ensure_schema(upgrade=True)
        with pytest.raises(SchemaOutOfDate, match="run `app db upgrade`"):
            await db.ensure_schema(upgrade=False, migrations=app)
        await db.ensure_schema(upgrade=True, migrations=app)
        assert await db.current_revision(migrations=app) == "a1"
        assert await db.current_revision() == Database.head_revision(STEWARD_MIGRATIONS)


def test_steward_migrations_are_the_default_tree() -> None:
    assert STEWARD_MIGRATIONS.version_table == "alembic_version"
    assert STEWARD_MIGRATIONS.upgrade_command == "steward db upgrade"
    assert Database.head_revision() == Database.head_revision(STEWARD_MIGRATIONS) == "0002"


async def test_concurrent_upgrades_of_one_database_do_not_collide(database_url: str) -> None:
    import asyncio

    databases = [Database(database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(db.ensure_schema(upgrade=True) for db in databases))
        assert {await db.current_revision() for db in databases} == {Database.head_revision()}
    finally:
        for db in databases:
            await db.dispose()
