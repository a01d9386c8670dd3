"""``steward config show``: the effective settings, where each came from, secrets masked.

Where: the source (default, file, environment, command line) and, for a file, which file and,
for an oslo INI file, which section (``file /etc/nova/nova.conf [oslo_messaging_rabbit]``); for
the environment, the variable.
"""

from __future__ import annotations

import typing

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from steward.cli._app import errors_are_one_line, load

__all__ = ["config_app", "config_show"]

config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)


@config_app.command("show")
@errors_are_one_line
def config_show(
    as_json: typing.Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """Print the effective settings, where each came from, and which may change on SIGHUP."""
    settings = load()
    values = settings.masked(dotted=True)
    mutable = settings.mutable_options()
    if as_json:
        rows = {
            name: {
                "value": value,
                "source": settings.origin(name),
                "location": settings.location(name),
                "mutable": name in mutable,
            }
            for name, value in values.items()
        }
        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title="steward settings", title_justify="left")
    table.add_column("option", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source")
    table.add_column("reload")
    for name, value in values.items():
        shown = value if isinstance(value, str) else repr(value)
        reload = "SIGHUP" if name in mutable else "restart"
        location = settings.location(name)
        source = (
            settings.origin(name) if location is None else f"{settings.origin(name)} {location}"
        )
        # Text, never markup: an INI section ([oslo_messaging_rabbit]) reads as a style tag.
        table.add_row(name, Text(shown), Text(source), reload)
    Console().print(table)
