from __future__ import annotations

import asyncio
import datetime

import httpx
import pytest
import sqlalchemy as sa
from tests.pocketcloud.flows import DEADLINE

import steward
from pocketcloud.allinone import AllInOne
from pocketcloud.api.manager import BUILD_TIMEOUT_CHECK_INTERVAL
from pocketcloud.api.rpcapi import ServersAPI
from pocketcloud.api.tables import servers
from pocketcloud.errors import ServerNotFound
from pocketcloud.objects import ServerChanges, ServerStatus
from steward.db import utcnow
from steward.errors import NoSuchMethod
from steward.testing import FakeClock


async def _stuck_server(cloud: AllInOne, *, age: datetime.timedelta) -> str:
    row = await cloud.api.store.create(
        name="stuck",
        ram_mb=64,
        disk_gb=0,
        availability_zone=None,
        network_id=None,
        project_id=None,
    )
    async with cloud.db.session() as session:
        await session.execute(
            sa.update(servers).where(servers.c.id == row["id"]).values(updated_at=utcnow() - age)
        )
    return str(row["id"])


async def test_a_server_building_too_long_goes_to_error_with_a_fault(
    cloud: AllInOne, client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    old = await _stuck_server(cloud, age=datetime.timedelta(hours=1))
    recent = await _stuck_server(cloud, age=datetime.timedelta(seconds=1))
    context = steward.get_admin_context()
    await cloud.api.periodic_tasks(context)
    fake_clock.advance(BUILD_TIMEOUT_CHECK_INTERVAL)
    await cloud.api.periodic_tasks(context, raise_on_error=True)
    timed_out = (await client.get(f"/v1/servers/{old}")).json()
    assert timed_out["status"] == "ERROR"
    assert timed_out["fault"]["message"] == "build timed out after 600 s"
    assert (await client.get(f"/v1/servers/{recent}")).json()["status"] == "BUILDING"


async def test_reported_changes_apply_only_in_the_expected_status(cloud: AllInOne) -> None:
    reports = ServersAPI(cloud.transport)
    context = steward.get_admin_context()
    server_id = await _stuck_server(cloud, age=datetime.timedelta(0))
    active = ServerChanges(
        status=ServerStatus.ACTIVE, host="h1", expected_status=(ServerStatus.REBOOTING,)
    )
    assert not await reports.update_server(context, server_id, active)
    active = active.model_copy(update={"expected_status": (ServerStatus.BUILDING,)})
    assert await reports.update_server(context, server_id, active)
    row = await cloud.api.store.get(server_id)
    assert (row["status"], row["host"], row["fault"]) == ("ACTIVE", "h1", None)
    await reports.server_deleted(context, server_id)  # a cast: wait until it is handled
    async with asyncio.timeout(DEADLINE):
        while True:
            if not await reports.update_server(context, server_id, ServerChanges(host="h2")):
                break
            await asyncio.sleep(0.005)
    with pytest.raises(ServerNotFound):
        await cloud.api.store.get(server_id)


async def test_the_rest_application_is_not_reachable_over_rpc(cloud: AllInOne) -> None:
    client = ServersAPI(cloud.transport).client
    with pytest.raises(NoSuchMethod):
        await client.call(steward.get_admin_context(), "app", receive=None, send=None)
