from __future__ import annotations

import httpx
from tests.pocketcloud.flows import (
    CloudFactory,
    boot,
    client_for,
    wait_for_deleted,
    wait_for_status,
)

import steward
from pocketcloud.allinone import AllInOne
from pocketcloud.compute.drivers.fake import FakeComputeDriver
from pocketcloud.volume.drivers.file import FileVolumeDriver
from pocketcloud.volume.manager import AUDIT_INTERVAL, UsageAudit
from steward.testing import FakeClock


async def _volume(
    client: httpx.AsyncClient, name: str = "data", size_gb: int = 2
) -> dict[str, str]:
    response = await client.post("/v1/volumes", json={"name": name, "size_gb": size_gb})
    assert response.status_code == 201, response.text
    volume: dict[str, str] = response.json()
    return volume


def _last_audit(cloud: AllInOne) -> UsageAudit | None:
    return cloud.volume.last_audit


async def test_volumes_are_created_listed_and_deleted(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    volume = await _volume(client)
    assert volume["status"] == "available"
    assert volume["host"] == cloud.volume.host
    assert [v["id"] for v in (await client.get("/v1/volumes")).json()] == [volume["id"]]
    assert (await client.delete(f"/v1/volumes/{volume['id']}")).status_code == 204
    assert (await client.get("/v1/volumes")).json() == []
    assert (await client.get(f"/v1/volumes/{volume['id']}")).status_code == 404


async def test_attach_and_detach_are_recorded_by_the_volume_and_the_compute_host(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    server = await wait_for_status(client, (await boot(client))["id"], "ACTIVE")
    volume = await _volume(client)
    response = await client.post(
        f"/v1/volumes/{volume['id']}/attach", json={"server_id": server["id"]}
    )
    assert response.status_code == 200, response.text
    attached = response.json()
    assert attached["status"] == "in-use"
    assert attached["server_id"] == server["id"]
    assert attached["attached_host"] == server["host"]
    compute = next(c for c in cloud.computes if c.host == server["host"])
    assert isinstance(compute.driver, FakeComputeDriver)
    assert set(compute.driver.instances[server["id"]].volumes) == {volume["id"]}

    response = await client.delete(f"/v1/volumes/{volume['id']}")
    assert response.status_code == 409
    assert "detach it from server" in response.json()["error"]["message"]
    other = await wait_for_status(client, (await boot(client, "other"))["id"], "ACTIVE")
    response = await client.post(
        f"/v1/volumes/{volume['id']}/attach", json={"server_id": other["id"]}
    )
    assert response.status_code == 409
    assert f"attached to server {server['id']}" in response.json()["error"]["message"]

    detached = (await client.post(f"/v1/volumes/{volume['id']}/detach")).json()
    assert detached["status"] == "available"
    assert detached["server_id"] is None
    assert compute.driver.instances[server["id"]].volumes == {}
    assert (await client.delete(f"/v1/volumes/{volume['id']}")).status_code == 204


async def test_deleting_a_server_detaches_its_volumes(
    cloud: AllInOne, client: httpx.AsyncClient
) -> None:
    server = await wait_for_status(client, (await boot(client))["id"], "ACTIVE")
    volume = await _volume(client)
    await client.post(f"/v1/volumes/{volume['id']}/attach", json={"server_id": server["id"]})
    await client.delete(f"/v1/servers/{server['id']}")
    await wait_for_deleted(client, server["id"])
    assert (await client.get(f"/v1/volumes/{volume['id']}")).json()["status"] == "available"


async def test_the_file_driver_makes_sparse_files_and_the_audit_measures_them(
    cloud_factory: CloudFactory, fake_clock: FakeClock
) -> None:
    async with cloud_factory(volume_driver="file") as cloud, client_for(cloud) as client:
        volume = await _volume(client, size_gb=3)
        assert isinstance(cloud.volume.driver, FileVolumeDriver)
        path = cloud.volume.driver.path_of(volume["id"])
        assert path.stat().st_size == 3 * 1024**3
        with path.open("r+b") as stream:
            stream.write(b"x" * 8192)
        context = steward.get_admin_context()
        cloud.volume.periodic_scheduler.jitter = lambda: 0.0  # exact virtual times
        await cloud.volume.periodic_tasks(context)
        assert _last_audit(cloud) is None  # first audit is due one interval after start
        fake_clock.advance(AUDIT_INTERVAL)
        await cloud.volume.periodic_tasks(context, raise_on_error=True)
        audit = _last_audit(cloud)
        assert audit is not None
        assert (audit.volumes, audit.allocated_gb) == (1, 3)
        assert 8192 <= audit.used_bytes < 1024**2
        usage = [s for s in cloud.volume.notifier.sent if s.event_type == "volume.usage"]
        assert usage[0].payload["volume_id"] == volume["id"]
        assert (await client.delete(f"/v1/volumes/{volume['id']}")).status_code == 204
        assert not path.exists()
        fake_clock.advance(AUDIT_INTERVAL)
        await cloud.volume.periodic_tasks(context, raise_on_error=True)
        assert _last_audit(cloud) == UsageAudit(volumes=0, allocated_gb=0, used_bytes=0)
