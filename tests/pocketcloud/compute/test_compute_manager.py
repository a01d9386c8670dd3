from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from tests.pocketcloud.flows import DEADLINE, boot, create_network, wait_for_status

import steward
from pocketcloud.allinone import AllInOne
from pocketcloud.compute.driver import Instance
from pocketcloud.compute.drivers.fake import FakeComputeDriver
from pocketcloud.compute.manager import SYNC_POWER_STATE_INTERVAL, ComputeManager
from pocketcloud.compute.rpcapi import ComputeAPI
from pocketcloud.compute.tables import compute_nodes, instances
from pocketcloud.errors import ServiceUnavailable
from pocketcloud.objects import InstanceSpec, PowerState, ServerChanges, ServerStatus
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


class _GatedSpawns:
    """Holds every spawn of the cloud's fake drivers until :attr:`gate` is set."""

    def __init__(self, cloud: AllInOne) -> None:
        self.gate = asyncio.Event()
        self.entered: list[str] = []
        self.changed = asyncio.Condition()
        for compute in cloud.computes:
            driver = _compute(cloud, compute.host)[1]
            driver.spawn = self._gated(compute.host, driver.spawn)  # type: ignore[method-assign,assignment]

    def _gated(
        self, host: str, spawn: Callable[[Instance], Coroutine[Any, Any, None]]
    ) -> Callable[[Instance], Coroutine[Any, Any, None]]:
        async def gated(instance: Instance) -> None:
            async with self.changed:
                self.entered.append(host)
                self.changed.notify_all()
            await self.gate.wait()
            await spawn(instance)

        return gated

    async def wait_entered(self, count: int) -> str:
        """Wait until ``count`` spawns have begun; return the host of the last one."""
        async with asyncio.timeout(DEADLINE), self.changed:
            await self.changed.wait_for(lambda: len(self.entered) >= count)
        return self.entered[-1]


