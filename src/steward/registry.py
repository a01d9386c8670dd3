"""The service registry: who runs where, and who is up (nova's servicegroup database driver).

Every running service has a record (host, binary, topic, version...) that its heartbeat updates
every ``report_interval``: ``report_count`` goes up and ``last_seen_up`` becomes the database's
current time. :meth:`Registry.is_up` applies nova's rule: a service forced down is down;
otherwise it is up while ``abs(now - (last_seen_up or created_at)) <= service_down_time``, where
``now`` is the *database's* clock, so a host with a skewed clock cannot flip the answer. Better
than nova: a service that stops gracefully records ``stopped_at`` (:meth:`Registry.stopped`) and
is down at once, rather than for another ``service_down_time``; its next start or heartbeat
clears it.

The registry also holds the leases of cluster-singleton periodic tasks: one row per task, naming
the service that runs it and until when. A holder renews its lease with each heartbeat; another
live service takes it over once it has expired; a service that stops gracefully releases it.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import typing

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from steward.config import Settings, load_settings
from steward.db import Database, db_now
from steward.errors import ServiceNotFound

__all__ = [
    "Registry",
    "ServiceRecord",
    "ServiceStatus",
    "effective_service_down_time",
    "metadata",
    "service_leases",
    "services",
]

LOG = logging.getLogger(__name__)

metadata = sa.MetaData()
"""The registry's tables; ``steward/migrations`` creates them."""

