from __future__ import annotations

import datetime

import pytest
import sqlalchemy as sa

from steward.config import load_settings
from steward.db import Database, utcnow
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
        assert await db.current_revision() == Database.head_revision() == "0001"


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
