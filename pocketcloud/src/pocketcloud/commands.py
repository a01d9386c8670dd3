"""The ``pocketcloud`` commands for users: servers, volumes, networks and hosts, over REST.

``pocketcloud server|volume|network|host ...`` talk to a running cloud's API (``--url``, or the
``POCKETCLOUD_URL`` environment variable; ``pocketcloud up`` serves it on
``http://127.0.0.1:8774``; ``--token`` or ``POCKETCLOUD_TOKEN`` for an API with tokens) through
:class:`~pocketcloud.client.CloudClient`, and show what it answers as tables, or with
``--json`` as the API's JSON on stdout and nothing else. An error is one line on stderr,
``error: <status> <message>`` when the API refused, and exit code 1. ``--wait`` polls until the
server settles (or is gone), with a spinner on stderr when it is a terminal.

This module is imported by ``pocketcloud --help``: httpx and the client load only when a command
runs (:mod:`steward._lazy`). How the answers look is :mod:`pocketcloud._tables`. It is one piece
past 400 lines because most of it is the commands' signatures, which typer reads as their options
(the same ``--url``, ``--token``, ``--json`` and ``--timeout`` on each); the session and the
waiting are theirs alone.
"""

from __future__ import annotations

import contextlib
import sys
import time
import typing
from collections.abc import Callable, Iterator
from http import HTTPStatus

import orjson
import typer
from rich.console import Console
from rich.text import Text

from pocketcloud._tables import (
    SERVER_COLOURS,
    VOLUME_COLOURS,
    details,
    networks_table,
    print_whole,
    servers_table,
    services_table,
    volumes_table,
)
from steward._lazy import lazy_import
from steward.redact import shorten

if typing.TYPE_CHECKING:
    from rich.table import Table

    from pocketcloud import client as api_client
    from pocketcloud.client import JSON, CloudClient
else:
    api_client = lazy_import("pocketcloud.client")

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "DEFAULT_WAIT_TIMEOUT",
    "host_app",
    "network_app",
    "server_app",
    "volume_app",
]

DEFAULT_URL = "http://127.0.0.1:8774"
"""Where ``pocketcloud up`` serves the API unless told otherwise."""
DEFAULT_TIMEOUT = 30.0
"""Seconds one request may take."""
DEFAULT_WAIT_TIMEOUT = 300.0
"""Seconds ``--wait`` waits for a server to settle or go."""
POLL_INTERVALS = (0.1, 0.2, 0.5, 1.0)
"""Seconds between two looks while waiting: quick at first, then once a second."""

_SETTLED = frozenset({"ACTIVE", "SHUTOFF", "ERROR"})

server_app = typer.Typer(
    help="Servers: boot, list, show, reboot and delete them.", no_args_is_help=True
)
volume_app = typer.Typer(
    help="Volumes: create, list, attach to a server, detach and delete them.", no_args_is_help=True
)
network_app = typer.Typer(help="Networks: create, list and show them.", no_args_is_help=True)
host_app = typer.Typer(help="Hosts: the cloud's services, up or down.", no_args_is_help=True)

Url = typing.Annotated[
    str,
    typer.Option("--url", envvar="POCKETCLOUD_URL", help="The REST API's base URL."),
]
AsJson = typing.Annotated[
    bool, typer.Option("--json", help="Print the API's JSON instead of a table.")
]
Token = typing.Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="POCKETCLOUD_TOKEN",
        help="Sent in X-Auth-Token, for an API with tokens (api_token_file).",
        show_default=False,
    ),
]
Timeout = typing.Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds each request may take.")
]
Wait = typing.Annotated[bool, typer.Option("--wait", help="Wait until the server settles.")]
WaitTimeout = typing.Annotated[
    float, typer.Option("--wait-timeout", min=0, help="Seconds --wait waits at most.")
]


# --- talking to the API and failing in one line ---------------------------------------------------


def _fail(message: str) -> typing.NoReturn:
    """Print ``error: <message>`` on stderr and exit with code 1."""
    error = Text.assemble(("error:", "bold red"), " ", message)
    Console(stderr=True).print(error, soft_wrap=True, highlight=False)
    raise typer.Exit(code=1)


@contextlib.contextmanager
def _session(url: str, timeout: float, token: str | None) -> Iterator[CloudClient]:
    """Yield a client of the API at ``url``; any error ends the command as one line on stderr."""
    try:
        with api_client.CloudClient(url, timeout=timeout, token=token) as client:
            yield client
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except api_client.ApiError as exc:
        _fail(
            f"{exc}; give the token with --token or POCKETCLOUD_TOKEN"
            if exc.status == HTTPStatus.UNAUTHORIZED
            else str(exc)
        )
    except api_client.CloudClientError as exc:
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - a user sees one line, never a traceback
        _fail(f"talking to the API at {url}: {type(exc).__name__}: {str(exc) or 'no detail'}")


def _print_json(data: object) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _show(data: JSON | list[JSON], *, as_json: bool, render: Callable[[], Table]) -> None:
    """Print ``data`` as indented JSON, or what ``render`` makes of it."""
    if as_json:
        _print_json(data)
    else:
        print_whole(render())


