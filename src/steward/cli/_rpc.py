"""``steward call``, ``cast`` and ``report``: RPC to a running service from the shell."""

from __future__ import annotations

import asyncio
import typing

import orjson
import typer
from rich.console import Console

from steward._lazy import lazy_import
from steward.cli._app import errors_are_one_line, load
from steward.errors import MessagingTimeout

if typing.TYPE_CHECKING:
    from steward import context, db, registry, report, rpc
else:
    context = lazy_import("steward.context")
    db = lazy_import("steward.db")
    registry = lazy_import("steward.registry")
    report = lazy_import("steward.report")
    rpc = lazy_import("steward.rpc")

__all__ = ["call", "cast", "service_report"]

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
    settings = load()
    if settings.transport_url.startswith("memory://"):
        raise ValueError(
            "transport_url is memory://, which reaches only this process; "
            "set transport_url (e.g. --set transport_url=amqp://...) to reach a service"
        )
    transport = rpc.get_transport(settings=settings)
    try:
        target = rpc.Target(topic, server, namespace=namespace, version=version, fanout=fanout)
        client = rpc.RPCClient(transport, target, timeout=call_timeout, settings=settings)
        if wait_for_reply:
            return await client.call(context.get_admin_context(), method, **arguments)
        # A cast waits for the broker to take it, for ever if the broker never answers: a
        # command gives up after the timeout instead, naming the broker.
        seconds = call_timeout or settings.rpc_response_timeout
        try:
            async with asyncio.timeout(seconds):
                await client.cast(context.get_admin_context(), method, **arguments)
        except TimeoutError as exc:
            raise MessagingTimeout(
                f"the broker at {transport.url} did not take the cast within {seconds:g} s "
                "(is it running, and is the transport URL right?)"
            ) from exc
        return None
    finally:
        await transport.close()


@errors_are_one_line
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


@errors_are_one_line
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


@errors_are_one_line
def service_report(
    host: str,
    binary: str,
    as_json: typing.Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeout: typing.Annotated[float, typer.Option("--timeout", min=0.001)] = 30.0,
) -> None:
    """Ask BINARY on HOST for its service report (stacks, RPC and periodic stats, config)."""

    async def fetch() -> dict[str, typing.Any]:
        settings = load()
        async with db.Database.from_settings(settings) as database:
            record = await registry.Registry(database, settings=settings).get(host, binary)
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
    Console().print(report.format_report(data), highlight=False, markup=False)
