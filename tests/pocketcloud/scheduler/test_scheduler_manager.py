from __future__ import annotations

import httpx
import pytest
from tests.pocketcloud.flows import CloudFactory, boot, client_for, wait_for_status

import steward
from pocketcloud.allinone import AllInOne
from pocketcloud.errors import NoValidHost
from pocketcloud.objects import RequestSpec
from pocketcloud.scheduler.rpcapi import SchedulerAPI


async def test_no_valid_host_puts_the_server_in_error_with_the_reason_as_fault(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    server = await boot(client, ram_mb=8192)  # hosts have 4096 MB
    failed = await wait_for_status(client, server["id"], "ERROR")
    assert failed["host"] is None
    assert failed["fault"]["message"] == (
        "No valid host was found: RamFilter left none of 2 compute hosts "
        "(it looks for 8192 MB of free RAM)"
    )
    assert failed["fault"]["created_at"] is not None
    events = [sent.event_type for sent in cloud.scheduler.notifier.sent]
    assert events == ["scheduler.select_destinations.error"]


async def test_a_zone_nobody_is_in_is_no_valid_host(client: httpx.AsyncClient) -> None:
    server = await boot(client, availability_zone="elsewhere")
    failed = await wait_for_status(client, server["id"], "ERROR")
    assert "AvailabilityZoneFilter" in failed["fault"]["message"]


async def test_claims_count_before_hosts_report_so_a_full_host_is_skipped(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    ids = [(await boot(client, f"vm{n}", ram_mb=3072))["id"] for n in range(3)]
    servers = [await wait_for_status(client, i, "ACTIVE", "ERROR") for i in ids]
    assert sorted(server["status"] for server in servers) == ["ACTIVE", "ACTIVE", "ERROR"]
    assert sorted(server["host"] for server in servers if server["host"]) == [
        "compute1",
        "compute2",
    ]


async def test_a_disabled_compute_service_gets_no_servers(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    await cloud.registry.set_disabled("compute1", "pocketcloud-compute", True, reason="repair")
    ids = [(await boot(client, f"vm{n}"))["id"] for n in range(3)]
    for server_id in ids:
        assert (await wait_for_status(client, server_id, "ACTIVE"))["host"] == "compute2"


async def test_select_destinations_over_rpc_claims_once_per_server(cloud: AllInOne) -> None:
    scheduler = SchedulerAPI(cloud.transport)
    context = steward.get_admin_context()
    spec = RequestSpec(server_id="s1", ram_mb=1024, disk_gb=1)
    first = await scheduler.select_destinations(context, spec)
    again = await scheduler.select_destinations(context, spec)
    assert first == again
    assert first[0].availability_zone == "nova"
    with pytest.raises(NoValidHost, match="RamFilter"):
        await scheduler.select_destinations(
            context, RequestSpec(server_id="s2", ram_mb=99999, disk_gb=1)
        )


async def test_a_negative_ram_multiplier_stacks_servers_on_one_host(
    cloud_factory: CloudFactory,
) -> None:
    async with cloud_factory(ram_weight_multiplier=-1.0) as cloud, client_for(cloud) as client:
        ids = [(await boot(client, f"vm{n}"))["id"] for n in range(3)]
        hosts = {(await wait_for_status(client, i, "ACTIVE"))["host"] for i in ids}
        assert hosts == {"compute1"}
