from __future__ import annotations

import httpx
from tests.pocketcloud.flows import (
    boot,
    create_network,
    wait_for_deleted,
    wait_for_status,
)

import steward
from pocketcloud.allinone import AllInOne
from pocketcloud.compute.drivers.fake import FakeComputeDriver


def _driver_of(cloud: AllInOne, host: str) -> FakeComputeDriver:
    compute = next(manager for manager in cloud.computes if manager.host == host)
    assert isinstance(compute.driver, FakeComputeDriver)
    return compute.driver


async def test_a_booted_server_goes_active_on_a_host_with_an_address(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    network = await create_network(client)
    created = await boot(client, "web")
    assert created["status"] == "BUILDING"
    assert created["network_id"] == network["id"]
    server = await wait_for_status(client, created["id"], "ACTIVE")
    assert server["host"] in {"compute1", "compute2"}
    assert server["address"] == "10.0.0.2"
    assert server["power_state"] == "running"
    assert server["launched_at"] is not None
    assert server["fault"] is None
    assert created["id"] in _driver_of(cloud, server["host"]).instances


async def test_servers_are_listed_and_spread_over_hosts_by_free_ram(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    await create_network(client)
    ids = [(await boot(client, f"vm{number}", ram_mb=1024))["id"] for number in range(4)]
    servers = [await wait_for_status(client, server_id, "ACTIVE") for server_id in ids]
    listed = (await client.get("/v1/servers")).json()
    assert [server["id"] for server in listed] == ids
    hosts = [server["host"] for server in servers]
    assert sorted(hosts) == ["compute1", "compute1", "compute2", "compute2"]
    assert len({server["address"] for server in servers}) == 4


async def test_boot_sends_create_start_and_end_notifications(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    server = await wait_for_status(client, (await boot(client))["id"], "ACTIVE")
    compute = next(manager for manager in cloud.computes if manager.host == server["host"])
    events = [sent.event_type for sent in compute.notifier.sent]
    assert events[:2] == ["compute.instance.create.start", "compute.instance.create.end"]
    assert compute.notifier.sent[0].publisher_id == f"compute.{server['host']}"
    assert compute.notifier.sent[1].payload["server_id"] == server["id"]


async def test_reboot_restarts_the_guest_and_the_server_is_active_again(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    server = await wait_for_status(client, (await boot(client))["id"], "ACTIVE")
    response = await client.post(f"/v1/servers/{server['id']}/reboot")
    assert response.status_code == 202
    assert response.json()["status"] == "REBOOTING"
    await wait_for_status(client, server["id"], "ACTIVE")
    assert _driver_of(cloud, server["host"]).instances[server["id"]].boots == 2


async def test_delete_removes_the_guest_and_releases_the_address(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    network = await create_network(client)
    first = await wait_for_status(client, (await boot(client, "first"))["id"], "ACTIVE")
    response = await client.delete(f"/v1/servers/{first['id']}")
    assert response.status_code == 204
    await wait_for_deleted(client, first["id"])
    assert first["id"] not in _driver_of(cloud, first["host"]).instances
    assert await cloud.network.list_fixed_ips(_context(), network["id"]) == []
    second = await wait_for_status(client, (await boot(client, "second"))["id"], "ACTIVE")
    assert second["address"] == first["address"]
    assert [server["id"] for server in (await client.get("/v1/servers")).json()] == [second["id"]]


async def test_services_are_listed_up(cloud: AllInOne, client: httpx.AsyncClient) -> None:
    services = (await client.get("/v1/services")).json()
    assert sorted(
        (s["binary"], s["host"]) for s in services if s["binary"].endswith("compute")
    ) == [
        ("pocketcloud-compute", "compute1"),
        ("pocketcloud-compute", "compute2"),
    ]
    assert {s["binary"] for s in services} == {
        "pocketcloud-api",
        "pocketcloud-network",
        "pocketcloud-volume",
        "pocketcloud-scheduler",
        "pocketcloud-compute",
    }
    assert {s["state"] for s in services} == {"up"}
    assert {s["status"] for s in services} == {"enabled"}


def _context() -> steward.RequestContext:
    return steward.get_admin_context()


async def test_a_server_whose_host_is_down_is_deleted_by_the_api_itself(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    network = await create_network(client)
    server = await wait_for_status(client, (await boot(client))["id"], "ACTIVE")
    await cloud.registry.set_forced_down(server["host"], "pocketcloud-compute", True)
    assert (await client.delete(f"/v1/servers/{server['id']}")).status_code == 204
    assert (await client.get(f"/v1/servers/{server['id']}")).status_code == 404
    assert await cloud.network.list_fixed_ips(_context(), network["id"]) == []
