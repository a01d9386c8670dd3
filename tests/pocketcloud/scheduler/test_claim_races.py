"""Concurrent resource claims, on SQLite and PostgreSQL, from schedulers on separate engines.

Two scheduler services (as two processes would) choose hosts at once: the database must keep
them from promising one host more RAM or disk than it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.pocketcloud.flows import make_cloud_settings

import steward
from pocketcloud.compute.tables import compute_nodes
from pocketcloud.database import ensure_schemas
from pocketcloud.errors import NoValidHost
from pocketcloud.objects import Destination, RequestSpec
from pocketcloud.rpc import binary_of
from pocketcloud.scheduler.manager import SchedulerManager
from pocketcloud.scheduler.tables import allocations
from steward.db import Database, utcnow
from steward.registry import Registry

HOSTS = ("compute1", "compute2")
MEMORY_MB = 4096
DISK_GB = 10


@contextlib.asynccontextmanager
async def schedulers(
    database_url: str, tmp_path: Path, count: int = 2
) -> AsyncIterator[list[SchedulerManager]]:
    """Yield ``count`` schedulers on engines of their own, over two reported compute hosts."""
    settings = make_cloud_settings(tmp_path)
    async with contextlib.AsyncExitStack() as stack:
        databases = [await stack.enter_async_context(Database(database_url)) for _ in range(count)]
        db = databases[0]
        await ensure_schemas(db, upgrade=True)
        registry = Registry(db)
        async with db.session() as session:
            for host in HOSTS:
                await session.execute(
                    sa.insert(compute_nodes).values(
                        host=host,
                        availability_zone="nova",
                        hypervisor_type="fake",
                        memory_mb=MEMORY_MB,
                        memory_mb_used=0,
                        disk_gb=DISK_GB,
                        disk_gb_used=0,
                        running_vms=0,
                        updated_at=utcnow(),
                    )
                )
        for host in HOSTS:
            await registry.create_or_update(host, binary_of("compute"), "compute")
        yield [
            SchedulerManager(f"scheduler{n}", db=database, cloud_settings=settings)
            for n, database in enumerate(databases)
        ]


async def _claimed(db: Database) -> dict[str, tuple[int, int]]:
    query = sa.select(
        allocations.c.host, sa.func.sum(allocations.c.ram_mb), sa.func.sum(allocations.c.disk_gb)
    ).group_by(allocations.c.host)
    async with db.session() as session:
        return {host: (int(ram), int(disk)) for host, ram, disk in await session.execute(query)}


@pytest.mark.parametrize(
    ("ram_mb", "disk_gb", "fitting"),
    [(1024, 1, 8), (256, 5, 4)],
    ids=["ram-bound", "disk-bound"],
)
async def test_concurrent_claims_never_overcommit_a_host(
    database_url: str, tmp_path: Path, ram_mb: int, disk_gb: int, fitting: int
) -> None:
    async with schedulers(database_url, tmp_path) as managers:
        context = steward.get_admin_context()
        specs = [RequestSpec(server_id=f"s{n}", ram_mb=ram_mb, disk_gb=disk_gb) for n in range(20)]
        results = await asyncio.gather(
            *(
                manager.select_destinations(context, spec)
                for manager, spec in zip(itertools.cycle(managers), specs, strict=False)
            ),
            return_exceptions=True,
        )
        chosen = [result for result in results if isinstance(result, list)]
        refused = [result for result in results if isinstance(result, NoValidHost)]
        assert len(chosen) + len(refused) == len(specs), results
        assert len(chosen) == fitting
        claimed = await _claimed(managers[0].db)
        for host, (ram, disk) in claimed.items():
            assert ram <= MEMORY_MB, f"{host} was promised {ram} MB of {MEMORY_MB}"
            assert disk <= DISK_GB, f"{host} was promised {disk} GB of {DISK_GB}"
        hosts = [Destination.model_validate(result[0]).host for result in chosen]
        assert sorted(hosts) == sorted(
            host for host, (ram, _) in claimed.items() for _ in range(ram // ram_mb)
        )


async def test_concurrent_claims_for_one_server_claim_once(
    database_url: str, tmp_path: Path
) -> None:
    async with schedulers(database_url, tmp_path) as managers:
        context = steward.get_admin_context()
        spec = RequestSpec(server_id="s1", ram_mb=1024, disk_gb=1)
        results = await asyncio.gather(
            *(manager.select_destinations(context, spec) for manager in managers * 5)
        )
        assert len({result[0]["host"] for result in results}) == 1
        assert sum(ram for ram, _ in (await _claimed(managers[0].db)).values()) == 1024