async def test_a_build_cut_off_by_a_stopping_service_is_undone_and_built_again_on_redelivery(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    network = await create_network(client)
    spawns = _GatedSpawns(cloud)
    server = await boot(client, network_id=network["id"])
    host = await spawns.wait_entered(1)
    context = steward.get_admin_context()
    first = await cloud.network.list_fixed_ips(context, network["id"])
    assert [ip["server_id"] for ip in first] == [server["id"]]
    # What a stopping service does to requests still running after its grace period: cancel
    # them, and give their messages back to the queue.
    service = next(s for s in cloud.services if s.manager is _compute(cloud, host)[0])
    assert service.rpcserver is not None
    await service.rpcserver.wait(grace_period=0)
    # The cut-off build was undone (its address released) and the redelivered request builds
    # the server afresh, on the same host (the message went back to that host's queue).
    assert await spawns.wait_entered(2) == host
    assert (await client.get(f"/v1/servers/{server['id']}")).json()["status"] == "BUILDING"
    assert await _allocations(cloud) == [server["id"]]  # the claim stays for the rebuild
    spawns.gate.set()
    active = await wait_for_status(client, server["id"], "ACTIVE")
    assert active["host"] == host
    fixed = await cloud.network.list_fixed_ips(context, network["id"])
    assert [(ip["server_id"], ip["address"]) for ip in fixed] == [(server["id"], active["address"])]
    compute, driver = _compute(cloud, host)
    assert list(driver.instances) == [server["id"]]
    assert await _allocations(cloud) == [server["id"]]
    events = [sent.event_type for sent in compute.notifier.sent]
    assert events == [
        "compute.instance.create.start",
        "compute.instance.create.start",
        "compute.instance.create.end",
    ]


async def test_a_request_delivered_again_for_a_built_server_does_not_build_it_twice(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    server = await wait_for_status(client, (await boot(client))["id"], "ACTIVE")
    compute, driver = _compute(cloud, server["host"])
    spec = InstanceSpec(server_id=server["id"], name=server["name"], ram_mb=512, disk_gb=0)
    await compute.build_and_run_instance(steward.get_admin_context(), spec)
    assert driver.instances[server["id"]].boots == 1
    assert (await client.get(f"/v1/servers/{server['id']}")).json()["status"] == "ACTIVE"
    assert [sent.event_type for sent in compute.notifier.sent] == [
        "compute.instance.create.start",
        "compute.instance.create.end",
    ]


async def test_a_half_built_server_left_by_a_killed_process_is_built_again(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    # A process killed between recording the instance and spawning it leaves a NOSTATE row
    # and an unacknowledged request, which the broker delivers again.
    spawns = _GatedSpawns(cloud)
    server = await boot(client)
    host = await spawns.wait_entered(1)
    compute, driver = _compute(cloud, host)
    spec = InstanceSpec(server_id=server["id"], name="vm", ram_mb=512, disk_gb=0)
    spawns.gate.set()
    await wait_for_status(client, server["id"], "ACTIVE")
    async with cloud.db.session() as session:
        await session.execute(
            sa.update(instances)
            .where(instances.c.server_id == server["id"])
            .values(power_state=PowerState.NOSTATE)
        )
    await cloud.api.update_server(
        steward.get_admin_context(),
        server["id"],
        ServerChanges(status=ServerStatus.BUILDING, expected_status=(ServerStatus.ACTIVE,)),
    )
    await compute.build_and_run_instance(steward.get_admin_context(), spec)
    assert (await client.get(f"/v1/servers/{server['id']}")).json()["status"] == "ACTIVE"
    assert list(driver.instances) == [server["id"]]
    assert len(spawns.entered) == 2
    assert await _allocations(cloud) == [server["id"]]


async def test_a_request_delivered_again_for_a_server_deleted_meanwhile_removes_the_guest(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    # The host went down after building but before its report; meanwhile the server was given
    # up (ERROR by the build timeout, or deleted). The redelivered request must not keep a guest.
    spawns = _GatedSpawns(cloud)
    server = await boot(client)
    host = await spawns.wait_entered(1)
    spawns.gate.set()
    await wait_for_status(client, server["id"], "ACTIVE")
    await cloud.api.update_server(
        steward.get_admin_context(),
        server["id"],
        ServerChanges(
            status=ServerStatus.ERROR, fault="gave up", expected_status=(ServerStatus.ACTIVE,)
        ),
    )
    compute, driver = _compute(cloud, host)
    spec = InstanceSpec(server_id=server["id"], name="vm", ram_mb=512, disk_gb=0)
    await compute.build_and_run_instance(steward.get_admin_context(), spec)
    assert driver.instances == {}
    assert await _allocations(cloud) == []
    assert (await client.get(f"/v1/servers/{server['id']}")).json()["status"] == "ERROR"


async def test_a_delete_that_read_the_server_before_its_host_reported_still_removes_it(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    # The interleaving that left a guest running: the delete reads the server before its host is
    # recorded, the build then finishes (ACTIVE on its host), and only then does the delete mark
    # it DELETING. The read is made stale on purpose: the row as it was before the scheduler
    # recorded the host.
    gate = _GatedSpawns(cloud)
    server = await boot(client)
    await gate.wait_entered(1)
    cloud_api = cloud.api.cloud
    assert cloud_api is not None
    read = cloud_api._server

    async def stale_read_then_the_build_finishes(context: Any, server_id: str) -> Any:
        del cloud_api._server  # this read only: the GETs below read as usual
        row = dict(await read(context, server_id))
        assert row["status"] == ServerStatus.BUILDING
        row["host"] = None
        gate.gate.set()
        await wait_for_status(client, server_id, "ACTIVE")
        return row

    cloud_api._server = stale_read_then_the_build_finishes  # type: ignore[method-assign]
    assert (await client.delete(f"/v1/servers/{server['id']}")).status_code == 204

    async def nothing_left() -> bool:
        running = any(server["id"] in _compute(cloud, c.host)[1].instances for c in cloud.computes)
        return not running and not await _allocations(cloud)

    async with asyncio.timeout(DEADLINE):
        while not await nothing_left():  # noqa: ASYNC110 - the drivers have no event
            await asyncio.sleep(0.005)


async def test_a_server_on_a_host_that_stopped_gracefully_is_deleted_by_that_host_not_here(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    # A graceful stop marks the compute service down at once; a delete then must not take the
    # server for lost (a local delete leaves its guest running when the host comes back): the
    # terminate request goes to the host's queue, and the host (here still consuming, as it will
    # when it is back) removes the guest.
    server = await wait_for_status(client, (await boot(client))["id"], "ACTIVE")
    host = server["host"]
    record = await cloud.registry.get(host, "pocketcloud-compute")
    assert record is not None
    await cloud.registry.stopped(record)  # what the host's graceful stop wrote
    record = await cloud.registry.get(host, "pocketcloud-compute")
    assert record is not None
    assert not await cloud.registry.is_up(record)
    assert (await client.delete(f"/v1/servers/{server['id']}")).status_code == 204

    async def removed_by_its_host() -> bool:
        gone = (await client.get(f"/v1/servers/{server['id']}")).status_code == 404
        guest = server["id"] in _compute(cloud, host)[1].instances
        return gone and not guest and not await _allocations(cloud)

    async with asyncio.timeout(DEADLINE):
        while not await removed_by_its_host():  # noqa: ASYNC110 - the drivers have no event
            await asyncio.sleep(0.005)


async def _on_a_host_without_a_queue(cloud: AllInOne, client: httpx.AsyncClient) -> str:
    """Boot a server, then move it to host 'ghost': registered and up, but consuming nothing."""
    server = await wait_for_status(client, (await boot(client))["id"], "ACTIVE")
    ghost = await cloud.registry.create_or_update("ghost", "pocketcloud-compute", "compute")
    await cloud.registry.heartbeat(ghost)
    assert cloud.api.cloud is not None
    await cloud.api.cloud.store.update(server["id"], ServerChanges(host="ghost"))
    return str(server["id"])


async def test_a_reboot_nothing_can_take_is_a_503_and_the_server_keeps_its_status(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    server_id = await _on_a_host_without_a_queue(cloud, client)
    response = await client.post(f"/v1/servers/{server_id}/reboot")
    assert response.status_code == 503, response.text
    assert "no server listens on 'compute.ghost'" in response.json()["error"]["message"]
    assert (await client.get(f"/v1/servers/{server_id}")).json()["status"] == "ACTIVE"


async def test_a_delete_nothing_can_take_is_done_here(
    cloud: AllInOne, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_id = await _on_a_host_without_a_queue(cloud, client)
    # The claim is given back by a cast to the scheduler (release_allocation): it is gone once
    # the scheduler has handled it, not necessarily when the DELETE returns.
    released = asyncio.Event()
    release = cloud.scheduler.release_allocation

    async def release_allocation(context: steward.RequestContext, server_id: str) -> None:
        await release(context, server_id)
        released.set()

    monkeypatch.setattr(cloud.scheduler, "release_allocation", release_allocation)
    assert (await client.delete(f"/v1/servers/{server_id}")).status_code == 204
    assert (await client.get(f"/v1/servers/{server_id}")).status_code == 404
    async with asyncio.timeout(DEADLINE):
        await released.wait()
    assert server_id not in await _allocations(cloud)
