"""The database: async engine and sessions for ``database_url``, and its schema migrations.

SQLAlchemy 2 async, SQLite through aiosqlite by default and PostgreSQL through asyncpg. The schema
(the service registry's tables) is managed by Alembic migrations shipped inside the package
(``steward/migrations``), applied with ``steward db upgrade``. :meth:`Database.ensure_schema`
brings an embedded SQLite database up to date by itself, so a newcomer needs no extra step, and on
any other database stops start-up with a message naming ``steward db upgrade`` when the schema is
behind: upgrading a shared production database is an operator's decision.

An application built on steward keeps its own tables in the same database with its own migration
tree: it describes the tree as :class:`Migrations` (where the scripts are, which version table
records the tree's revision, which command upgrades it) and passes it to the same methods. Each
tree upgrades independently of the others.

Managers get a :class:`Database` as ``self.db`` and open sessions with
``async with self.db.session() as session``.

SQLAlchemy and Alembic are imported here and nowhere on a path that does not use a database.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import typing
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from steward._optional import requiring
from steward.config import Settings, mask_url
from steward.errors import SchemaOutOfDate

__all__ = ["STEWARD_MIGRATIONS", "Database", "Migrations", "utcnow"]

# pg_advisory_xact_lock key serialising schema upgrades ("steward" in ASCII, as a number).
_LOCK_KEY = 0x73746577617264


def utcnow() -> datetime.datetime:
    """Return the current UTC time without tzinfo, as the database columns store it."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


@dataclasses.dataclass(frozen=True, slots=True)
class Migrations:
    """One Alembic migration tree, and the table in which it records its revision.

    ``script_location`` is what Alembic accepts: a directory, or ``"package:directory"`` for one
    shipped inside a package (``"myapp:migrations"``). ``version_table`` must differ between the
    trees that share a database. ``upgrade_command`` is what the error for a schema that is behind
    tells the operator to run.

    Alembic reads the version table in the tree's ``env.py``: it must pass
    ``context.config.attributes["version_table"]`` on as ``context.configure(version_table=...)``.
    """

    script_location: str
    version_table: str = "alembic_version"
    upgrade_command: str = "steward db upgrade"


STEWARD_MIGRATIONS = Migrations("steward:migrations")
"""steward's own tree: the registry's tables, recorded in ``alembic_version``."""