services = sa.Table(
    "services",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("binary", sa.String(255), nullable=False),
    sa.Column("topic", sa.String(255), nullable=False),
    sa.Column("report_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_seen_up", sa.DateTime, nullable=True),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("disabled_reason", sa.String(255), nullable=True),
    sa.Column("forced_down", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=True),
    sa.Column("deleted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("stopped_at", sa.DateTime, nullable=True),
    sa.UniqueConstraint("host", "binary", "deleted", name="uniq_services0host0binary0deleted"),
)

service_leases = sa.Table(
    "service_leases",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceRecord:
    """One service's row. Times are naive UTC, on the database's clock."""

    id: int
    host: str
    binary: str
    topic: str
    report_count: int
    last_seen_up: datetime.datetime | None
    disabled: bool
    disabled_reason: str | None
    forced_down: bool
    version: int
    created_at: datetime.datetime
    updated_at: datetime.datetime | None
    deleted: int
    stopped_at: datetime.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceStatus:
    """A record and whether its service is up, as :meth:`Registry.list_services` reports."""

    record: ServiceRecord
    up: bool


def effective_service_down_time(settings: Settings) -> float:
    """Return ``service_down_time``, raised to 2.5 x ``report_interval`` when not above it.

    A service that may miss one heartbeat must not look down, so nova raises a down time that is
    not longer than the heartbeat interval; steward does the same, with a warning.
    """
    if settings.service_down_time > settings.report_interval:
        return settings.service_down_time
    raised = 2.5 * settings.report_interval
    LOG.warning(
        "service_down_time (%s s) must be longer than report_interval (%s s); using %s s",
        settings.service_down_time,
        settings.report_interval,
        raised,
    )
    return raised


def _record(row: sa.RowMapping) -> ServiceRecord:
    return ServiceRecord(
        **{field.name: row[field.name] for field in dataclasses.fields(ServiceRecord)}
    )


class Registry:
    """Service records, liveness and singleton-task leases, in ``db``.

    ``settings`` give ``service_down_time`` and ``report_interval``; a service passes its own.
    None reads the defaults and the environment (:func:`~steward.config.load_settings`), never
    the process's installed settings.
    """

    def __init__(self, db: Database, *, settings: Settings | None = None) -> None:
        self.db = db
        self.settings = settings if settings is not None else load_settings()
        self.service_down_time = effective_service_down_time(self.settings)

    def _now(self) -> sa.ColumnElement[typing.Any]:
        return db_now(self.db.dialect)

    async def get(self, host: str, binary: str) -> ServiceRecord | None:
        """Return the live record of ``binary`` on ``host``, or None."""
        query = sa.select(services).where(
            services.c.host == host, services.c.binary == binary, services.c.deleted == 0
        )
        async with self.db.session() as session:
            row = (await session.execute(query)).mappings().first()
        return _record(row) if row is not None else None

    async def _require(self, host: str, binary: str) -> ServiceRecord:
        record = await self.get(host, binary)
        if record is None:
            raise ServiceNotFound(host, binary)
        return record

    async def create_or_update(
        self, host: str, binary: str, topic: str, *, version: int = 0
    ) -> ServiceRecord:
        """Create this service's record, or update the topic and version of an existing one.

        Two workers of one service racing to create the record end up sharing it.
        """
        existing = await self.get(host, binary)
        if existing is not None:
            changes: dict[str, object] = {}
            if (existing.topic, existing.version) != (topic, version):
                LOG.info(
                    "Updating service %s on %s: topic %s -> %s, version %d -> %d",
                    binary, host, existing.topic, topic, existing.version, version,
                )  # fmt: skip
                changes.update(topic=topic, version=version)
            if existing.stopped_at is not None:
                changes["stopped_at"] = None  # starting again: no longer stopped
            if changes:
                await self._update(existing.id, **changes)
            return await self._require(host, binary)
        try:
            async with self.db.session() as session:
                await session.execute(
                    sa.insert(services).values(
                        host=host,
                        binary=binary,
                        topic=topic,
                        version=version,
                        report_count=0,
                        created_at=self._now(),
                    )
                )
        except IntegrityError:
            LOG.debug("Service %s on %s was created concurrently; using that record", binary, host)
        return await self._require(host, binary)

    async def _update(self, record_id: int, **values: object) -> None:
        statement = (
            sa.update(services)
            .where(services.c.id == record_id)
            .values(**values, updated_at=self._now())
        )
        async with self.db.session() as session:
            await session.execute(statement)

    async def heartbeat(self, record: ServiceRecord) -> ServiceRecord:
        """Record that ``record``'s service is alive: count one report, stamp the time."""
        statement = (
            sa.update(services)
            .where(services.c.id == record.id)
            .values(
                report_count=services.c.report_count + 1,
                last_seen_up=self._now(),
                updated_at=self._now(),
                stopped_at=None,
            )
            .returning(*services.c)
        )
        async with self.db.session() as session:
            row = (await session.execute(statement)).mappings().first()
        if row is None:
            raise ServiceNotFound(record.host, record.binary)
        return _record(row)

    async def stopped(self, record: ServiceRecord) -> None:
        """Record that ``record``'s service stopped gracefully: it is down from now on."""
        await self._update(record.id, stopped_at=self._now())

    def is_up_at(self, record: ServiceRecord, now: datetime.datetime) -> bool:
        """Return nova's liveness verdict for ``record`` at database time ``now``."""
        if record.forced_down or record.stopped_at is not None:
            return False
        last_heartbeat = record.last_seen_up or record.created_at
        elapsed = abs((now - last_heartbeat).total_seconds())
        return elapsed <= self.service_down_time

    async def is_up(self, record: ServiceRecord) -> bool:
        """Return whether ``record``'s service is up, on the database's clock."""
        return self.is_up_at(record, await self.db.now())

    async def list_services(
        self, *, binary: str | None = None, topic: str | None = None
    ) -> list[ServiceStatus]:
        """Return every live record (optionally of one binary or topic) with its up state."""
        query = sa.select(services).where(services.c.deleted == 0)
        if binary is not None:
            query = query.where(services.c.binary == binary)
        if topic is not None:
            query = query.where(services.c.topic == topic)
        query = query.order_by(services.c.binary, services.c.host)
        async with self.db.session() as session:
            rows = (await session.execute(query)).mappings().all()
        now = await self.db.now()
        return [ServiceStatus(record, self.is_up_at(record, now)) for record in map(_record, rows)]

    async def set_disabled(
        self, host: str, binary: str, disabled: bool, *, reason: str | None = None
    ) -> ServiceRecord:
        """Disable (with ``reason``) or enable a service; schedulers skip disabled ones."""
        record = await self._require(host, binary)
        await self._update(
            record.id, disabled=disabled, disabled_reason=reason if disabled else None
        )
        return await self._require(host, binary)

    async def set_forced_down(self, host: str, binary: str, forced_down: bool) -> ServiceRecord:
        """Mark a service down (or not) whatever its heartbeats say, as nova's force-down."""
        record = await self._require(host, binary)
        await self._update(record.id, forced_down=forced_down)
        return await self._require(host, binary)

    async def destroy(self, host: str, binary: str) -> None:
        """Soft-delete the record (``deleted`` takes its id, as nova does)."""
        record = await self._require(host, binary)
        await self._update(record.id, deleted=record.id)

    # --- cluster-singleton leases --------------------------------------------------------------

    async def acquire_lease(self, name: str, holder: str, *, duration: float) -> bool:
        """Take or renew lease ``name`` for ``holder`` for ``duration`` s; return if held.

        It succeeds when nobody holds the lease, when ``holder`` already does, or when the
        current holder's lease has expired (on the database's clock).
        """
        now = self._now()
        expires = _plus_seconds(self.db.dialect, duration)
        insert = (postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert)(
            service_leases
        )
        table = service_leases
        statement = insert.values(
            name=name, holder=holder, expires_at=expires
        ).on_conflict_do_update(
            index_elements=[table.c.name],
            set_={"holder": holder, "expires_at": expires},
            where=sa.or_(table.c.holder == holder, table.c.expires_at < now),
        )
        async with self.db.session() as session:
            await session.execute(statement)
            current = await session.scalar(sa.select(table.c.holder).where(table.c.name == name))
        return bool(current == holder)

    async def release_lease(self, name: str, holder: str) -> None:
        """Give up lease ``name`` if ``holder`` holds it, so another service takes it at once."""
        statement = sa.delete(service_leases).where(
            service_leases.c.name == name, service_leases.c.holder == holder
        )
        async with self.db.session() as session:
            await session.execute(statement)

    async def lease_holder(self, name: str) -> str | None:
        """Return who holds lease ``name`` now (an expired lease has no holder)."""
        table = service_leases
        query = sa.select(table.c.holder).where(
            table.c.name == name, table.c.expires_at >= self._now()
        )
        async with self.db.session() as session:
            holder = await session.scalar(query)
        return str(holder) if holder is not None else None


def _plus_seconds(dialect: str, seconds: float) -> sa.ColumnElement[typing.Any]:
    if dialect == "sqlite":
        return sa.func.strftime("%Y-%m-%d %H:%M:%f", "now", f"+{float(seconds)} seconds")
    return sa.func.timezone("UTC", sa.func.now()) + sa.func.make_interval(
        0, 0, 0, 0, 0, 0, float(seconds)
    )
