from __future__ import annotations

import httpx
import pytest
from tests.pocketcloud.flows import (
    CloudFactory,
    boot,
    client_for,
    create_network,
    wait_for_deleted,
    wait_for_status,
)

import steward
from pocketcloud.allinone import AllInOne
from pocketcloud.network.drivers.fake import FakeBridge, FakeNetworkDriver
from pocketcloud.network.manager import FlatManager, VlanManager


def _driver(cloud: AllInOne) -> FakeNetworkDriver:
    assert isinstance(cloud.network.driver, FakeNetworkDriver)
    return cloud.network.driver


async def test_flat_manager_puts_every_network_on_one_shared_bridge(
    cloud_factory: CloudFactory,
) -> None:
    async with cloud_factory(network_manager="flat") as cloud, client_for(cloud) as client:
        assert isinstance(cloud.network, FlatManager)
        first = await create_network(client, "10.0.0.0/24", name="a")
        second = await create_network(client, "10.0.1.0/24", name="b")
        assert (first["bridge"], first["vlan"]) == ("br100", None)
        assert (second["bridge"], second["vlan"]) == ("br100", None)
        driver = _driver(cloud)
        assert driver.vlans == {}
        assert set(driver.bridges) == {"br100"}
        assert driver.bridges["br100"].addresses == {"10.0.0.1/24", "10.0.1.1/24"}
        assert driver.bridges["br100"].interfaces == set()


async def test_vlan_manager_gives_each_network_a_vlan_and_bridge_of_its_own(
    cloud_factory: CloudFactory,
) -> None:
    async with cloud_factory(network_manager="vlan") as cloud, client_for(cloud) as client:
        assert isinstance(cloud.network, VlanManager)
        first = await create_network(client, "10.0.0.0/24", name="a")
        second = await create_network(client, "10.0.1.0/24", name="b")
        chosen = await create_network(client, "10.0.2.0/24", name="c", vlan=250)
        assert (first["bridge"], first["vlan"]) == ("br100", 100)
        assert (second["bridge"], second["vlan"]) == ("br101", 101)
        assert (chosen["bridge"], chosen["vlan"]) == ("br250", 250)
        driver = _driver(cloud)
        assert driver.vlans == {
            "vlan100": (100, "eth0"),
            "vlan101": (101, "eth0"),
            "vlan250": (250, "eth0"),
        }
        assert driver.bridges == {
            "br100": FakeBridge(interfaces={"vlan100"}, addresses={"10.0.0.1/24"}),
            "br101": FakeBridge(interfaces={"vlan101"}, addresses={"10.0.1.1/24"}),
            "br250": FakeBridge(interfaces={"vlan250"}, addresses={"10.0.2.1/24"}),
        }
        response = await client.post(
            "/v1/networks", json={"name": "d", "cidr": "10.0.3.0/24", "vlan": 101}
        )
        assert response.status_code == 409
        assert "VLAN 101 is taken" in response.json()["error"]["message"]


@pytest.mark.parametrize("manager", ["flat", "vlan"])
async def test_servers_get_fixed_ips_in_order_on_the_network_bridge(
    cloud_factory: CloudFactory, manager: str
) -> None:
    async with cloud_factory(network_manager=manager) as cloud, client_for(cloud) as client:
        network = await create_network(client, "10.9.0.0/29")
        ids = [(await boot(client, f"vm{n}"))["id"] for n in range(3)]
        servers = [await wait_for_status(client, i, "ACTIVE") for i in ids]
        assert sorted(s["address"] for s in servers) == ["10.9.0.2", "10.9.0.3", "10.9.0.4"]
        ports = _driver(cloud).bridges[network["bridge"]].ports
        assert {port: address for port, (address, _) in ports.items()} == {
            s["id"]: s["address"] for s in servers
        }
        allocated = await cloud.network.list_fixed_ips(steward.get_admin_context(), network["id"])
        assert all(ip["mac"].startswith("fa:16:3e:") for ip in allocated)


async def test_the_network_re_lays_out_its_networks_when_it_starts(
    cloud_factory: CloudFactory,
) -> None:
    async with cloud_factory(network_manager="vlan") as cloud, client_for(cloud) as client:
        await create_network(client, "10.0.0.0/24")
    async with cloud_factory(network_manager="vlan") as cloud:
        assert set(_driver(cloud).bridges) == {"br100"}
        assert set(_driver(cloud).vlans) == {"vlan100"}


async def test_a_full_network_puts_the_next_server_in_error(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    await create_network(client, "10.9.0.0/29")  # a gateway and five addresses
    ids = [(await boot(client, f"vm{n}", ram_mb=128))["id"] for n in range(6)]
    servers = [await wait_for_status(client, i, "ACTIVE", "ERROR") for i in ids]
    failed = [s for s in servers if s["status"] == "ERROR"]
    assert len(failed) == 1
    assert failed[0]["fault"]["message"].endswith("network 10.9.0.0/29 has no free address left")
    active = next(s for s in servers if s["status"] == "ACTIVE")
    await client.delete(f"/v1/servers/{active['id']}")
    await wait_for_deleted(client, active["id"])
    again = await wait_for_status(client, (await boot(client, "again"))["id"], "ACTIVE")
    assert again["address"] == active["address"]


async def test_a_network_the_driver_cannot_build_is_refused_and_not_kept(
    cloud: AllInOne, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_vlans(vlan: int, *, parent: str) -> str:
        raise OSError("this kernel has no 802.1Q support")

    async def broken_bridge(bridge: str, **options: object) -> None:
        raise OSError("RTNETLINK answers: Operation not permitted")

    monkeypatch.setattr(_driver(cloud), "ensure_vlan", no_vlans)
    monkeypatch.setattr(_driver(cloud), "ensure_bridge", broken_bridge)
    response = await client.post("/v1/networks", json={"name": "bad", "cidr": "10.5.0.0/24"})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "NetworkSetupFailed"
    message = error["message"]
    assert message.startswith("the flat network 'bad' could not be built on host ")
    assert message.endswith("(OSError; the network service's log says why); it was not created")
    assert "RTNETLINK" not in message  # the host's internals stay in the log
    assert (await client.get("/v1/networks")).json() == []
    monkeypatch.undo()
    # The same range is free again once the host can build it.
    assert (await create_network(client, "10.5.0.0/24", name="bad"))["name"] == "bad"