def _say(message: str, *, as_json: bool) -> None:
    """Tell a person what happened (stdout); ``--json`` prints nothing, as the API sent none."""
    if not as_json:
        Console().print(message, highlight=False, markup=False, soft_wrap=True)


def _show_list(
    items: list[JSON], *, as_json: bool, render: Callable[[list[JSON]], Table], empty: str
) -> None:
    if not items and not as_json:
        _say(empty, as_json=as_json)
        return
    _show(items, as_json=as_json, render=lambda: render(items))


# --- waiting ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _spinner(text: str) -> Iterator[Callable[[str], None]]:
    """Yield ``update(text)`` of a spinner on stderr; a no-op when stderr is not a terminal."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda _: None
        return
    with console.status(text) as status:
        yield status.update


def _poll(what: str, look: Callable[[], str | None], *, timeout: float) -> None:
    """Call ``look`` until it returns None (done); else it says the state to show and wait on.

    Fails the command when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    intervals = iter(POLL_INTERVALS)
    interval = next(intervals)
    with _spinner(f"Waiting for {what}...") as update:
        while (state := look()) is not None:
            if time.monotonic() + interval > deadline:
                _fail(f"{what}: still {state} after {timeout:g} s")
            update(f"Waiting for {what}: {state}...")
            time.sleep(interval)
            interval = next(intervals, interval)


def _wait_until_settled(client: CloudClient, server: JSON, *, timeout: float) -> JSON:
    """Poll the server until it is ACTIVE, SHUTOFF or ERROR and return it."""
    latest = server

    def look() -> str | None:
        nonlocal latest
        latest = client.get_server(server["id"])
        return None if latest["status"] in _SETTLED else str(latest["status"])

    _poll(f"server {server['id']}", look, timeout=timeout)
    return latest


def _wait_until_gone(client: CloudClient, server_id: str, *, timeout: float) -> None:
    """Poll the server until the API says it does not exist; fails if it goes ERROR."""

    def look() -> str | None:
        try:
            server = client.get_server(server_id)
        except api_client.ApiError as exc:
            if exc.status == HTTPStatus.NOT_FOUND:
                return None
            raise
        if server["status"] == "ERROR":
            _fail(f"server {server_id} is ERROR: {_fault_of(server)}")
        return str(server["status"])

    _poll(f"server {server_id} to go", look, timeout=timeout)


def _fault_of(server: JSON) -> str:
    fault = server.get("fault")
    return str(fault["message"]) if isinstance(fault, dict) else "no fault recorded"


# --- servers ------------------------------------------------------------------------------------


