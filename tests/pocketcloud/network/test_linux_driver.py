"""The ``linux`` network driver, against the real kernel: these tests need root and ``ip``.

Every test builds in a namespace of its own (``pocketcloud-test-<uuid>``) that its teardown
deletes whatever happened, and fails if the namespace outlived the test. State is read back with
``ip -json`` directly, not through the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
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
from pocketcloud.network.drivers.linux import LinuxNetworkDriver, NetworkDriverError
from pocketcloud.network.manager import FlatManager, VlanManager

IP = shutil.which("ip") or "/usr/sbin/ip"
TEST_PREFIX = "pocketcloud-test-"
SERVER = "c0ffee12-3456-4789-abcd-ef0123456789"
TAP, VIF = "tapc0ffee12-34", "vifc0ffee12-34"
MAC = "fa:16:3e:00:00:01"
NO_VLANS = (
    "this kernel has no 802.1Q VLAN support (CONFIG_VLAN_8021Q, module 8021q): the VLAN "
    "layout cannot be built here"
)


async def _run_ip(*args: str) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        IP, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout, stderr


async def _ip_json(*args: str) -> list[Any]:
    code, stdout, stderr = await _run_ip("-json", *args)
    assert code == 0, f"ip -json {' '.join(args)}: {stderr.decode()}"
    return orjson.loads(stdout) if stdout.strip() else []


async def _namespaces() -> set[str]:
    return {entry["name"] for entry in await _ip_json("netns", "list")}


async def _links(namespace: str) -> dict[str, Any]:
    links = await _ip_json("-netns", namespace, "-details", "link", "show")
    return {link["ifname"]: link for link in links}


async def _addresses(namespace: str, device: str) -> list[dict[str, Any]]:
    (entry,) = await _ip_json("-netns", namespace, "address", "show", "dev", device)
    return [info for info in entry["addr_info"] if info["scope"] == "global"]


def _kind(link: dict[str, Any]) -> str | None:
    kind: str | None = link.get("linkinfo", {}).get("info_kind")
    return kind


def _cidrs(addresses: list[dict[str, Any]]) -> set[str]:
    return {f"{info['local']}/{info['prefixlen']}" for info in addresses}


async def _root_state() -> tuple[list[str], list[tuple[str, list[str]]]]:
    links = [link["ifname"] for link in await _ip_json("link", "show")]
    addresses = [
        (entry["ifname"], sorted(f"{a['local']}/{a['prefixlen']}" for a in entry["addr_info"]))
        for entry in await _ip_json("address", "show")
    ]
    return links, addresses


async def _kernel_has_vlans() -> bool:
    probe = f"{TEST_PREFIX}probe-{uuid.uuid4().hex[:8]}"
    assert (await _run_ip("netns", "add", probe))[0] == 0
    try:
        assert (await _run_ip("-netns", probe, "link", "add", "p0", "type", "veth"))[0] == 0
        code, _, _ = await _run_ip(
            "-netns", probe, "link", "add", "link", "p0", "name", "p0.7", "type", "vlan", "id", "7"
        )
        return code == 0
    finally:
        await _run_ip("netns", "del", probe)


class RecordingDriver(LinuxNetworkDriver):
    """The linux driver, keeping every ``ip`` argument list it runs."""

    def __init__(self, *, namespace: str) -> None:
        super().__init__(host="test", namespace=namespace)
        self.commands: list[tuple[str, ...]] = []

    async def _run(self, *args: str) -> bytes:
        self.commands.append(args)
        return await super()._run(*args)


@pytest.fixture
def as_root() -> None:
    """Fail, loudly, where the tests cannot run: they change the kernel's networking."""
    if os.geteuid() != 0:
        pytest.fail(
            "the linux network driver's tests need root (they make network namespaces); "
            "run them as root, as CI does"
        )
    if not os.access(IP, os.X_OK):
        pytest.fail(f"the linux network driver's tests need iproute2's `ip` ({IP}); install it")


@pytest.fixture
async def namespace(as_root: None) -> AsyncIterator[str]:
    """A namespace name of this test's own; deleted after it, and the test fails if it leaked."""
    name = f"{TEST_PREFIX}{uuid.uuid4().hex[:12]}"
    yield name
    leaked = name in await _namespaces()
    if leaked:
        await _run_ip("netns", "del", name)
    assert not leaked, f"namespace {name} outlived its test"
    assert name not in await _namespaces()


