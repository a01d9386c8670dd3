"""The flows pocketcloud's tests wait on: boot a server, wait for a status, talk to the API.

Waiting polls the API under a deadline (:data:`DEADLINE`), never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

import steward
from pocketcloud.allinone import AllInOne
from pocketcloud.config import CloudSettings, load_cloud_settings

DEADLINE = 20.0
"""Seconds a test waits for an asynchronous flow before it fails."""

CloudFactory = Callable[..., contextlib.AbstractAsyncContextManager[AllInOne]]
"""The ``cloud_factory`` fixture: ``make(**settings)`` gives a running cloud to ``async with``."""


def make_steward_settings(data_dir: Path) -> steward.Settings:
    """Return steward's settings for one test cloud: its own broker, a database in ``data_dir``."""
    return steward.load_settings(
        overrides={
            "transport_url": f"memory://{uuid.uuid4().hex}",
            "database_url": f"sqlite+aiosqlite:///{data_dir / 'pocketcloud.db'}",
            "periodic_enable": False,
            "notification_driver": "test",
            "rpc_response_timeout": DEADLINE,
            "graceful_shutdown_timeout": 5,
        }
    )


def make_cloud_settings(tmp_path: Path, **overrides: object) -> CloudSettings:
    """Return pocketcloud settings with data in ``tmp_path`` and hosts of 4 GiB, 100 GB."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "compute_memory_mb": 4096,
        "compute_disk_gb": 100,
        "api_port": 0,
    }
    return load_cloud_settings(values | overrides)


def client_for(cloud: AllInOne) -> httpx.AsyncClient:
    """Return a client of ``cloud``'s REST API, in process (no socket)."""
    assert cloud.api.app is not None
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=cloud.api.app), base_url="http://pocketcloud"
    )


async def wait_for_status(client: httpx.AsyncClient, server_id: str, *statuses: str) -> Any:
    """Poll the server until its status is one of ``statuses``; return it as JSON."""
    server: Any = None
    try:
        async with asyncio.timeout(DEADLINE):
            while True:
                response = await client.get(f"/v1/servers/{server_id}")
                server = response.json()
                if response.status_code == 200 and server["status"] in statuses:
                    return server
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"server never reached {statuses}; last seen: {server}") from None


async def wait_for_deleted(client: httpx.AsyncClient, server_id: str) -> None:
    """Poll the server until the API says it does not exist."""
    async with asyncio.timeout(DEADLINE):
        while True:
            if (await client.get(f"/v1/servers/{server_id}")).status_code == 404:
                return
            await asyncio.sleep(0.005)


async def create_network(client: httpx.AsyncClient, cidr: str = "10.0.0.0/24", **body: Any) -> Any:
    """Create a network through the API and return it."""
    response = await client.post("/v1/networks", json={"name": "net", "cidr": cidr, **body})
    assert response.status_code == 201, response.text
    return response.json()


async def boot(client: httpx.AsyncClient, name: str = "vm", **body: Any) -> Any:
    """Ask the API for a server and return the BUILDING record."""
    response = await client.post("/v1/servers", json={"name": name, "ram_mb": 512, **body})
    assert response.status_code == 202, response.text
    return response.json()