@server_app.command("list")
def server_list(
    *,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """List servers, oldest first."""
    with _session(url, timeout, token) as client:
        servers = client.list_servers()
        _show_list(servers, as_json=as_json, render=servers_table, empty="No servers.")


@server_app.command("show")
def server_show(
    server_id: typing.Annotated[str, typer.Argument(metavar="ID", help="The server's id.")],
    *,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """Show a server."""
    with _session(url, timeout, token) as client:
        server = client.get_server(server_id)
        _show(server, as_json=as_json, render=lambda: details(server, SERVER_COLOURS))


@server_app.command("create")
def server_create(
    name: typing.Annotated[str, typer.Argument(metavar="NAME", help="The server's name.")],
    *,
    ram_mb: typing.Annotated[
        int | None, typer.Option("--ram-mb", help="RAM in MiB; left out, the API's default (512).")
    ] = None,
    disk_gb: typing.Annotated[
        int | None, typer.Option("--disk-gb", help="Disk in GiB; left out, the API's default (1).")
    ] = None,
    network: typing.Annotated[
        str | None,
        typer.Option("--network", help="The network's id or name; left out, the first network."),
    ] = None,
    zone: typing.Annotated[
        str | None, typer.Option("--zone", help="Only hosts of this availability zone.")
    ] = None,
    wait: Wait = False,
    wait_timeout: WaitTimeout = DEFAULT_WAIT_TIMEOUT,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """Boot a server: BUILDING until a host has it ACTIVE. With --wait, exit 1 if it goes ERROR."""
    with _session(url, timeout, token) as client:
        network_id = None if network is None else _network_id(client, network)
        server = client.create_server(
            name, ram_mb=ram_mb, disk_gb=disk_gb, availability_zone=zone, network_id=network_id
        )
        if wait:
            server = _wait_until_settled(client, server, timeout=wait_timeout)
        _show(server, as_json=as_json, render=lambda: details(server, SERVER_COLOURS))
        if server["status"] == "ERROR":
            _fail(f"server {server['id']} is ERROR: {_fault_of(server)}")


def _network_id(client: CloudClient, id_or_name: str) -> str:
    """Return the id of the network with this id, else of the one network with this name."""
    networks = client.list_networks()
    if any(network["id"] == id_or_name for network in networks):
        return id_or_name
    named = [network["id"] for network in networks if network["name"] == id_or_name]
    if len(named) > 1:
        _fail(f"{len(named)} networks are named {shorten(id_or_name)!r}: give --network its id")
    return named[0] if named else id_or_name  # neither: the API says it does not exist


@server_app.command("delete")
def server_delete(
    server_id: typing.Annotated[str, typer.Argument(metavar="ID", help="The server's id.")],
    *,
    wait: typing.Annotated[
        bool, typer.Option("--wait", help="Wait until the server is gone.")
    ] = False,
    wait_timeout: WaitTimeout = DEFAULT_WAIT_TIMEOUT,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """Delete a server: DELETING until its host has removed it. --json prints nothing."""
    with _session(url, timeout, token) as client:
        client.delete_server(server_id)
        if not wait:
            _say(f"Server {server_id} is being deleted.", as_json=as_json)
            return
        _wait_until_gone(client, server_id, timeout=wait_timeout)
        _say(f"Server {server_id} deleted.", as_json=as_json)


@server_app.command("reboot")
def server_reboot(
    server_id: typing.Annotated[str, typer.Argument(metavar="ID", help="The server's id.")],
    *,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """Reboot an ACTIVE or SHUTOFF server: REBOOTING until its host restarted it."""
    with _session(url, timeout, token) as client:
        server = client.reboot_server(server_id)
        _show(server, as_json=as_json, render=lambda: details(server, SERVER_COLOURS))


# --- volumes ------------------------------------------------------------------------------------

VolumeId = typing.Annotated[str, typer.Argument(metavar="VOLUME", help="The volume's id.")]


@volume_app.command("list")
def volume_list(
    *,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """List volumes."""
    with _session(url, timeout, token) as client:
        volumes = client.list_volumes()
        _show_list(volumes, as_json=as_json, render=volumes_table, empty="No volumes.")


@volume_app.command("show")
def volume_show(
    volume_id: VolumeId,
    *,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """Show a volume."""
    with _session(url, timeout, token) as client:
        volume = client.get_volume(volume_id)
        _show(volume, as_json=as_json, render=lambda: details(volume, VOLUME_COLOURS))


@volume_app.command("create")
def volume_create(
    name: typing.Annotated[str, typer.Argument(metavar="NAME", help="The volume's name.")],
    *,
    size_gb: typing.Annotated[int, typer.Option("--size-gb", help="Size in GiB.")],
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """Create a volume."""
    with _session(url, timeout, token) as client:
        volume = client.create_volume(name, size_gb=size_gb)
        _show(volume, as_json=as_json, render=lambda: details(volume, VOLUME_COLOURS))


@volume_app.command("delete")
def volume_delete(
    volume_id: VolumeId,
    *,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """Delete a volume that is not attached. --json prints nothing."""
    with _session(url, timeout, token) as client:
        client.delete_volume(volume_id)
        _say(f"Volume {volume_id} deleted.", as_json=as_json)


@volume_app.command("attach")
def volume_attach(
    volume_id: VolumeId,
    server_id: typing.Annotated[str, typer.Argument(metavar="SERVER", help="The server's id.")],
    *,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """Attach a volume to an ACTIVE or SHUTOFF server."""
    with _session(url, timeout, token) as client:
        volume = client.attach_volume(volume_id, server_id)
        _show(volume, as_json=as_json, render=lambda: details(volume, VOLUME_COLOURS))


@volume_app.command("detach")
def volume_detach(
    volume_id: VolumeId,
    *,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """Detach a volume from its server."""
    with _session(url, timeout, token) as client:
        volume = client.detach_volume(volume_id)
        _show(volume, as_json=as_json, render=lambda: details(volume, VOLUME_COLOURS))


# --- networks and hosts -------------------------------------------------------------------------


@network_app.command("list")
def network_list(
    *,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """List networks."""
    with _session(url, timeout, token) as client:
        networks = client.list_networks()
        _show_list(networks, as_json=as_json, render=networks_table, empty="No networks.")


@network_app.command("show")
def network_show(
    network_id: typing.Annotated[str, typer.Argument(metavar="ID", help="The network's id.")],
    *,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """Show a network."""
    with _session(url, timeout, token) as client:
        network = client.get_network(network_id)
        _show(network, as_json=as_json, render=lambda: details(network, {}))


@network_app.command("create")
def network_create(
    name: typing.Annotated[str, typer.Argument(metavar="NAME", help="The network's name.")],
    cidr: typing.Annotated[
        str, typer.Argument(metavar="CIDR", help="Its IPv4 range, such as 10.0.0.0/24.")
    ],
    *,
    vlan: typing.Annotated[
        int | None,
        typer.Option("--vlan", help="Its VLAN (VlanManager only); left out, a free one."),
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """Create a network."""
    with _session(url, timeout, token) as client:
        network = client.create_network(name, cidr, vlan=vlan)
        _show(network, as_json=as_json, render=lambda: details(network, {}))


@host_app.command("list")
def host_list(
    *,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> None:
    """List the services on each host, up or down (a service is down when it stops reporting)."""
    with _session(url, timeout, token) as client:
        services = client.list_services()
        _show_list(services, as_json=as_json, render=services_table, empty="No services.")
