"""``steward api export|check``: a manager's RPC API as AsyncAPI, and the contract check for CI.

``export`` prints (or writes) an AsyncAPI 3.0 document of a manager's RPC API. ``check`` compares
a stored contract file with the code and exits 1 naming each method or object that changed
without its version changing; ``--update`` rewrites the file (see :mod:`steward.contracts`).
"""

from __future__ import annotations

import typing
from pathlib import Path

import orjson
import typer

from steward._lazy import lazy_import
from steward.cli._app import errors_are_one_line

if typing.TYPE_CHECKING:
    from steward import contracts, launcher
else:
    contracts = lazy_import("steward.contracts")
    launcher = lazy_import("steward.launcher")

__all__ = ["api_app", "api_check", "api_export"]

api_app = typer.Typer(help="RPC API contracts: AsyncAPI export, version-bump check.")

ManagerPaths = typing.Annotated[
    list[str], typer.Argument(help="Manager classes, as module:Class.", show_default=False)
]


@api_app.command("export")
@errors_are_one_line
def api_export(
    manager: typing.Annotated[str, typer.Argument(help="The manager class, as module:Class.")],
    topic: typing.Annotated[str, typer.Option("--topic", help="The topic it is served on.")],
    output: typing.Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Print MANAGER's RPC API as an AsyncAPI 3.0 document (JSON)."""
    api = contracts.describe_api(launcher.load_manager_class(manager))
    document = orjson.dumps(contracts.asyncapi(api, topic=topic), option=orjson.OPT_INDENT_2)
    if output is None:
        typer.echo(document.decode())
    else:
        output.write_bytes(document + b"\n")


@api_app.command("check")
@errors_are_one_line
def api_check(
    contract: typing.Annotated[Path, typer.Argument(help="The stored contract file (JSON).")],
    managers: ManagerPaths,
    update: typing.Annotated[
        bool, typer.Option("--update", help="Rewrite the file from the code.")
    ] = False,
) -> None:
    """Fail when a method or object of MANAGERS changed without a version bump."""
    current = contracts.contract(
        contracts.describe_api(launcher.load_manager_class(path)) for path in managers
    )
    if update:
        contract.write_bytes(contracts.dumps(current))
        typer.echo(f"wrote {contract}")
        return
    if not contract.exists():
        raise ValueError(f"no contract file {contract}: write one with --update")
    stored = orjson.loads(contract.read_bytes())
    errors, notes = contracts.compare(stored, current)
    for note in notes:
        typer.echo(f"note: {note} (run with --update to record it)")
    for error in errors:
        typer.echo(f"changed without a version bump: {error}", err=True)
    if errors:
        raise typer.Exit(code=1)
    if current != stored:
        typer.echo(f"{contract} is behind the code: run with --update")
    else:
        typer.echo(f"{contract}: the code matches")