class Database:
    """An engine for ``url`` and the sessions, migrations and clock that go with it.

    The engine is created on first use. Use it as an async context manager, or call
    :meth:`dispose` when done, to close its connections.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self._echo = echo
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """Return a database for the ``database_url`` setting of ``settings``."""
        return cls(settings.database_url)

    @property
    def engine(self) -> AsyncEngine:
        """The async engine, created on first use."""
        if self._engine is None:
            with requiring(f"the database {mask_url(self.url)}"):  # asyncpg: postgres extra
                self._engine = create_async_engine(self.url, echo=self._echo, pool_pre_ping=True)
        return self._engine

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect name: ``sqlite`` or ``postgresql``."""
        return sa.make_url(self.url).get_backend_name()

    @property
    def is_embedded(self) -> bool:
        """Whether this is the embedded SQLite database that steward may upgrade by itself."""
        return self.dialect == "sqlite"

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Yield a session in a transaction committed on success, rolled back on error."""
        if self._sessions is None:
            self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        async with self._sessions() as session, session.begin():
            yield session

    async def now(self) -> datetime.datetime:
        """Return the database server's current UTC time (naive), not this host's clock."""
        async with self.engine.connect() as connection:
            value = await connection.scalar(sa.select(db_now(self.dialect)))
        return _as_naive_utc(value)

    async def current_revision(self, *, migrations: Migrations | None = None) -> str | None:
        """Return the revision of ``migrations`` (default: steward's) here, or None if absent."""
        from alembic.runtime.migration import MigrationContext  # noqa: PLC0415 - migrations only

        version_table = (migrations or STEWARD_MIGRATIONS).version_table

        def read(connection: sa.Connection) -> str | None:
            context = MigrationContext.configure(connection, opts={"version_table": version_table})
            return context.get_current_revision()

        async with self.engine.connect() as connection:
            return await connection.run_sync(read)

    @staticmethod
    def head_revision(migrations: Migrations | None = None) -> str:
        """Return the newest revision of ``migrations`` (default: steward's own tree)."""
        from alembic.script import ScriptDirectory  # noqa: PLC0415 - migrations only

        tree = migrations or STEWARD_MIGRATIONS
        head = ScriptDirectory.from_config(_alembic_config(tree)).get_current_head()
        if head is None:
            raise RuntimeError(f"the migration tree {tree.script_location!r} has no revisions")
        return head

    async def upgrade(
        self, revision: str = "head", *, migrations: Migrations | None = None
    ) -> None:
        """Apply the migrations of ``migrations`` (default: steward's) up to ``revision``."""
        from alembic import command  # noqa: PLC0415 - migrations only

        def apply(connection: sa.Connection) -> None:
            config = _alembic_config(migrations or STEWARD_MIGRATIONS)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

        async with self._migration_lock(), self.engine.begin() as connection:
            if self.dialect == "postgresql":
                # Held until the transaction ends: concurrent upgrades run one after the other.
                await connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}
                )
            await connection.run_sync(apply)

    @contextlib.asynccontextmanager
    async def _migration_lock(self) -> AsyncIterator[None]:
        """Serialise upgrades of one SQLite file across processes (workers start together).

        Alembic runs SQLite DDL outside a transaction, so two workers upgrading a fresh file at
        once would both create the tables; an exclusive lock on a file beside it orders them, and
        the second finds the schema current. PostgreSQL uses an advisory lock instead.
        """
        database = sa.make_url(self.url).database
        if self.dialect != "sqlite" or not database or database == ":memory:":
            yield
            return
        import fcntl  # noqa: PLC0415 - POSIX, SQLite only

        with open(f"{database}.migrate.lock", "a+b") as lock_file:  # noqa: ASYNC230 - a lock file, opened once
            await asyncio.to_thread(fcntl.flock, lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    async def ensure_schema(
        self, *, upgrade: bool | None = None, migrations: Migrations | None = None
    ) -> None:
        """Make sure the schema of ``migrations`` (default: steward's) is current before use.

        ``upgrade`` None means: upgrade by itself on the embedded SQLite database only. Otherwise
        a schema that is behind raises :class:`SchemaOutOfDate` naming the tree's
        ``upgrade_command`` (``steward db upgrade`` for steward's own).
        """
        tree = migrations or STEWARD_MIGRATIONS
        current = await self.current_revision(migrations=tree)
        head = self.head_revision(tree)
        if current == head:
            return
        if upgrade if upgrade is not None else self.is_embedded:
            await self.upgrade(migrations=tree)
            return
        raise SchemaOutOfDate(
            f"the database {mask_url(self.url)} is at schema revision {current or 'none'} of "
            f"{tree.script_location} but this version needs {head}; run "
            f"`{tree.upgrade_command}` (with the same settings) first"
        )

    async def dispose(self) -> None:
        """Close the engine's connections."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._sessions = None

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.dispose()

    def __repr__(self) -> str:
        return f"Database({mask_url(self.url)!r})"


def db_now(dialect: str) -> sa.ColumnElement[typing.Any]:
    """Return SQL for the database's current UTC time, with sub-second precision where it can."""
    if dialect == "sqlite":
        return sa.func.strftime("%Y-%m-%d %H:%M:%f", "now")
    return sa.func.timezone("UTC", sa.func.now())


def _as_naive_utc(value: object) -> datetime.datetime:
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if not isinstance(value, datetime.datetime):
        raise TypeError(f"the database returned {value!r} for the current time")
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value


def _alembic_config(migrations: Migrations) -> typing.Any:  # noqa: ANN401 - alembic's Config, imported lazily
    from alembic.config import Config  # noqa: PLC0415 - migrations only

    config = Config()
    config.set_main_option("script_location", migrations.script_location)
    config.attributes["version_table"] = migrations.version_table
    return config