@pytest.fixture
async def driver(namespace: str) -> AsyncIterator[RecordingDriver]:
    """A driver on the test's namespace; destroyed after the test."""
    driver = RecordingDriver(namespace=namespace)
    yield driver
    await driver.destroy()


@pytest.fixture
async def vlans(as_root: None) -> None:
    """Skip, saying why, on a kernel without 802.1Q VLANs."""
    if not await _kernel_has_vlans():
        pytest.skip(NO_VLANS)


@pytest.fixture
async def no_vlans(as_root: None) -> None:
    """Skip, saying why, on a kernel with 802.1Q VLANs."""
    if await _kernel_has_vlans():
        pytest.skip("this kernel has 802.1Q VLAN support: there is no missing support to report")


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "namespace"),
    [
        ("compute1", "pocketcloud-compute1"),
        ("node-7.example.org", "pocketcloud-node-7.example.org"),
        ("my host/1", "pocketcloud-my-host-1"),
        ("", "pocketcloud"),
        ("x" * 100, "pocketcloud-" + "x" * 52),
    ],
    ids=["plain", "dotted", "unsafe-characters", "no-host", "long"],
)
def test_the_namespace_is_named_after_the_host(host: str, namespace: str) -> None:
    assert LinuxNetworkDriver(host=host).namespace == namespace


@pytest.mark.parametrize(
    "namespace",
    ["", "bad/ns", "..", "-flag", "with space", "x" * 65],
    ids=["empty", "slash", "dot-dot", "dash-first", "space", "too-long"],
)
def test_a_namespace_name_ip_would_refuse_is_a_value_error(namespace: str) -> None:
    with pytest.raises(ValueError, match="`namespace` must be"):
        LinuxNetworkDriver(host="test", namespace=namespace)


