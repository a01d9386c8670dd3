"""The ``steward`` command: run services, inspect them, call them.

Global options ``--config-file`` and ``--set NAME=VALUE`` (repeatable) feed
:func:`steward.config.load_settings`, so every subcommand sees the settings a service started with
the same arguments sees. Commands:

* ``steward run module:ManagerClass --topic T [--workers N]`` — run a service (see
  :mod:`steward.launcher` for signals and workers);
* ``steward config show`` — effective settings, their source, secrets masked;
* ``steward db upgrade`` / ``steward db current`` — the registry's schema;
* ``steward services list|enable|disable`` — the registry;
* ``steward call|cast TOPIC METHOD [--arg k=v ...]`` — RPC from the shell;
* ``steward report HOST BINARY`` — a running service's report (:mod:`steward.report`).

Errors are one line on stderr and a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import typing
from collections.abc import Callable
from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from steward.config import Settings, load_settings, set_settings
from steward.errors import ConfigError, MessagingTimeout
from steward.redact import MaskingFormatter, mask_text

__all__ = ["app", "main"]

app = typer.Typer(
    name="steward",
    help="Run, inspect and call steward services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
db_app = typer.Typer(help="The registry database's schema.", no_args_is_help=True)
services_app = typer.Typer(help="The service registry.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(services_app, name="services")

_stderr = Console(stderr=True)


class _Options:
    """What the global options said, for the subcommands."""

    config_file: Path | None = None
    overrides: typing.ClassVar[dict[str, str]] = {}
    set_args: typing.ClassVar[list[str]] = []
    debug: bool = False


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
    _Options.config_file = config_file
    _Options.set_args = list(set_ or [])
    _Options.overrides = _parse_overrides(_Options.set_args)
    _Options.debug = debug


def _load() -> Settings:
    return load_settings(config_file=_Options.config_file, overrides=_Options.overrides)


P = typing.ParamSpec("P")


def _errors_are_one_line(command: Callable[P, None]) -> Callable[P, None]:
    """Turn steward's errors (and bad input) into one line on stderr and exit code 1 or 2."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if _Options.debug:
                raise
            code = 2 if isinstance(exc, ConfigError | ValueError | TypeError) else 1
            message = mask_text(f"{type(exc).__name__}: {exc}")
            # The message is text, never markup: a remote error or a name may hold "[/x]".
            _stderr.print(Text.assemble(("error:", "red"), " ", message), highlight=False)
            raise typer.Exit(code=code) from exc

    return wrapper


# --- config --------------------------------------------------------------------------------------


