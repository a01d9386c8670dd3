"""The ``steward`` command.

``steward --version`` prints the version; ``steward config show`` prints the effective settings,
each with where its value came from, secrets masked. Global options ``--config-file`` and
``--set NAME=VALUE`` (repeatable) feed :func:`steward.config.load_settings`, so every subcommand
sees settings exactly as a service started with the same arguments would.
"""

from __future__ import annotations

import typing
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from steward.config import Settings, load_settings
from steward.errors import ConfigError

__all__ = ["app", "main"]

app = typer.Typer(
    name="steward",
    help="Run and inspect steward services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")


class _Options:
    """What the global options said, for the subcommands."""

    config_file: Path | None = None
    overrides: typing.ClassVar[dict[str, str]] = {}


def _version(value: bool) -> None:
    if value:
        from steward import __version__  # noqa: PLC0415 - only --version needs it

        typer.echo(f"steward {__version__}")
        raise typer.Exit


def _parse_overrides(pairs: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--set")
        overrides[name.strip().replace("-", "_")] = value
    return overrides


@app.callback()
def _main(
    config_file: typing.Annotated[
        Path | None,
        typer.Option("--config-file", help="TOML file of settings.", envvar="STEWARD_CONFIG_FILE"),
    ] = None,
    set_: typing.Annotated[
        list[str] | None,
        typer.Option("--set", metavar="NAME=VALUE", help="Override one setting (repeatable)."),
    ] = None,
    version: typing.Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Run and inspect steward services."""
    _Options.config_file = config_file
    _Options.overrides = _parse_overrides(set_ or [])


def _load() -> Settings:
    try:
        return load_settings(config_file=_Options.config_file, overrides=_Options.overrides)
    except ConfigError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
        raise typer.Exit(code=2) from exc


@config_app.command("show")
def config_show(
    as_json: typing.Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """Print the effective settings, where each came from, and which may change on SIGHUP."""
    settings = _load()
    values = settings.masked()
    mutable = settings.mutable_options()
    if as_json:
        import orjson  # noqa: PLC0415 - only --json needs it

        rows = {
            name: {"value": value, "source": settings.origin(name), "mutable": name in mutable}
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
        table.add_row(
            name,
            repr(value) if not isinstance(value, str) else value,
            settings.origin(name),
            "SIGHUP" if name in mutable else "restart",
        )
    Console().print(table)


def main() -> None:
    """Entry point of the ``steward`` console script."""
    app()
