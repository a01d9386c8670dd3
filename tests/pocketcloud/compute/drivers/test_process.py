from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.pocketcloud.flows import (
    DEADLINE,
    CloudFactory,
    boot,
    client_for,
    create_network,
    wait_for_deleted,
    wait_for_status,
)

import steward
from pocketcloud.compute.driver import ComputeDriver, Instance
from pocketcloud.compute.drivers.process import ProcessComputeDriver
from pocketcloud.compute.manager import SYNC_POWER_STATE_INTERVAL
from pocketcloud.objects import NetworkInfo, PowerState
from steward.testing import FakeClock

NETWORK = NetworkInfo(
    network_id="n",
    network_name="net",
    address="10.0.0.2",
    cidr="10.0.0.0/24",
    gateway="10.0.0.1",
    bridge="br100",
    mac="fa:16:3e:00:00:01",
)


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[ProcessComputeDriver]:
    process_driver = ProcessComputeDriver(host="compute1", data_dir=tmp_path, memory_mb=2048)
    try:
        yield process_driver
    finally:
        await process_driver.cleanup_host()


def _pid(driver: ProcessComputeDriver, server_id: str) -> int:
    return int((driver.instance_dir(server_id) / "guest.pid").read_text())


async def _until_power_state(driver: ComputeDriver, instance: Instance, state: PowerState) -> None:
    async with asyncio.timeout(DEADLINE):
        while True:
            if await driver.get_power_state(instance) == state:
                return
            await asyncio.sleep(0.01)


def test_the_process_driver_is_a_compute_driver(driver: ProcessComputeDriver) -> None:
    assert isinstance(driver, ComputeDriver)
    resources = driver.get_available_resource()
    assert resources.memory_mb == 2048
    assert resources.disk_gb > 0
    assert resources.hypervisor_type == "process"


async def test_spawn_runs_a_guest_whose_console_is_a_file(driver: ProcessComputeDriver) -> None:
    instance = Instance("s-1", "web", 256, 1, NETWORK)
    await driver.spawn(instance)
    assert await driver.get_power_state(instance) == PowerState.RUNNING
    console = await driver.get_console_output(instance)
    assert "pocketcloud guest web (s-1) booting" in console
    assert "eth0: 10.0.0.2" in console
    assert driver.console_path("s-1").read_text() == console


async def test_reboot_starts_a_new_guest_and_keeps_the_console(
    driver: ProcessComputeDriver,
) -> None:
    instance = Instance("s-1", "web", 256, 1)
    await driver.spawn(instance)
    first = _pid(driver, "s-1")
    await driver.reboot(instance)
    assert _pid(driver, "s-1") != first
    assert await driver.get_power_state(instance) == PowerState.RUNNING
    console = await driver.get_console_output(instance)
    assert console.count("booting") == 2
    assert "received SIGTERM; powering off" in console


async def test_destroy_stops_the_guest_and_removes_its_files(
    driver: ProcessComputeDriver,
) -> None:
    instance = Instance("s-1", "web", 256, 1)
    await driver.spawn(instance)
    pid = _pid(driver, "s-1")
    await driver.destroy(instance)
    assert not driver.instance_dir("s-1").exists()
    assert await driver.get_power_state(instance) == PowerState.NOSTATE
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    await driver.destroy(instance)  # idempotent


async def test_a_killed_guest_is_shutdown(driver: ProcessComputeDriver) -> None:
    instance = Instance("s-1", "web", 256, 1)
    await driver.spawn(instance)
    os.kill(_pid(driver, "s-1"), signal.SIGKILL)
    await _until_power_state(driver, instance, PowerState.SHUTDOWN)


async def test_cleanup_host_stops_every_guest(driver: ProcessComputeDriver) -> None:
    instances = [Instance(f"s-{n}", f"vm{n}", 256, 1) for n in range(2)]
    for instance in instances:
        await driver.spawn(instance)
    pids = [_pid(driver, instance.server_id) for instance in instances]
    await driver.cleanup_host()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize("server_id", ["../etc", "", ".hidden", "a/b"])
def test_server_ids_that_are_not_plain_names_are_refused(
    driver: ProcessComputeDriver, server_id: str
) -> None:
    with pytest.raises(ValueError, match="plain name"):
        driver.instance_dir(server_id)


async def test_a_guest_killed_behind_pocketcloud_s_back_is_marked_shutoff_by_the_periodic_task(
    cloud_factory: CloudFactory, fake_clock: FakeClock
) -> None:
    async with (
        cloud_factory(compute_driver="process", compute_hosts=("compute1",)) as cloud,
        client_for(cloud) as client,
    ):
        await create_network(client)
        server = await wait_for_status(client, (await boot(client))["id"], "ACTIVE")
        compute = cloud.computes[0]
        assert isinstance(compute.driver, ProcessComputeDriver)
        context = steward.get_admin_context()
        await compute.periodic_tasks(context)
        os.kill(_pid(compute.driver, server["id"]), signal.SIGKILL)
        instance = Instance(server["id"], "vm", 512, 1)
        await _until_power_state(compute.driver, instance, PowerState.SHUTDOWN)
        fake_clock.advance(SYNC_POWER_STATE_INTERVAL)
        await compute.periodic_tasks(context, raise_on_error=True)
        stopped = await wait_for_status(client, server["id"], "SHUTOFF")
        assert stopped["power_state"] == "shutdown"
        assert compute.notifier.sent[-1].event_type == "compute.instance.power_off"
        await client.post(f"/v1/servers/{server['id']}/reboot")
        await wait_for_status(client, server["id"], "ACTIVE")
        console = (await client.get(f"/v1/servers/{server['id']}/console")).json()["output"]
        assert console.count("booting") == 2
        assert (await client.delete(f"/v1/servers/{server['id']}")).status_code == 204
        await wait_for_deleted(client, server["id"])
        assert not compute.driver.instance_dir(server["id"]).exists()


async def test_guests_that_ran_when_the_host_stopped_are_resumed_when_it_starts(
    cloud_factory: CloudFactory,
) -> None:
    async with (
        cloud_factory(compute_driver="process", compute_hosts=("compute1",)) as cloud,
        client_for(cloud) as client,
    ):
        server = await wait_for_status(client, (await boot(client))["id"], "ACTIVE")
    async with (
        cloud_factory(compute_driver="process", compute_hosts=("compute1",)) as cloud,
        client_for(cloud) as client,
    ):
        compute = cloud.computes[0]
        assert isinstance(compute.driver, ProcessComputeDriver)
        instance = Instance(server["id"], "vm", 512, 1)
        assert await compute.driver.get_power_state(instance) == PowerState.RUNNING
        console = (await client.get(f"/v1/servers/{server['id']}/console")).json()["output"]
        assert console.count("booting") == 2


async def test_a_guest_exits_when_its_compute_process_is_gone(tmp_path: Path) -> None:
    # A guest started by a short-lived parent notices the parent is gone and powers off.
    console = tmp_path / "console.log"
    script = (
        "import os, subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-m', 'pocketcloud.compute.guest', '--server-id', "
        "'orphan', '--name', 'orphan', '--parent', str(os.getpid())], "
        f"stdout=open({str(console)!r}, 'w'))\n"
    )
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    assert await parent.wait() == 0
    async with asyncio.timeout(DEADLINE):
        while True:
            if console.exists() and "host went away; powering off" in console.read_text():
                break
            await asyncio.sleep(0.05)
