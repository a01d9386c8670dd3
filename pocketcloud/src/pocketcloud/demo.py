"""The demo: a network, a volume and three servers, made through the REST API like a user would.

``pocketcloud up --demo`` runs it once its services consume their queues (see
:mod:`pocketcloud.readiness`), showing progress as it goes, and ends with a table of what it
made. It only speaks HTTP to the API, so what it shows is what any client sees. Running it again
on the same cloud finds its network, volume and servers by name and makes no second set. Every
failure is a :class:`DemoError` of one line: the request, the URL, and what went wrong.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import typing

import httpx
from rich.console import Console
from rich.table import Table

from pocketcloud.client import AUTH_HEADER, ApiError, CloudClientError, read_json, unreachable

__all__ = [
    "DEMO_NETWORK",
    "DEMO_SERVERS",
    "DEMO_VOLUME",
    "REQUEST_TIMEOUT",
    "DemoError",
    "DemoResult",
    "run_demo",
]

LOG = logging.getLogger(__name__)

DEMO_NETWORK = {"name": "demo-net", "cidr": "10.0.0.0/24"}
DEMO_VOLUME = {"name": "demo-vol", "size_gb": 1}
DEMO_SERVERS = ("demo-1", "demo-2", "demo-3")
_SETTLED = {"ACTIVE", "SHUTOFF", "ERROR"}
POLL_INTERVAL = 0.2
"""Seconds between two looks at the API while waiting."""
REQUEST_TIMEOUT = 30.0
"""Seconds one request to the API may take."""

JSON = dict[str, typing.Any]


class DemoError(Exception):
    """The demo could not finish; the message says which step and why."""


@dataclasses.dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo made, as the API last showed it."""

    network: JSON
    volume: JSON
    servers: list[JSON]


async def _request(
    client: httpx.AsyncClient, method: str, path: str, *, json: JSON | None = None
) -> typing.Any:  # noqa: ANN401 - JSON from the API
    try:
        response = await client.request(method, path, json=json)
    except httpx.HTTPError as exc:
        error = unreachable(exc, str(client.base_url), timeout=REQUEST_TIMEOUT)
        raise DemoError(f"{method} {path}: {error}") from exc
    try:
        return read_json(response)
    except CloudClientError as exc:
        hint = "; give `pocketcloud up` the token with --token or POCKETCLOUD_TOKEN"
        unauthorized = isinstance(exc, ApiError) and exc.status == 401  # noqa: PLR2004 - HTTP
        raise DemoError(
            f"{method} {client.base_url}{path}: {exc}{hint if unauthorized else ''}"
        ) from exc


async def _poll(description: str, check: typing.Callable[[], typing.Awaitable[bool]]) -> None:
    """Ask ``check`` until it is true; the caller's ``asyncio.timeout`` scope bounds the wait."""
    LOG.debug("Waiting for %s", description)
    while True:
        if await check():
            return
        await asyncio.sleep(POLL_INTERVAL)


async def run_demo(base_url: str, *, console: Console, token: str | None = None) -> DemoResult:
    """Make the demo's resources through the API at ``base_url`` and print them in a table.

    Call it once the cloud's services consume (``pocketcloud up`` waits for that), inside an
    ``asyncio.timeout`` scope: it waits for the servers for as long as that allows. Raises
    :class:`DemoError` when a step fails. ``token`` is sent in ``X-Auth-Token``.
    """
    headers = {AUTH_HEADER: token} if token else {}
    async with httpx.AsyncClient(
        base_url=base_url, timeout=REQUEST_TIMEOUT, headers=headers
    ) as client:
        with console.status("Creating the network...") as status:
            network = await _find_or_create(client, "/v1/networks", DEMO_NETWORK)
            console.print(f"[green]✓[/green] network {network['name']} ({network['cidr']})")
            status.update("Creating the volume...")
            volume = await _find_or_create(client, "/v1/volumes", DEMO_VOLUME)
            console.print(f"[green]✓[/green] volume {volume['name']} ({volume['size_gb']} GiB)")
            existing = {
                server["name"]: server
                for server in await _request(client, "GET", "/v1/servers")
                if server["status"] != "DELETING"
            }
            ids = []
            for name in DEMO_SERVERS:
                if name in existing:
                    server = existing[name]
                    console.print(f"[green]✓[/green] server {name} exists ({server['status']})")
                else:
                    status.update(f"Booting {name}...")
                    body = {"name": name, "ram_mb": 256, "disk_gb": 1, "network_id": network["id"]}
                    server = await _request(client, "POST", "/v1/servers", json=body)
                    console.print(f"[green]✓[/green] server {name} requested ({server['status']})")
                ids.append(server["id"])
            servers: list[JSON] = []

            async def settled() -> bool:
                servers[:] = [await _request(client, "GET", f"/v1/servers/{i}") for i in ids]
                ready = sum(server["status"] in _SETTLED for server in servers)
                status.update(f"Waiting for the servers to boot ({ready}/{len(ids)})...")
                return ready == len(ids)

            await _poll("the servers to boot", settled)
            console.print("[green]✓[/green] servers booted")
            if volume["status"] == "available" and servers[0]["status"] == "ACTIVE":
                status.update(f"Attaching {volume['name']} to {servers[0]['name']}...")
                volume = await _request(
                    client,
                    "POST",
                    f"/v1/volumes/{volume['id']}/attach",
                    json={"server_id": servers[0]["id"]},
                )
                console.print(f"[green]✓[/green] {volume['name']} attached to {servers[0]['name']}")
    result = DemoResult(network=network, volume=volume, servers=servers)
    console.print(result_table(result))
    return result


async def _find_or_create(client: httpx.AsyncClient, path: str, body: JSON) -> JSON:
    for item in await _request(client, "GET", path):
        if item["name"] == body["name"]:
            found: JSON = item
            return found
    created: JSON = await _request(client, "POST", path, json=body)
    return created


def result_table(result: DemoResult) -> Table:
    """Return the demo's servers as a rich table, with their network and volume."""
    table = Table(title="pocketcloud demo", title_justify="left")
    for column in ("server", "id", "status", "host", "address", "RAM", "volume"):
        table.add_column(column, no_wrap=True)
    colours = {"ACTIVE": "green", "ERROR": "red", "SHUTOFF": "yellow"}
    for server in result.servers:
        colour = colours.get(server["status"], "white")
        attached = result.volume["name"] if result.volume.get("server_id") == server["id"] else ""
        table.add_row(
            server["name"],
            server["id"][:8],
            f"[{colour}]{server['status']}[/{colour}]",
            server["host"] or "-",
            server["address"] or "-",
            f"{server['ram_mb']} MB",
            attached,
        )
    network = result.network
    vlan = f", VLAN {network['vlan']}" if network.get("vlan") is not None else ""
    table.caption = (
        f"network {network['name']} {network['cidr']} on {network['bridge']}{vlan}; "
        f"volume {result.volume['name']} {result.volume['size_gb']} GiB {result.volume['status']}"
    )
    return table
