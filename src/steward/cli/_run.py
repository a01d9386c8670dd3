"""``steward run``: serve a manager on a topic, in this process or in supervised workers."""

from __future__ import annotations

import asyncio
import logging
import sys
import typing

import typer

from steward._lazy import lazy_import
from steward.cli._app import Options, errors_are_one_line, load
from steward.redact import MaskingFormatter

if typing.TYPE_CHECKING:
    from steward import config, context, launcher, service
else:
    config = lazy_import("steward.config")
    context = lazy_import("steward.context")
    launcher = lazy_import("steward.launcher")
    service = lazy_import("steward.service")

__all__ = ["run"]


def _configure_logging(settings: config.Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(context.RequestContextFilter())
    handler.setFormatter(
        MaskingFormatter(
            f"%(asctime)s %(process)d %(levelname)s %(name)s [{settings.host} %(request_id)s] "
            "%(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if Options.debug else logging.INFO)
    if not Options.debug:
        logging.getLogger("alembic").setLevel(logging.WARNING)


@errors_are_one_line
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
    settings = load()
    config.set_settings(settings)
    _configure_logging(settings)
    if workers > 1:
        command = [sys.executable, "-m", "steward"]
        for path in Options.config_files:
            command += ["--config-file", str(path)]
        for pair in Options.set_args:
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
        served = service.Service(
            manager_class(host=settings.host), topic=topic, binary=binary, settings=settings
        )
        return await launcher.ServiceLauncher([served], settings=settings).run()

    raise typer.Exit(code=asyncio.run(serve()))