@config_app.command("show")
@_errors_are_one_line
def config_show(
    as_json: typing.Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """Print the effective settings, where each came from, and which may change on SIGHUP."""
    settings = _load()
    values = settings.masked(dotted=True)
    mutable = settings.mutable_options()
    if as_json:
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
        shown = value if isinstance(value, str) else repr(value)
        reload = "SIGHUP" if name in mutable else "restart"
        table.add_row(name, shown, settings.origin(name), reload)
    Console().print(table)


# --- run -----------------------------------------------------------------------------------------


def _configure_logging(settings: Settings) -> None:
    from steward.context import RequestContextFilter  # noqa: PLC0415 - run only

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(
        MaskingFormatter(
            f"%(asctime)s %(process)d %(levelname)s %(name)s [{settings.host} %(request_id)s] "
            "%(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if _Options.debug else logging.INFO)
    if not _Options.debug:
        logging.getLogger("alembic").setLevel(logging.WARNING)


@app.command("run")
@_errors_are_one_line
def run(
    manager: typing.Annotated[str, typer.Argument(help="The manager class, as module:Class.")],
    topic: typing.Annotated[str, typer.Option("--topic", help="The RPC topic to serve.")],
    binary: typing.Annotated[
        str | None, typer.Option("--binary", help="Name in the registry [steward-TOPIC].")
    ] = None,
    workers: typing.Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes, supervised.")
    ] = 1,
) -> None:
    """Run a service for MANAGER on TOPIC until SIGTERM or SIGINT (SIGHUP reloads)."""
    from steward import launcher  # noqa: PLC0415 - heavy imports only for run

    settings = _load()
    set_settings(settings)
    _configure_logging(settings)
    if workers > 1:
        command = [sys.executable, "-m", "steward"]
        if _Options.config_file is not None:
            command += ["--config-file", str(_Options.config_file)]
        for pair in _Options.set_args:
            command += ["--set", pair]
        command += ["run", manager, "--topic", topic, "--workers", "1"]
        if binary:
            command += ["--binary", binary]
        supervisor = launcher.ProcessLauncher(
            command, workers, graceful_shutdown_timeout=settings.graceful_shutdown_timeout
        )
        raise typer.Exit(code=asyncio.run(supervisor.run()))
    launcher.die_with_supervisor()
    manager_class = launcher.load_manager_class(manager)

    async def serve() -> int:
        from steward.service import Service  # noqa: PLC0415 - run only

        service = Service(
            manager_class(host=settings.host), topic=topic, binary=binary, settings=settings
        )
        return await launcher.ServiceLauncher([service], settings=settings).run()

    raise typer.Exit(code=asyncio.run(serve()))


# --- db ------------------------------------------------------------------------------------------


@db_app.command("upgrade")
@_errors_are_one_line
def db_upgrade() -> None:
    """Bring the database schema up to date."""
    from steward.db import Database  # noqa: PLC0415 - database commands only

    async def upgrade() -> tuple[str | None, str | None]:
        async with Database.from_settings(_load()) as db:
            before = await db.current_revision()
            await db.upgrade()
            return before, await db.current_revision()

    before, after = asyncio.run(upgrade())
    typer.echo(f"schema: {before or 'empty'} -> {after}")


@db_app.command("current")
@_errors_are_one_line
def db_current() -> None:
    """Print the schema revision and whether it is the newest."""
    from steward.db import Database  # noqa: PLC0415 - database commands only

    async def current() -> str | None:
        async with Database.from_settings(_load()) as db:
            return await db.current_revision()

    revision, head = asyncio.run(current()), Database.head_revision()
    state = "up to date" if revision == head else f"behind {head}: run `steward db upgrade`"
    typer.echo(f"schema: {revision or 'empty'} ({state})")


# --- services ------------------------------------------------------------------------------------


@services_app.command("list")
@_errors_are_one_line
def services_list(
    as_json: typing.Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    binary: typing.Annotated[str | None, typer.Option("--binary")] = None,
    topic: typing.Annotated[str | None, typer.Option("--topic")] = None,
) -> None:
    """List services with their up/down state (nova's rule, on the database clock)."""
    from steward.db import Database  # noqa: PLC0415 - registry commands only
    from steward.registry import Registry, ServiceStatus  # noqa: PLC0415

    async def fetch() -> list[ServiceStatus]:
        settings = _load()
        async with Database.from_settings(settings) as db:
            await db.ensure_schema()
            return await Registry(db, settings=settings).list_services(binary=binary, topic=topic)

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
    from steward.db import Database  # noqa: PLC0415 - registry commands only
    from steward.registry import Registry  # noqa: PLC0415

    async def update() -> None:
        settings = _load()
        async with Database.from_settings(settings) as db:
            await db.ensure_schema()
            await Registry(db, settings=settings).set_disabled(
                host, binary, disabled, reason=reason
            )

    asyncio.run(update())
    typer.echo(f"{binary} on {host}: {'disabled' if disabled else 'enabled'}")


@services_app.command("disable")
@_errors_are_one_line
def services_disable(
    host: str,
    binary: str,
    reason: typing.Annotated[str | None, typer.Option("--reason")] = None,
) -> None:
    """Disable BINARY on HOST (schedulers skip it), with an optional reason."""
    _set_disabled(host, binary, True, reason)


@services_app.command("enable")
@_errors_are_one_line
def services_enable(host: str, binary: str) -> None:
    """Enable BINARY on HOST again."""
    _set_disabled(host, binary, False, None)


# --- call and cast -------------------------------------------------------------------------------

_ArgOption = typing.Annotated[
    list[str] | None,
    typer.Option("--arg", metavar="KEY=VALUE", help="An argument; VALUE is JSON or a string."),
]
_JsonArgs = typing.Annotated[
    str | None, typer.Option("--json-args", help="All arguments as one JSON object.")
]
_Server = typing.Annotated[str | None, typer.Option("--server", help="One server of the topic.")]
_Namespace = typing.Annotated[str | None, typer.Option("--namespace")]
_Version = typing.Annotated[str, typer.Option("--version", help="Requested API version.")]


def _arguments(pairs: list[str] | None, json_args: str | None) -> dict[str, object]:
    arguments: dict[str, object] = {}
    if json_args is not None:
        try:
            parsed = orjson.loads(json_args)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"--json-args is not JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise ValueError("--json-args must be a JSON object")
        arguments.update(parsed)
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--arg expects KEY=VALUE, got {pair!r}")
        try:
            arguments[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            arguments[key] = raw
    return arguments


async def _send(
    *,
    topic: str,
    method: str,
    arguments: dict[str, object],
    server: str | None,
    namespace: str | None,
    version: str,
    call_timeout: float | None,
    fanout: bool,
    wait_for_reply: bool,
) -> object:
    from steward.context import get_admin_context  # noqa: PLC0415 - call/cast only
    from steward.rpc import RPCClient, Target, get_transport  # noqa: PLC0415

    settings = _load()
    if settings.transport_url.startswith("memory://"):
        raise ValueError(
            "transport_url is memory://, which reaches only this process; "
            "set transport_url (e.g. --set transport_url=amqp://...) to reach a service"
        )
    transport = get_transport(settings=settings)
    try:
        target = Target(topic, server, namespace=namespace, version=version, fanout=fanout)
        client = RPCClient(transport, target, timeout=call_timeout, settings=settings)
        if wait_for_reply:
            return await client.call(get_admin_context(), method, **arguments)
        # A cast waits for the broker to take it, for ever if the broker never answers: a
        # command gives up after the timeout instead, naming the broker.
        seconds = call_timeout or settings.rpc_response_timeout
        try:
            async with asyncio.timeout(seconds):
                await client.cast(get_admin_context(), method, **arguments)
        except TimeoutError as exc:
            raise MessagingTimeout(
                f"the broker at {transport.url} did not take the cast within {seconds:g} s "
                "(is it running, and is the transport URL right?)"
            ) from exc
        return None
    finally:
        await transport.close()


@app.command("call")
@_errors_are_one_line
def call(  # noqa: PLR0917 - typer maps each parameter to an option
    topic: str,
    method: str,
    arg: _ArgOption = None,
    json_args: _JsonArgs = None,
    server: _Server = None,
    namespace: _Namespace = None,
    version: _Version = "1.0",
    timeout: typing.Annotated[float | None, typer.Option("--timeout", min=0.001)] = None,
) -> None:
    """Call METHOD on a TOPIC service and print its result as JSON."""
    result = asyncio.run(
        _send(
            topic=topic, method=method, arguments=_arguments(arg, json_args), server=server,
            namespace=namespace, version=version, call_timeout=timeout, fanout=False,
            wait_for_reply=True,
        )
    )  # fmt: skip
    typer.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2, default=str).decode())


@app.command("cast")
@_errors_are_one_line
def cast(  # noqa: PLR0917 - typer maps each parameter to an option
    topic: str,
    method: str,
    arg: _ArgOption = None,
    json_args: _JsonArgs = None,
    server: _Server = None,
    namespace: _Namespace = None,
    version: _Version = "1.0",
    fanout: typing.Annotated[bool, typer.Option("--fanout", help="Every server of TOPIC.")] = False,
    timeout: typing.Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0.001, help="Give up if the broker has not taken it by then."
        ),
    ] = None,
) -> None:
    """Send METHOD to a TOPIC service without waiting for a result."""
    asyncio.run(
        _send(
            topic=topic, method=method, arguments=_arguments(arg, json_args), server=server,
            namespace=namespace, version=version, call_timeout=timeout, fanout=fanout,
            wait_for_reply=False,
        )
    )  # fmt: skip
    typer.echo("sent")


@app.command("report")
@_errors_are_one_line
def report(
    host: str,
    binary: str,
    as_json: typing.Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeout: typing.Annotated[float, typer.Option("--timeout", min=0.001)] = 30.0,
) -> None:
    """Ask BINARY on HOST for its service report (stacks, RPC and periodic stats, config)."""
    from steward.db import Database  # noqa: PLC0415 - report only
    from steward.registry import Registry  # noqa: PLC0415
    from steward.report import format_report  # noqa: PLC0415

    async def fetch() -> dict[str, typing.Any]:
        settings = _load()
        async with Database.from_settings(settings) as db:
            record = await Registry(db, settings=settings).get(host, binary)
        if record is None:
            raise LookupError(f"no service {binary!r} on host {host!r} in the registry")
        result = await _send(
            topic=record.topic, method="report", arguments={}, server=host,
            namespace="baseapi", version="1.1", call_timeout=timeout, fanout=False,
            wait_for_reply=True,
        )  # fmt: skip
        return typing.cast("dict[str, typing.Any]", result)

    data = asyncio.run(fetch())
    if as_json:
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    Console().print(format_report(data), highlight=False, markup=False)


def main() -> None:
    """Entry point of the ``steward`` console script."""
    app()
