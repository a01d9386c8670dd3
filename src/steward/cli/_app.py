"""The ``steward`` app: its global options, the settings they load, and one-line errors.

Every command module adds its commands to :data:`app` and reads the global options through
:func:`load` (the settings a service started with the same options sees) and :class:`Options`.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

import steward
from steward._lazy import lazy_import
from steward.errors import ConfigError
from steward.redact import mask_text

if typing.TYPE_CHECKING:
    from steward import config
else:
    config = lazy_import("steward.config")

__all__ = ["Options", "app", "errors_are_one_line", "load"]

app = typer.Typer(
    name="steward",
    help="Run, inspect and call steward services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_stderr = Console(stderr=True)


class Options:
    """What the global options said, for the subcommands."""

    config_files: typing.ClassVar[list[Path]] = []
    overrides: typing.ClassVar[dict[str, str]] = {}
    set_args: typing.ClassVar[list[str]] = []
    debug: bool = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"steward {steward.__version__}")
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
        list[Path] | None,
        typer.Option(
            "--config-file",
            help="Settings file: TOML, or oslo.config INI (nova.conf). Repeatable, later wins.",
            envvar="STEWARD_CONFIG_FILE",
        ),
    ] = None,
    set_: typing.Annotated[
        list[str] | None,
        typer.Option("--set", metavar="NAME=VALUE", help="Override one setting (repeatable)."),
    ] = None,
    debug: typing.Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and debug logs.")
    ] = False,
    version: typing.Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Run, inspect and call steward services."""
    Options.config_files = list(config_file or [])
    Options.set_args = list(set_ or [])
    Options.overrides = _parse_overrides(Options.set_args)
    Options.debug = debug


def load() -> config.Settings:
    """Return the settings the global options give (file, environment, ``--set``)."""
    return config.load_settings(config_file=Options.config_files, overrides=Options.overrides)


P = typing.ParamSpec("P")


def errors_are_one_line(command: Callable[P, None]) -> Callable[P, None]:
    """Turn steward's errors (and bad input) into one line on stderr and exit code 1 or 2."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if Options.debug:
                raise
            code = 2 if isinstance(exc, ConfigError | ValueError | TypeError) else 1
            message = mask_text(f"{type(exc).__name__}: {exc}")
            # The message is text, never markup: a remote error or a name may hold "[/x]".
            _stderr.print(Text.assemble(("error:", "red"), " ", message), highlight=False)
            raise typer.Exit(code=code) from exc

    return wrapper
