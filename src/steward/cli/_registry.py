"""``steward db`` and ``steward services``: the registry's schema, and the services in it."""

from __future__ import annotations

import asyncio
import typing

import orjson
import typer
from rich.console import Console
from rich.table import Table

from steward._lazy import lazy_import
from steward.cli._app import errors_are_one_line, load

if typing.TYPE_CHECKING:
    from steward import db, registry
else:
    db = lazy_import("steward.db")
    registry = lazy_import("steward.registry")

__all__ = [
    "db_app",
    "db_current",
    "db_upgrade",
    "services_app",
    "services_disable",
    "services_enable",
    "services_list",
]

db_app = typer.Typer(help="The registry database's schema.", no_args_is_help=True)
services_app = typer.Typer(help="The service registry.", no_args_is_help=True)


# --- db ------------------------------------------------------------------------------------------


@db_app.command("upgrade")
@errors_are_one_line
def db_upgrade() -> None:
    """Bring the database schema up to date."""

    async def upgrade() -> tuple[str | None, str | None]:
        async with db.Database.from_settings(load()) as database:
            before = await database.current_revision()
            await database.upgrade()
            return before, await database.current_revision()

    before, after = asyncio.run(upgrade())
    typer.echo(f"schema: {before or 'empty'} -> {after}")


@db_app.command("current")
@errors_are_one_line
def db_current() -> None:
    """Print the schema revision and whether it is the newest."""

    async def current() -> str | None:
        async with db.Database.from_settings(load()) as database:
            return await database.current_revision()

    revision, head = asyncio.run(current()), db.Database.head_revision()
    state = "up to date" if revision == head else f"behind {head}: run `steward db upgrade`"
    typer.echo(f"schema: {revision or 'empty'} ({state})")


# --- services ------------------------------------------------------------------------------------


@services_app.command("list")
@errors_are_one_line
def services_list(
    as_json: typing.Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    binary: typing.Annotated[str | None, typer.Option("--binary")] = None,
    topic: typing.Annotated[str | None, typer.Option("--topic")] = None,
) -> None:
    """List services with their up/down state (nova's rule, on the database clock)."""

    async def fetch() -> list[registry.ServiceStatus]:
        settings = load()
        async with db.Database.from_settings(settings) as database:
            await database.ensure_schema()
            return await registry.Registry(database, settings=settings).list_services(
                binary=binary, topic=topic
            )

    statuses = asyncio.run(fetch())
    if as_json:
        rows = [
            {
                "host": s.record.host,
                "binary": s.record.binary,
                "topic": s.record.topic,
                "state": "up" if s.up else "down",
                "disabled": s.record.disabled,
                "disabled_reason": s.record.disabled_reason,
                "forced_down": s.record.forced_down,
                "last_seen_up": s.record.last_seen_up,
                "report_count": s.record.report_count,
                "version": s.record.version,
            }
            for s in statuses
        ]
        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title="steward services", title_justify="left")
    for column in ("host", "binary", "topic", "state", "status", "last seen (UTC)", "version"):
        table.add_column(column, overflow="fold")
    for s in statuses:
        record = s.record
        state = "[green]up[/green]" if s.up else "[red]down[/red]"
        status = "enabled"
        if record.disabled:
            status = (
                f"disabled ({record.disabled_reason})" if record.disabled_reason else "disabled"
            )
        seen = (
            record.last_seen_up.isoformat(sep=" ", timespec="seconds")
            if record.last_seen_up
            else "-"
        )
        table.add_row(
            record.host, record.binary, record.topic, state, status, seen, str(record.version)
        )
    Console().print(table)


def _set_disabled(host: str, binary: str, disabled: bool, reason: str | None) -> None:
    async def update() -> None:
        settings = load()
        async with db.Database.from_settings(settings) as database:
            await database.ensure_schema()
            await registry.Registry(database, settings=settings).set_disabled(
                host, binary, disabled, reason=reason
            )

    asyncio.run(update())
    typer.echo(f"{binary} on {host}: {'disabled' if disabled else 'enabled'}")


@services_app.command("disable")
@errors_are_one_line
def services_disable(
    host: str,
    binary: str,
    reason: typing.Annotated[str | None, typer.Option("--reason")] = None,
) -> None:
    """Disable BINARY on HOST (schedulers skip it), with an optional reason."""
    _set_disabled(host, binary, True, reason)


@services_app.command("enable")
@errors_are_one_line
def services_enable(host: str, binary: str) -> None:
    """Enable BINARY on HOST again."""
    _set_disabled(host, binary, False, None)
