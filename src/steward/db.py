"""The database: async engine and sessions for ``database_url``, and its schema migrations.

SQLAlchemy 2 async, SQLite through aiosqlite by default and PostgreSQL through asyncpg. The schema
(the service registry's tables) is managed by Alembic migrations shipped inside the package
(``steward/migrations``), applied with ``steward db upgrade``. :meth:`Database.ensure_schema`
brings an embedded SQLite database up to date by itself, so a newcomer needs no extra step, and on
any other database stops start-up with a message naming ``steward db upgrade`` when the schema is
behind: upgrading a shared production database is an operator's decision.

Managers get a :class:`Database` as ``self.db`` and open sessions with
``async with self.db.session() as session``.

SQLAlchemy and Alembic are imported here and nowhere on a path that does not use a database.
"""

from __future__ import annotations

import contextlib
import datetime
import typing
from collections.abc import AsyncIterator
from importlib import resources

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from steward.config import Settings, get_settings, mask_url
from steward.errors import SchemaOutOfDate

__all__ = ["Database", "utcnow"]


def utcnow() -> datetime.datetime:
    """Return the current UTC time without tzinfo, as the database columns store it."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


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
    def from_settings(cls, settings: Settings | None = None) -> Database:
        """Return a database for the ``database_url`` setting."""
        return cls((settings or get_settings()).database_url)

    @property
    def engine(self) -> AsyncEngine:
        """The async engine, created on first use."""
        if self._engine is None:
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

    async def current_revision(self) -> str | None:
        """Return the schema's Alembic revision, or None for an empty database."""
        from alembic.runtime.migration import MigrationContext  # noqa: PLC0415 - migrations only

        def read(connection: sa.Connection) -> str | None:
            return MigrationContext.configure(connection).get_current_revision()

        async with self.engine.connect() as connection:
            return await connection.run_sync(read)

    @staticmethod
    def head_revision() -> str:
        """Return the newest revision shipped with this version of steward."""
        from alembic.script import ScriptDirectory  # noqa: PLC0415 - migrations only

        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        if head is None:  # pragma: no cover - the package always ships migrations
            raise RuntimeError("steward ships no migrations")
        return head

    async def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision`` (default: the newest)."""
        from alembic import command  # noqa: PLC0415 - migrations only

        def apply(connection: sa.Connection) -> None:
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

        async with self.engine.begin() as connection:
            await connection.run_sync(apply)

    async def ensure_schema(self, *, upgrade: bool | None = None) -> None:
        """Make sure the schema is current before a service uses it.

        ``upgrade`` None means: upgrade by itself on the embedded SQLite database only. Otherwise
        a schema that is behind raises :class:`SchemaOutOfDate` naming ``steward db upgrade``.
        """
        current, head = await self.current_revision(), self.head_revision()
        if current == head:
            return
        if upgrade if upgrade is not None else self.is_embedded:
            await self.upgrade()
            return
        raise SchemaOutOfDate(
            f"the database {mask_url(self.url)} is at schema revision {current or 'none'} but "
            f"this steward needs {head}; run `steward db upgrade` (with the same settings) first"
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


def _alembic_config() -> typing.Any:  # noqa: ANN401 - alembic.config.Config, imported lazily
    from alembic.config import Config  # noqa: PLC0415 - migrations only

    config = Config()
    config.set_main_option("script_location", str(resources.files("steward") / "migrations"))
    return config
