"""How the ``pocketcloud`` user commands show the API's resources: tables, in colour.

A list is a table with a row per resource (:func:`servers_table`...); one resource is a table of
its fields in the API's order (:func:`details`), its status coloured, its timestamps to the
second in UTC. :func:`print_whole` prints a table at its full width, never folded.
"""

from __future__ import annotations

import datetime
import typing
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

if typing.TYPE_CHECKING:
    from pocketcloud.client import JSON

__all__ = [
    "SERVER_COLOURS",
    "SERVICE_COLOURS",
    "VOLUME_COLOURS",
    "details",
    "networks_table",
    "print_whole",
    "servers_table",
    "services_table",
    "volumes_table",
]

SERVER_COLOURS = {"ACTIVE": "green", "SHUTOFF": "yellow", "ERROR": "red"}
"""A server's status in colour; any other status is on its way somewhere (cyan)."""
VOLUME_COLOURS = {"available": "green", "in-use": "cyan", "error": "red"}
"""A volume's status in colour."""
SERVICE_COLOURS = {"up": "green", "down": "red", "enabled": "green", "disabled": "yellow"}
"""A service's state and status in colour."""
_UNBOUNDED = 10_000  # columns: a table's natural width, measured without a terminal's limit
_BUSY = "cyan"  # a status on its way somewhere: BUILDING, REBOOTING, DELETING


def print_whole(table: Table) -> None:
    """Print on stdout at the table's full width, wider than the terminal if need be.

    Squeezed, a table would fold ids in two and cut addresses; a terminal wraps a long line
    without breaking what a user copies, and a pipe gets each row on one line, for ``grep``.
    """
    console = Console()
    needed = console.measure(table, options=console.options.update(max_width=_UNBOUNDED)).maximum
    if needed > console.width:
        console = Console(width=needed)
    console.print(table)


def _status(value: str, colours: dict[str, str]) -> Text:
    return Text(value, style=colours.get(value, _BUSY))


def _text(value: object) -> str:
    if value is None or value == "":
        return "-"
    return str(value)


def _when(value: object) -> str:
    """Show an API timestamp (UTC, naive or not) to the second: ``2026-05-09 07:35:25 UTC``."""
    if value is None:
        return "-"
    try:
        when = datetime.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if when.tzinfo is not None:
        when = when.astimezone(datetime.UTC)
    return f"{when:%Y-%m-%d %H:%M:%S} UTC"


def _table(*columns: str) -> Table:
    table = Table()
    for column in columns:
        table.add_column(column, no_wrap=True)
    return table


def details(record: JSON, colours: dict[str, str]) -> Table:
    """One resource as a two-column table of its fields, in the API's order."""
    table = Table.grid(padding=(0, 2))
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", no_wrap=True)
    for field, value in record.items():
        shown: str | Text
        if field in {"status", "state"} and isinstance(value, str):
            shown = _status(value, colours)
        elif isinstance(value, dict):  # a server's fault: {"message", "created_at"}
            shown = Text(_text(value.get("message")), style="red")
        elif field.endswith("_at"):
            shown = _when(value)
        else:
            shown = _text(value)
        table.add_row(field, shown)
    return table


def servers_table(servers: Iterable[JSON]) -> Table:
    table = _table("id", "name", "status", "host", "address", "RAM", "disk")
    for server in servers:
        table.add_row(
            server["id"],
            server["name"],
            _status(server["status"], SERVER_COLOURS),
            _text(server["host"]),
            _text(server["address"]),
            f"{server['ram_mb']} MiB",
            f"{server['disk_gb']} GiB",
        )
    return table


def volumes_table(volumes: Iterable[JSON]) -> Table:
    table = _table("id", "name", "size", "status", "host", "server")
    for volume in volumes:
        table.add_row(
            volume["id"],
            volume["name"],
            f"{volume['size_gb']} GiB",
            _status(volume["status"], VOLUME_COLOURS),
            _text(volume["host"]),
            _text(volume["server_id"]),
        )
    return table


def networks_table(networks: Iterable[JSON]) -> Table:
    table = _table("id", "name", "cidr", "gateway", "bridge", "vlan", "manager")
    for network in networks:
        table.add_row(
            network["id"],
            network["name"],
            network["cidr"],
            network["gateway"],
            network["bridge"],
            _text(network["vlan"]),
            network["manager"],
        )
    return table


def services_table(services: Iterable[JSON]) -> Table:
    table = _table("host", "service", "state", "status", "last seen up")
    for service in services:
        status = _status(service["status"], SERVICE_COLOURS)
        if service.get("disabled_reason"):
            status.append(f" ({service['disabled_reason']})")
        table.add_row(
            service["host"],
            service["binary"],
            _status(service["state"], SERVICE_COLOURS),
            status,
            _when(service["last_seen_up"]),
        )
    return table
