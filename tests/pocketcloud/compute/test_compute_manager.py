from __future__ import annotations

import asyncio

import httpx
import pytest
import sqlalchemy as sa
from tests.pocketcloud.flows import DEADLINE, boot, create_network, wait_for_status

import steward
from pocketcloud.allinone import AllInOne
from pocketcloud.compute.drivers.fake import FakeComputeDriver
from pocketcloud.compute.manager import SYNC_POWER_STATE_INTERVAL, ComputeManager
from pocketcloud.compute.rpcapi import ComputeAPI
from pocketcloud.compute.tables import compute_nodes
from pocketcloud.errors import ServiceUnavailable
from pocketcloud.scheduler.tables import allocations
from steward.testing import FakeClock


def _compute(cloud: AllInOne, host: str) -> tuple[ComputeManager, FakeComputeDriver]:
    compute = next(manager for manager in cloud.computes if manager.host == host)
    assert isinstance(compute.driver, FakeComputeDriver)
    return compute, compute.driver


async def _allocations(cloud: AllInOne) -> list[str]:
    async with cloud.db.session() as session:
        return list((await session.execute(sa.select(allocations.c.server_id))).scalars())


async def test_a_failed_spawn_ends_in_error_with_a_fault_and_releases_what_it_took(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    network = await create_network(client)
    for compute in cloud.computes:
        _compute(cloud, compute.host)[1].spawn_error = OSError("no space left for the guest")
    server = await boot(client)
    failed = await wait_for_status(client, server["id"], "ERROR")
    assert failed["fault"]["message"].startswith("build failed on compute")
    assert failed["fault"]["message"].endswith("OSError: no space left for the guest")
    assert failed["address"] is None
    assert await cloud.network.list_fixed_ips(steward.get_admin_context(), network["id"]) == []
    assert await _allocations(cloud) == []
    compute, _ = _compute(cloud, failed["host"] or _host_that_tried(cloud))
    events = [sent.event_type for sent in compute.notifier.sent]
    assert events == ["compute.instance.create.start", "compute.instance.create.error"]


def _host_that_tried(cloud: AllInOne) -> str:
    for compute in cloud.computes:
        if compute.notifier.sent:
            return compute.host
    raise AssertionError("no compute host tried to build")


async def test_a_guest_that_stops_by_itself_is_marked_shutoff_then_a_reboot_revives_it(
    cloud: AllInOne, client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    server = await wait_for_status(client, (await boot(client))["id"], "ACTIVE")
    compute, driver = _compute(cloud, server["host"])
    context = steward.get_admin_context()
    await compute.periodic_tasks(context)
    driver.power_off(server["id"])
    await compute.periodic_tasks(context)  # not due yet: nothing noticed
    assert (await client.get(f"/v1/servers/{server['id']}")).json()["status"] == "ACTIVE"
    fake_clock.advance(SYNC_POWER_STATE_INTERVAL)
    await compute.periodic_tasks(context, raise_on_error=True)
    stopped = await wait_for_status(client, server["id"], "SHUTOFF")
    assert stopped["power_state"] == "shutdown"
    assert compute.notifier.sent[-1].event_type == "compute.instance.power_off"
    await client.post(f"/v1/servers/{server['id']}/reboot")
    revived = await wait_for_status(client, server["id"], "ACTIVE")
    assert revived["power_state"] == "running"


async def test_hosts_report_their_resources_and_what_their_instances_use(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    server = await wait_for_status(client, (await boot(client, ram_mb=1000))["id"], "ACTIVE")
    async with cloud.db.session() as session:
        rows = (await session.execute(sa.select(compute_nodes))).mappings().all()
    nodes = {row["host"]: row for row in rows}
    assert set(nodes) == {"compute1", "compute2"}
    used = nodes[server["host"]]
    assert (used["memory_mb"], used["memory_mb_used"], used["running_vms"]) == (4096, 1000, 1)
    assert used["hypervisor_type"] == "fake"
    assert used["availability_zone"] == "nova"


async def test_the_console_comes_from_the_server_host(client: httpx.AsyncClient) -> None:
    server = await wait_for_status(client, (await boot(client, "c1"))["id"], "ACTIVE")
    response = await client.get(f"/v1/servers/{server['id']}/console")
    assert response.json() == {"output": "fake console of c1 (1 boots)\n"}


async def test_a_client_capped_below_1_1_cannot_ask_for_the_console(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    server = await wait_for_status(client, (await boot(client))["id"], "ACTIVE")
    capped = ComputeAPI(cloud.transport, version_cap="1.0")
    with pytest.raises(ServiceUnavailable, match=r"capped at version 1\.0"):
        await capped.get_console_output(steward.get_admin_context(), server["host"], server["id"])
    current = ComputeAPI(cloud.transport, version_cap=ComputeAPI.VERSION)
    output = await current.get_console_output(
        steward.get_admin_context(), server["host"], server["id"]
    )
    assert output.startswith("fake console")


async def test_a_server_deleted_while_building_is_not_left_running(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    # Delete right after the request: whichever step sees the DELETING record first (the
    # scheduler, or the compute host when it reports ACTIVE) undoes its work.
    server = await boot(client)
    assert (await client.delete(f"/v1/servers/{server['id']}")).status_code == 204

    async def nothing_left() -> bool:
        gone = (await client.get(f"/v1/servers/{server['id']}")).status_code == 404
        running = any(server["id"] in _compute(cloud, c.host)[1].instances for c in cloud.computes)
        return gone and not running and not await _allocations(cloud)

    async with asyncio.timeout(DEADLINE):
        while True:
            if await nothing_left():
                break
            await asyncio.sleep(0.005)
