"""Concurrent network creations and address allocations, on SQLite and PostgreSQL.

Each network service in these tests has a database engine of its own, as separate processes
would: what keeps them from handing out one CIDR, VLAN or address twice must be the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import json
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from tests.pocketcloud.flows import DEADLINE, CloudFactory, client_for, make_cloud_settings

import steward
from pocketcloud.database import ensure_schemas
from pocketcloud.errors import NetworkConflict
from pocketcloud.network.manager import MANAGERS, NetworkManager
from pocketcloud.network.tables import fixed_ips, networks
from steward.db import Database, utcnow

# 20 requests over 4 services (4 engines), 5 at once in each.
SERVICES = 4
REQUESTS = 20


@contextlib.asynccontextmanager
async def network_services(
    database_url: str, tmp_path: Path, kind: str, count: int = SERVICES
) -> AsyncIterator[list[NetworkManager]]:
    """Yield ``count`` network managers of ``kind``, each on an engine of its own."""
    settings = make_cloud_settings(tmp_path, network_manager=kind)
    async with contextlib.AsyncExitStack() as stack:
        databases = [await stack.enter_async_context(Database(database_url)) for _ in range(count)]
        await ensure_schemas(databases[0], upgrade=True)
        managers = []
        for number, db in enumerate(databases):
            manager = MANAGERS[kind](f"network{number}", db=db, cloud_settings=settings)
            await manager.init_host(None)
            managers.append(manager)
        yield managers


async def _race(
    managers: list[NetworkManager], requests: Sequence[tuple[str, str, int | None]]
) -> list[dict[str, Any] | BaseException]:
    """Send every ``(name, cidr, vlan)`` creation at once, spread over ``managers``."""
    context = steward.get_admin_context()
    return await asyncio.gather(
        *(
            manager.create_network(context, name, cidr, vlan)
            for manager, (name, cidr, vlan) in zip(
                itertools.cycle(managers), requests, strict=False
            )
        ),
        return_exceptions=True,
    )


def _split(
    results: list[dict[str, Any] | BaseException],
) -> tuple[list[dict[str, Any]], list[NetworkConflict]]:
    created = [result for result in results if isinstance(result, dict)]
    conflicts = [result for result in results if isinstance(result, NetworkConflict)]
    others = [r for r in results if not isinstance(r, dict | NetworkConflict)]
    assert others == [], f"unexpected failures: {others!r}"
    return created, conflicts


def _network(name: str, cidr: str, vlan: int | None, bridge: str = "") -> dict[str, object]:
    """Return a networks row as a writer that skips the manager would insert it."""
    return {
        "id": name,
        "name": name,
        "cidr": cidr,
        "gateway": str(ipaddress.ip_network(cidr).network_address + 1),
        "bridge": bridge or (f"br{vlan}" if vlan is not None else "br100"),
        "vlan": vlan,
        "manager": "vlan" if vlan is not None else "flat",
        "created_at": utcnow(),
    }


async def _stored(db: Database) -> list[sa.RowMapping]:
    async with db.session() as session:
        return list((await session.execute(sa.select(networks))).mappings().all())


@pytest.mark.parametrize("kind", ["flat", "vlan"])
async def test_concurrent_creations_of_one_cidr_make_exactly_one_network(
    database_url: str, tmp_path: Path, kind: str
) -> None:
    async with network_services(database_url, tmp_path, kind) as managers:
        results = await _race(managers, [(f"net{n}", "10.0.0.0/24", None) for n in range(20)])
        created, conflicts = _split(results)
        assert len(created) == 1
        assert len(conflicts) == REQUESTS - 1
        winner = created[0]["name"]
        for conflict in conflicts:
            assert str(conflict) == (
                f"10.0.0.0/24 overlaps network {winner!r} (10.0.0.0/24); choose another range"
            )
        assert [row["name"] for row in await _stored(managers[0].db)] == [winner]


async def test_concurrent_creations_of_overlapping_cidrs_keep_the_networks_disjoint(
    database_url: str, tmp_path: Path
) -> None:
    cidrs = ["10.0.0.0/16", "10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "10.0.3.0/29"]
    async with network_services(database_url, tmp_path, "flat") as managers:
        requests = [(f"net{n}", cidrs[n % len(cidrs)], None) for n in range(REQUESTS)]
        created, _ = _split(await _race(managers, requests))
        stored = [ipaddress.ip_network(row["cidr"]) for row in await _stored(managers[0].db)]
        assert len(stored) == len(created) >= 1
        for first, second in itertools.combinations(stored, 2):
            assert not first.overlaps(second), f"{first} and {second} overlap on one bridge"


async def test_concurrent_creations_with_one_explicit_vlan_make_exactly_one_network(
    database_url: str, tmp_path: Path
) -> None:
    async with network_services(database_url, tmp_path, "vlan") as managers:
        requests = [(f"net{n}", f"10.0.{n}.0/24", 500) for n in range(REQUESTS)]
        created, conflicts = _split(await _race(managers, requests))
        assert len(created) == 1
        assert (created[0]["vlan"], created[0]["bridge"]) == (500, "br500")
        winner = created[0]["name"]
        for conflict in conflicts:
            assert str(conflict) == (
                f"VLAN 500 is taken by network {winner!r}; choose another VLAN or leave it out"
            )
        assert len(await _stored(managers[0].db)) == 1


async def test_concurrent_creations_without_a_vlan_get_distinct_vlans_and_bridges(
    database_url: str, tmp_path: Path
) -> None:
    async with network_services(database_url, tmp_path, "vlan") as managers:
        requests = [(f"net{n}", f"10.0.{n}.0/24", None) for n in range(REQUESTS)]
        created, conflicts = _split(await _race(managers, requests))
        assert conflicts == []
        assert sorted(network["vlan"] for network in created) == list(range(100, 120))
        assert len({network["bridge"] for network in created}) == REQUESTS


async def test_the_database_refuses_a_second_network_on_a_taken_vlan_or_vlan_bridge(
    database_url: str,
) -> None:
    # Even a writer that skips the manager's checks cannot store a duplicate.
    async with Database(database_url) as db:
        await ensure_schemas(db, upgrade=True)
        async with db.session() as session:
            await session.execute(
                sa.insert(networks).values(_network("a", "10.0.0.0/24", 500, bridge="br500"))
            )
            # Flat networks share a bridge and have no VLAN: both allowed.
            await session.execute(
                sa.insert(networks).values(_network("f1", "10.1.0.0/24", None, bridge="br100"))
            )
            await session.execute(
                sa.insert(networks).values(_network("f2", "10.1.1.0/24", None, bridge="br100"))
            )
        for duplicate in (
            _network("b", "10.0.1.0/24", 500, bridge="br501"),  # the same VLAN
            _network("c", "10.0.2.0/24", 501, bridge="br500"),  # the same VLAN bridge
        ):
            with pytest.raises(IntegrityError):
                async with db.session() as session:
                    await session.execute(sa.insert(networks).values(duplicate))


async def test_postgresql_refuses_overlapping_networks_from_any_writer(postgres_url: str) -> None:
    # PostgreSQL says so itself (an exclusion constraint); on SQLite the creations are serialized.
    async with Database(postgres_url) as db:
        await ensure_schemas(db, upgrade=True)
        async with db.session() as session:
            await session.execute(sa.insert(networks).values(_network("a", "10.0.0.0/24", None)))
            await session.execute(sa.insert(networks).values(_network("b", "10.0.1.0/24", None)))
        for overlapping in ("10.0.0.0/24", "10.0.0.128/25", "10.0.0.0/16"):
            with pytest.raises(IntegrityError, match="excl_networks0cidr"):
                async with db.session() as session:
                    await session.execute(
                        sa.insert(networks).values(_network("c", overlapping, None))
                    )


@pytest.mark.parametrize("kind", ["flat", "vlan"])
async def test_concurrent_allocations_never_hand_out_one_address_twice(
    database_url: str, tmp_path: Path, kind: str
) -> None:
    async with network_services(database_url, tmp_path, kind) as managers:
        context = steward.get_admin_context()
        network = await managers[0].create_network(context, "net", "10.0.0.0/24")
        servers = [f"server{n}" for n in range(40)]
        results = await asyncio.gather(
            *(
                manager.allocate_for_instance(context, server, network["id"], "compute1")
                for manager, server in zip(itertools.cycle(managers), servers, strict=False)
            )
        )
        addresses = [result["address"] for result in results]
        assert sorted(addresses, key=ipaddress.IPv4Address) == [f"10.0.0.{n}" for n in range(2, 42)]
        async with managers[0].db.session() as session:
            stored = (await session.execute(sa.select(fixed_ips.c.address))).scalars().all()
        assert sorted(stored) == sorted(addresses)


async def test_concurrent_allocations_for_one_server_give_it_one_address(
    database_url: str, tmp_path: Path
) -> None:
    # A redelivered request allocates again for the same server: it keeps the one address.
    async with network_services(database_url, tmp_path, "flat") as managers:
        context = steward.get_admin_context()
        network = await managers[0].create_network(context, "net", "10.0.0.0/24")
        results = await asyncio.gather(
            *(
                manager.allocate_for_instance(context, "server", network["id"], "compute1")
                for manager in managers * 3
            )
        )
        assert {result["address"] for result in results} == {"10.0.0.2"}
        assert len({result["mac"] for result in results}) == 1


async def test_concurrent_rest_creations_of_one_cidr_answer_one_201_and_409s(
    cloud_factory: CloudFactory,
) -> None:
    async with cloud_factory(network_manager="vlan") as cloud, client_for(cloud) as client:
        responses: list[httpx.Response] = await asyncio.gather(
            *(
                client.post(
                    "/v1/networks", json={"name": f"n{n}", "cidr": f"10.5.{n}.0/24", "vlan": 500}
                )
                for n in range(REQUESTS)
            )
        )
        assert sorted(response.status_code for response in responses) == [201] + [409] * 19
        winner = next(r.json()["name"] for r in responses if r.status_code == 201)
        for response in responses:
            if response.status_code == 409:
                assert response.json()["error"]["message"] == (
                    f"VLAN 500 is taken by network {winner!r}; choose another VLAN or leave it out"
                )
        listed = (await client.get("/v1/networks")).json()
        assert [network["name"] for network in listed] == [winner]


# One network service in a process of its own: it says "ready", waits for the go on stdin, sends
# its creations at once and prints what became of them.
_WORKER = """
import asyncio, json, sys
import steward
from pocketcloud.config import load_cloud_settings
from pocketcloud.network.manager import MANAGERS
from steward.db import Database

