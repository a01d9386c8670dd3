"""ServerStore: reads and writes the ``servers`` table, for the api service only.

Every change is guarded by the status it expects (nova's ``expected_task_state``): a report that
comes too late (the server was deleted meanwhile) changes nothing, and the caller learns it.
"""

from __future__ import annotations

import datetime
import uuid

import sqlalchemy as sa

from pocketcloud.api.tables import servers
from pocketcloud.errors import ServerNotFound
from pocketcloud.objects import PowerState, ServerChanges, ServerStatus
from steward.db import Database, utcnow
from steward.redact import shorten

__all__ = ["ServerStore"]


class ServerStore:
    """The servers' records in ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        name: str,
        ram_mb: int,
        disk_gb: int,
        availability_zone: str | None,
        network_id: str | None,
        project_id: str | None,
    ) -> sa.RowMapping:
        """Record a new server of ``project_id``, BUILDING, and return its row."""
        server_id = str(uuid.uuid4())
        now = utcnow()
        async with self.db.session() as session:
            await session.execute(
                sa.insert(servers).values(
                    id=server_id,
                    name=name,
                    status=ServerStatus.BUILDING,
                    ram_mb=ram_mb,
                    disk_gb=disk_gb,
                    availability_zone=availability_zone,
                    network_id=network_id,
                    project_id=project_id,
                    power_state=PowerState.NOSTATE,
                    created_at=now,
                    updated_at=now,
                )
            )
        return await self.get(server_id)

    async def get(self, server_id: str) -> sa.RowMapping:
        """Return the server's row; raises :class:`ServerNotFound` (also once deleted)."""
        query = sa.select(servers).where(servers.c.id == server_id, servers.c.deleted == sa.false())
        async with self.db.session() as session:
            row = (await session.execute(query)).mappings().first()
        if row is None:
            raise ServerNotFound(f"server {shorten(server_id)!r} does not exist")
        return row

    async def list_all(self, *, project_id: str | None = None) -> list[sa.RowMapping]:
        """Return every server that is not deleted (of ``project_id``, if given), oldest first."""
        query = (
            sa.select(servers)
            .where(servers.c.deleted == sa.false())
            .order_by(servers.c.created_at, servers.c.id)
        )
        if project_id is not None:
            query = query.where(servers.c.project_id == project_id)
        async with self.db.session() as session:
            return list((await session.execute(query)).mappings().all())

    async def update(self, server_id: str, changes: ServerChanges) -> bool:
        """Apply ``changes`` if the server is in an expected status; return whether it was."""
        now = utcnow()
        values: dict[str, object] = {"updated_at": now}
        for field in ("status", "host", "power_state", "address"):
            value = getattr(changes, field)
            if value is not None:
                values[field] = value
        if changes.fault is not None:
            values |= {"fault": changes.fault, "fault_at": now}
        if changes.launched:
            values["launched_at"] = now
        statement = (
            sa.update(servers)
            .where(servers.c.id == server_id, servers.c.deleted == sa.false())
            .values(**values)
        )
        if changes.expected_status:
            statement = statement.where(servers.c.status.in_(changes.expected_status))
        async with self.db.session() as session:
            result = await session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_deleted(self, server_id: str) -> None:
        """Soft-delete the record: it stays in the table, hidden from every read."""
        now = utcnow()
        statement = (
            sa.update(servers)
            .where(servers.c.id == server_id)
            .values(deleted=True, deleted_at=now, updated_at=now)
        )
        async with self.db.session() as session:
            await session.execute(statement)

    async def building_since(self, before: datetime.datetime) -> list[str]:
        """Return the ids of servers BUILDING without a change since ``before`` (naive UTC)."""
        query = sa.select(servers.c.id).where(
            servers.c.deleted == sa.false(),
            servers.c.status == ServerStatus.BUILDING,
            servers.c.updated_at < before,
        )
        async with self.db.session() as session:
            return list((await session.execute(query)).scalars())
