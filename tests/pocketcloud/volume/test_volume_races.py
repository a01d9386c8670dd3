"""Concurrent attaches and detaches of one volume, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.pocketcloud.flows import DEADLINE, make_cloud_settings

import steward
from pocketcloud.database import ensure_schemas
from pocketcloud.errors import InvalidVolumeState
from pocketcloud.objects import VolumeRecord
from pocketcloud.volume.drivers.fake import FakeVolumeDriver
from pocketcloud.volume.manager import VolumeManager
from steward.db import Database


@contextlib.asynccontextmanager
async def volume_services(
    database_url: str, tmp_path: Path, count: int
) -> AsyncIterator[list[VolumeManager]]:
    """Yield ``count`` volume managers with the fake driver, each on an engine of its own."""
    settings = make_cloud_settings(tmp_path)
    async with contextlib.AsyncExitStack() as stack:
        databases = [await stack.enter_async_context(Database(database_url)) for _ in range(count)]
        await ensure_schemas(databases[0], upgrade=True)
        managers = []
        for number, db in enumerate(databases):
            manager = VolumeManager(f"volume{number}", db=db, cloud_settings=settings)
            await manager.init_host(None)
            managers.append(manager)
        yield managers


def _fake(manager: VolumeManager) -> FakeVolumeDriver:
    assert isinstance(manager.driver, FakeVolumeDriver)
    return manager.driver


@pytest.mark.parametrize("services", [1, 2], ids=["one-service", "two-engines"])
async def test_concurrent_attaches_of_one_volume_attach_it_once(
    database_url: str, tmp_path: Path, services: int
) -> None:
    async with volume_services(database_url, tmp_path, services) as managers:
        context = steward.get_admin_context()
        volume = await managers[0].create_volume(context, "data", 1)
        servers = [f"server{n}" for n in range(20)]
        results = await asyncio.gather(
            *(
                manager.attach_volume(context, volume["id"], server, "compute1")
                for manager, server in zip(itertools.cycle(managers), servers, strict=False)
            ),
            return_exceptions=True,
        )
        attached = [
            server for server, r in zip(servers, results, strict=True) if isinstance(r, dict)
        ]
        refused = [r for r in results if isinstance(r, InvalidVolumeState)]
        assert len(attached) == 1
        assert len(refused) == len(servers) - 1
        stored = VolumeRecord.model_validate(await managers[0].get_volume(context, volume["id"]))
        assert (stored.status, stored.server_id) == ("in-use", attached[0])
        # The losers never touched the winner's connection on the shared compute host.
        connected = {
            host
            for manager in managers
            for host in _fake(manager).connections.get(volume["id"], ())
        }
        assert connected == {"compute1"}


class _HeldTermination(FakeVolumeDriver):
    """A fake driver whose first ``terminate_connection`` waits until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def terminate_connection(self, volume_id: str, host: str) -> None:
        if not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
        await super().terminate_connection(volume_id, host)


async def test_a_stale_detach_leaves_the_next_attachment_alone(
    database_url: str, tmp_path: Path
) -> None:
    async with volume_services(database_url, tmp_path, 1) as (manager,):
        context = steward.get_admin_context()
        driver = _HeldTermination()
        manager.driver = driver
        volume_id = (await manager.create_volume(context, "data", 1))["id"]
        await manager.attach_volume(context, volume_id, "a", "compute1")
        async with asyncio.timeout(DEADLINE), asyncio.TaskGroup() as tasks:
            stale = tasks.create_task(manager.detach_volume(context, volume_id, "a"))
            await driver.entered.wait()
            # Meanwhile a second detach of "a" finishes and "b" attaches the volume.
            await manager.detach_volume(context, volume_id, "a")
            await manager.attach_volume(context, volume_id, "b", "compute2")
            driver.release.set()
            await stale
        stored = VolumeRecord.model_validate(await manager.get_volume(context, volume_id))
        assert (stored.status, stored.server_id, stored.attached_host) == (
            "in-use",
            "b",
            "compute2",
        )
        assert driver.connections[volume_id] == {"compute2"}


async def test_a_failed_connection_leaves_the_volume_available(
    database_url: str, tmp_path: Path
) -> None:
    class Refusing(FakeVolumeDriver):
        async def initialize_connection(self, volume_id: str, host: str) -> dict[str, str]:
            raise OSError("export failed")

    async with volume_services(database_url, tmp_path, 1) as (manager,):
        context = steward.get_admin_context()
        manager.driver = Refusing()
        volume_id = (await manager.create_volume(context, "data", 1))["id"]
        with pytest.raises(OSError, match="export failed"):
            await manager.attach_volume(context, volume_id, "a", "compute1")
        stored = VolumeRecord.model_validate(await manager.get_volume(context, volume_id))
        assert (stored.status, stored.server_id, stored.attached_host) == ("available", None, None)