async def main(url, data_dir, kind, requests):
    settings = load_cloud_settings({"data_dir": data_dir, "network_manager": kind})
    async with Database(url) as db:
        manager = MANAGERS[kind]("network", db=db, cloud_settings=settings)
        await manager.init_host(None)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        context = steward.get_admin_context()
        results = await asyncio.gather(
            *(manager.create_network(context, *request) for request in requests),
            return_exceptions=True,
        )
    print(json.dumps([
        r["name"] if isinstance(r, dict) else f"{type(r).__name__}: {r}" for r in results
    ]))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])))
"""


@pytest.mark.parametrize(
    ("kind", "vlan", "same_cidr"),
    [("flat", None, True), ("vlan", 500, False)],
    ids=["one-cidr", "one-vlan"],
)
async def test_network_services_in_separate_processes_create_one_network(
    postgres_url: str, tmp_path: Path, kind: str, vlan: int | None, same_cidr: bool
) -> None:
    async with Database(postgres_url) as db:
        await ensure_schemas(db, upgrade=True)
        workers = []
        for process in range(3):
            requests = [
                (f"p{process}n{n}", "10.0.0.0/24" if same_cidr else f"10.{process}.{n}.0/24", vlan)
                for n in range(5)
            ]
            workers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    _WORKER,
                    postgres_url,
                    str(tmp_path / f"data{process}"),
                    kind,
                    json.dumps(requests),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        async with asyncio.timeout(DEADLINE):
            for worker in workers:
                assert worker.stdout is not None
                assert await worker.stdout.readline() == b"ready\n"
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(b"go\n")
                await worker.stdin.drain()
            outputs = [await worker.communicate() for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0, 0]
        results = [result for out, _ in outputs for result in json.loads(out)]
        stored = await _stored(db)
        assert len(stored) == 1
        winner = stored[0]["name"]
        assert sorted(results) == sorted(
            [winner]
            + [
                f"NetworkConflict: 10.0.0.0/24 overlaps network {winner!r} (10.0.0.0/24); "
                "choose another range"
                if same_cidr
                else f"NetworkConflict: VLAN 500 is taken by network {winner!r}; "
                "choose another VLAN or leave it out"
            ]
            * 14
        )


async def test_vlan_manager_keeps_off_the_bridge_of_a_flat_network(
    database_url: str, tmp_path: Path
) -> None:
    # A cloud switched from FlatManager to VlanManager: VLAN 100's bridge br100 is the flat one.
    context = steward.get_admin_context()
    async with network_services(database_url, tmp_path, "flat", count=1) as (flat,):
        await flat.create_network(context, "flat", "10.0.0.0/24")
    async with network_services(database_url, tmp_path, "vlan", count=1) as (vlan,):
        with pytest.raises(NetworkConflict) as refused:
            await vlan.create_network(context, "a", "10.0.1.0/24", 100)
        assert str(refused.value) == (
            "bridge br100 of VLAN 100 is used by network 'flat'; "
            "choose another VLAN or leave it out"
        )
        chosen = await vlan.create_network(context, "b", "10.0.2.0/24")
        assert (chosen["vlan"], chosen["bridge"]) == (101, "br101")