DriverCall = Callable[[LinuxNetworkDriver], Awaitable[object]]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: d.ensure_bridge("b" * 16), "bridge 'bbbb"),
        (lambda d: d.ensure_bridge("bad/name"), "not a valid interface name"),
        (lambda d: d.ensure_bridge("bad name"), "not a valid interface name"),
        (lambda d: d.ensure_bridge(""), "1 to 15 characters"),
        (lambda d: d.ensure_bridge("br0", interface=".."), "interface '..'"),
        (lambda d: d.ensure_bridge("br0", gateway="10.0.0.1"), "with its prefix"),
        (lambda d: d.ensure_bridge("br0", gateway="10.0.0.300/24"), "with its prefix"),
        (lambda d: d.ensure_vlan(0, parent="eth0"), "1 to 4094"),
        (lambda d: d.ensure_vlan(100, parent="eth:0"), "parent 'eth:0'"),
        (lambda d: d.plug("br 0", port=SERVER, address="10.0.0.2", mac=MAC), "bridge 'br 0'"),
        (lambda d: d.plug("br0", port="a/b", address="10.0.0.2", mac=MAC), "port 'tapa/b'"),
        (lambda d: d.plug("br0", port="", address="10.0.0.2", mac=MAC), "port ''"),
        (lambda d: d.plug("br0", port=SERVER, address="10.0.0", mac=MAC), "an IP address"),
        (lambda d: d.plug("br0", port=SERVER, address="10.0.0.2", mac="fa:16"), "mac must"),
        (lambda d: d.unplug("br0", port="x y"), "port 'tapx y'"),
        (lambda d: d.remove_bridge("b" * 16), "bridge 'bbbb"),
        (lambda d: d.remove_vlan(4095, parent="eth0"), "1 to 4094"),
    ],
    ids=[
        "bridge-too-long",
        "bridge-slash",
        "bridge-space",
        "bridge-empty",
        "interface-dot-dot",
        "gateway-without-prefix",
        "gateway-not-an-address",
        "vlan-zero",
        "parent-colon",
        "plug-bridge-space",
        "plug-port-slash",
        "plug-port-empty",
        "plug-bad-address",
        "plug-bad-mac",
        "unplug-port-space",
        "remove-bridge-too-long",
        "remove-vlan-too-high",
    ],
)
async def test_bad_arguments_are_value_errors_before_any_command_runs(
    driver: RecordingDriver, namespace: str, call: DriverCall, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await call(driver)
    assert driver.commands == []
    assert namespace not in await _namespaces()


# --- bridges ----------------------------------------------------------------------------------


async def test_ensure_bridge_makes_a_bridge_that_is_up_with_the_gateway_address(
    driver: RecordingDriver, namespace: str
) -> None:
    await driver.ensure_bridge("br100", gateway="10.0.0.1/24")
    assert namespace in await _namespaces()
    bridge = (await _links(namespace))["br100"]
    assert _kind(bridge) == "bridge"
    assert "UP" in bridge["flags"]
    assert _cidrs(await _addresses(namespace, "br100")) == {"10.0.0.1/24"}


async def test_ensure_bridge_twice_changes_nothing(driver: RecordingDriver, namespace: str) -> None:
    await driver.ensure_bridge("br100", interface="eth1", gateway="10.0.0.1/24")
    links = await _links(namespace)
    await driver.ensure_bridge("br100", interface="eth1", gateway="10.0.0.1/24")
    again = await _links(namespace)
    assert {name: link["ifindex"] for name, link in again.items()} == {
        name: link["ifindex"] for name, link in links.items()
    }
    assert [info["local"] for info in await _addresses(namespace, "br100")] == ["10.0.0.1"]


async def test_ensure_bridge_adds_each_network_gateway_to_a_shared_bridge(
    driver: RecordingDriver, namespace: str
) -> None:
    await driver.ensure_bridge("br100", gateway="10.0.0.1/24")
    await driver.ensure_bridge("br100", gateway="10.0.1.1/24")
    assert _cidrs(await _addresses(namespace, "br100")) == {"10.0.0.1/24", "10.0.1.1/24"}
    assert await driver.addresses() == {
        "lo": [],
        "br100": ["10.0.0.1/24", "10.0.1.1/24"],
    }


async def test_ensure_bridge_makes_a_missing_interface_as_a_stand_in_nic_and_enslaves_it(
    driver: RecordingDriver, namespace: str
) -> None:
    await driver.ensure_bridge("br100", interface="eth1")
    eth1 = (await _links(namespace))["eth1"]
    # A dummy link, or a persistent tap on a kernel built without dummy links.
    assert _kind(eth1) in {"dummy", "tun"}
    assert eth1["master"] == "br100"
    assert "UP" in eth1["flags"]


async def test_ensure_bridge_refuses_a_link_that_is_not_a_bridge(driver: RecordingDriver) -> None:
    await driver.ensure_bridge("br100", interface="eth1")
    with pytest.raises(
        NetworkDriverError, match=r"'eth1' in namespace \S+ is a \w+ link, not a bridge"
    ):
        await driver.ensure_bridge("eth1")


async def test_remove_bridge_deletes_it_and_is_a_no_op_the_second_time(
    driver: RecordingDriver, namespace: str
) -> None:
    await driver.ensure_bridge("br100", gateway="10.0.0.1/24")
    await driver.remove_bridge("br100")
    await driver.remove_bridge("br100")
    assert "br100" not in await _links(namespace)


# --- ports ------------------------------------------------------------------------------------


async def test_plug_gives_the_server_a_port_on_the_bridge_with_its_mac_and_address(
    driver: RecordingDriver, namespace: str
) -> None:
    await driver.ensure_bridge("br100", gateway="10.0.0.1/24")
    for _ in range(2):
        await driver.plug("br100", port=SERVER, address="10.0.0.5", mac=MAC)
        links = await _links(namespace)
        assert links[TAP]["master"] == "br100"
        assert "UP" in links[TAP]["flags"]
        assert links[TAP]["ifalias"] == links[VIF]["ifalias"] == SERVER
        assert links[VIF]["address"] == MAC
        assert "UP" in links[VIF]["flags"]
        (address,) = await _addresses(namespace, VIF)
        assert (address["local"], address["prefixlen"]) == ("10.0.0.5", 24)
        assert address.get("noprefixroute") is True
    routes = await _ip_json("-netns", namespace, "route", "show", "10.0.0.0/24")
    assert [route["dev"] for route in routes] == ["br100"]


async def test_plug_gives_a_host_prefix_when_no_gateway_holds_the_address(
    driver: RecordingDriver, namespace: str
) -> None:
    await driver.ensure_bridge("br100", gateway="10.0.0.1/24")
    await driver.plug("br100", port=SERVER, address="192.168.7.9", mac=MAC)
    assert _cidrs(await _addresses(namespace, VIF)) == {"192.168.7.9/32"}


async def test_plug_refuses_a_second_port_whose_id_starts_the_same(
    driver: RecordingDriver,
) -> None:
    await driver.ensure_bridge("br100", gateway="10.0.0.1/24")
    await driver.plug("br100", port=SERVER, address="10.0.0.5", mac=MAC)
    with pytest.raises(NetworkDriverError, match="first 11 characters"):
        await driver.plug("br100", port=SERVER[:11] + "-other", address="10.0.0.6", mac=MAC)


async def test_plug_needs_the_bridge(driver: RecordingDriver) -> None:
    with pytest.raises(NetworkDriverError, match="bridge 'br100' does not exist"):
        await driver.plug("br100", port=SERVER, address="10.0.0.5", mac=MAC)


async def test_unplug_deletes_both_ends_and_is_a_no_op_the_second_time(
    driver: RecordingDriver, namespace: str
) -> None:
    await driver.ensure_bridge("br100", gateway="10.0.0.1/24")
    await driver.plug("br100", port=SERVER, address="10.0.0.5", mac=MAC)
    await driver.unplug("br100", port=SERVER)
    await driver.unplug("br100", port=SERVER)
    assert set(await _links(namespace)) == {"lo", "br100"}


async def test_unplug_leaves_a_port_that_is_on_another_bridge(
    driver: RecordingDriver, namespace: str
) -> None:
    await driver.ensure_bridge("br100", gateway="10.0.0.1/24")
    await driver.ensure_bridge("br101", gateway="10.0.1.1/24")
    await driver.plug("br100", port=SERVER, address="10.0.0.5", mac=MAC)
    await driver.unplug("br101", port=SERVER)
    assert (await _links(namespace))[TAP]["master"] == "br100"


async def test_removing_what_was_never_made_neither_fails_nor_makes_the_namespace(
    driver: RecordingDriver, namespace: str
) -> None:
    await driver.unplug("br100", port=SERVER)
    await driver.remove_bridge("br100")
    await driver.remove_vlan(100, parent="eth0")
    await driver.destroy()
    assert await driver.links() == {}
    assert await driver.addresses() == {}
    assert namespace not in await _namespaces()


# --- VLANs ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("vlans")
async def test_ensure_vlan_makes_a_vlan_interface_with_its_id_on_its_parent(
    driver: RecordingDriver, namespace: str
) -> None:
    assert await driver.ensure_vlan(100, parent="eth0") == "vlan100"
    links = await _links(namespace)
    assert await driver.ensure_vlan(100, parent="eth0") == "vlan100"
    assert (await _links(namespace))["vlan100"]["ifindex"] == links["vlan100"]["ifindex"]
    vlan = links["vlan100"]
    assert vlan["linkinfo"]["info_kind"] == "vlan"
    assert vlan["linkinfo"]["info_data"]["id"] == 100
    assert vlan["link"] == "eth0"
    assert "UP" in vlan["flags"]
    assert _kind(links["eth0"]) in {"dummy", "tun"}
    await driver.ensure_bridge("br100", interface="vlan100", gateway="10.0.0.1/24")
    assert (await _links(namespace))["vlan100"]["master"] == "br100"


@pytest.mark.usefixtures("vlans")
async def test_ensure_vlan_moves_the_vlan_to_a_new_parent_and_remove_vlan_checks_it(
    driver: RecordingDriver, namespace: str
) -> None:
    await driver.ensure_vlan(100, parent="eth0")
    await driver.ensure_vlan(100, parent="eth1")
    assert (await _links(namespace))["vlan100"]["link"] == "eth1"
    await driver.remove_vlan(100, parent="eth0")
    assert "vlan100" in await _links(namespace)
    await driver.remove_vlan(100, parent="eth1")
    await driver.remove_vlan(100, parent="eth1")
    assert "vlan100" not in await _links(namespace)


@pytest.mark.usefixtures("no_vlans")
async def test_ensure_vlan_names_the_missing_kernel_support(
    driver: RecordingDriver, namespace: str
) -> None:
    with pytest.raises(NetworkDriverError, match=r"no 802\.1Q VLAN support") as caught:
        await driver.ensure_vlan(100, parent="eth0")
    command = ("-netns", namespace, "link", "add", "link", "eth0", "name", "vlan100")
    assert caught.value.command[1:] == (*command, "type", "vlan", "id", "100")
    assert caught.value.stderr


# --- the host is left alone -------------------------------------------------------------------


async def test_every_command_runs_in_the_namespace_and_the_root_namespace_is_unchanged(
    driver: RecordingDriver, namespace: str
) -> None:
    before = await _root_state()
    # eth0 exists in the root namespace on most machines: the driver must make its own.
    await driver.ensure_bridge("br100", interface="eth0", gateway="10.0.0.1/24")
    await driver.plug("br100", port=SERVER, address="10.0.0.5", mac=MAC)
    vlan_outcome: contextlib.AbstractContextManager[object] = (
        contextlib.nullcontext() if await _kernel_has_vlans() else pytest.raises(NetworkDriverError)
    )
    with vlan_outcome:
        await driver.ensure_vlan(100, parent="eth0")
    await driver.unplug("br100", port=SERVER)
    await driver.remove_bridge("br100")
    await driver.destroy()
    assert await _root_state() == before
    for args in driver.commands:
        inside = args[:2] == ("-netns", namespace)
        host_level = args in {
            ("-json", "netns", "list"),
            ("netns", "add", namespace),
            ("netns", "del", namespace),
        }
        assert inside or host_level, f"`ip {' '.join(args)}` ran outside {namespace}"


# --- the network managers through this driver -------------------------------------------------


async def test_flat_manager_lays_every_network_on_one_bridge_in_the_namespace(
    cloud_factory: CloudFactory, namespace: str
) -> None:
    settings = {
        "network_driver": "linux",
        "network_manager": "flat",
        "network_namespace": namespace,
        "flat_interface": "eth1",
    }
    try:
        async with cloud_factory(**settings) as cloud, client_for(cloud) as client:
            assert isinstance(cloud.network, FlatManager)
            assert isinstance(cloud.network.driver, LinuxNetworkDriver)
            assert cloud.network.driver.namespace == namespace
            network = await create_network(client, "10.0.0.0/24", name="a")
            await create_network(client, "10.0.1.0/24", name="b")
            server = await boot(client, "vm", network_id=network["id"])
            server = await wait_for_status(client, server["id"], "ACTIVE")
            links = await _links(namespace)
            assert {name for name, link in links.items() if _kind(link) == "bridge"} == {"br100"}
            assert not any(_kind(link) == "vlan" for link in links.values())
            assert links["eth1"]["master"] == "br100"
            assert _cidrs(await _addresses(namespace, "br100")) == {"10.0.0.1/24", "10.0.1.1/24"}
            tap, vif = "tap" + server["id"][:11], "vif" + server["id"][:11]
            assert links[tap]["master"] == "br100"
            (fixed,) = await cloud.network.list_fixed_ips(
                steward.get_admin_context(), network["id"]
            )
            assert links[vif]["address"] == fixed["mac"]
            assert _cidrs(await _addresses(namespace, vif)) == {f"{server['address']}/24"}
            await client.delete(f"/v1/servers/{server['id']}")
            await wait_for_deleted(client, server["id"])
            assert tap not in await _links(namespace)
        # The namespace outlives the service: starting again finds the layout and re-ensures it.
        async with cloud_factory(**settings):
            assert _cidrs(await _addresses(namespace, "br100")) == {"10.0.0.1/24", "10.0.1.1/24"}
    finally:
        await LinuxNetworkDriver(namespace=namespace).destroy()
    assert namespace not in await _namespaces()


@pytest.mark.usefixtures("vlans")
async def test_vlan_manager_gives_each_network_a_vlan_and_bridge_in_the_namespace(
    cloud_factory: CloudFactory, namespace: str
) -> None:
    settings = {
        "network_driver": "linux",
        "network_manager": "vlan",
        "network_namespace": namespace,
    }
    try:
        async with cloud_factory(**settings) as cloud, client_for(cloud) as client:
            assert isinstance(cloud.network, VlanManager)
            first = await create_network(client, "10.0.0.0/24", name="a")
            await create_network(client, "10.0.1.0/24", name="b")
            server = await boot(client, "vm", network_id=first["id"])
            server = await wait_for_status(client, server["id"], "ACTIVE")
            links = await _links(namespace)
            bridges = {name for name, link in links.items() if _kind(link) == "bridge"}
            assert bridges == {"br100", "br101"}
            for vlan, bridge, gateway in (
                (100, "br100", "10.0.0.1/24"),
                (101, "br101", "10.0.1.1/24"),
            ):
                interface = links[f"vlan{vlan}"]
                assert interface["linkinfo"]["info_data"]["id"] == vlan
                assert interface["link"] == "eth0"
                assert interface["master"] == bridge
                assert _cidrs(await _addresses(namespace, bridge)) == {gateway}
            assert links["tap" + server["id"][:11]]["master"] == "br100"
    finally:
        await LinuxNetworkDriver(namespace=namespace).destroy()
    assert namespace not in await _namespaces()
