"""One pocketcloud service per process: the ``pocketcloud-<service>`` commands.

nova runs ``nova-api``, ``nova-scheduler``, ``nova-compute``... as programs of their own, on one
machine or many, talking through the broker and sharing one database; pocketcloud does the same::

    pocketcloud db upgrade --database-url postgresql+asyncpg://pocketcloud@db/pocketcloud
    pocketcloud-network --transport-url amqp://... --database-url postgresql+asyncpg://...
    pocketcloud-compute --host compute1 --transport-url amqp://... --database-url ...

Each command runs one service (its manager wrapped in a steward
:class:`~steward.service.Service`) under steward's :class:`~steward.launcher.ServiceLauncher`:
SIGTERM or SIGINT stop it gracefully (requests in flight finish, or go back to the queue after
``graceful_shutdown_timeout``), SIGHUP reloads, SIGUSR2 writes a report. ``python -m
pocketcloud.services <service> [options]`` is the same for a process started by
``pocketcloud up --transport-url ...``, which supervises one such process per service.

Settings come from steward's and pocketcloud's usual sources (``STEWARD_<NAME>``,
``POCKETCLOUD_<NAME>``), the command line winning. The transport URL and the database URL carry
credentials: pass them in the environment (``STEWARD_TRANSPORT_URL``, ``STEWARD_DATABASE_URL``)
where a command line would show them to ``ps``. Without a database URL a service uses the data
directory's SQLite file, as ``pocketcloud up`` does. Any database but the embedded one must be at
the newest schema before a service starts: ``pocketcloud db upgrade --database-url ...``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import typing
from pathlib import Path

import typer

from pocketcloud import TOPICS
from steward.redact import MaskingFormatter, mask_text

if typing.TYPE_CHECKING:
    import steward
    from pocketcloud.config import CloudSettings
    from pocketcloud.manager import CloudManager, ManagerOptions
    from steward.clock import Clock
    from steward.registry import Registry
    from steward.rpc import Transport
    from steward.service import Service

__all__ = [
    "configure_logging",
    "make_manager",
    "make_service",
    "resolve_settings",
    "serve",
    "service_command",
]

LOG = logging.getLogger(__name__)


def make_manager(
    topic: str,
    host: str | None,
    *,
    serve_rest: bool = True,
    **options: typing.Unpack[ManagerOptions],
) -> CloudManager:
    """Return the manager of the service on ``topic`` (the network one the settings choose)."""
    from pocketcloud.api.manager import ApiManager  # noqa: PLC0415 - heavy imports
    from pocketcloud.compute.manager import ComputeManager  # noqa: PLC0415
    from pocketcloud.network.manager import MANAGERS  # noqa: PLC0415
    from pocketcloud.scheduler.manager import SchedulerManager  # noqa: PLC0415
    from pocketcloud.volume.manager import VolumeManager  # noqa: PLC0415

    match topic:
        case "api":
            return ApiManager(host, serve_rest=serve_rest, **options)
        case "network":
            return MANAGERS[options["cloud_settings"].network_manager](host, **options)
        case "volume":
            return VolumeManager(host, **options)
        case "scheduler":
            return SchedulerManager(host, **options)
        case "compute":
            return ComputeManager(host, **options)
    raise ValueError(f"unknown pocketcloud service {topic!r}; known: {', '.join(TOPICS)}")


def make_service(
    topic: str,
    manager: CloudManager,
    *,
    transport: Transport,
    registry: Registry,
    settings: steward.Settings,
    clock: Clock | None = None,
) -> Service:
    """Wrap ``manager`` in the steward service of ``topic``, named as the registry knows it."""
    from pocketcloud.rpc import binary_of  # noqa: PLC0415 - run only
    from steward.service import Service  # noqa: PLC0415

    return Service(
        manager,
        topic=topic,
        binary=binary_of(topic),
        transport=transport,
        registry=registry,
        settings=settings,
        clock=clock,
    )


def resolve_settings(
    cloud_settings: CloudSettings,
    *,
    transport_url: str | None = None,
    database_url: str | None = None,
    host: str | None = None,
) -> steward.Settings:
    """Return steward's settings for a pocketcloud process (the command line's values first).

    A database URL given nowhere (not on the command line, not in ``STEWARD_DATABASE_URL``)
    means the data directory's SQLite file, not steward's own default. The settings remember
    these overrides, so a SIGHUP reload (:meth:`steward.Settings.reread`) reads the same.
    """
    import steward  # noqa: PLC0415 - run only

    overrides = {
        name: value
        for name, value in (
            ("transport_url", transport_url),
            ("database_url", database_url),
            ("host", host),
        )
        if value is not None
    }
    settings = steward.load_settings(overrides=overrides)
    if settings.origin("database_url") == "default":
        overrides["database_url"] = cloud_settings.database_url
        settings = steward.load_settings(overrides=overrides)
    return settings


def configure_logging(data_dir: Path, *, name: str, debug: bool) -> Path:
    """Log to ``<data_dir>/<name>.log`` (warnings also to stderr); return the file's path."""
    from steward.context import RequestContextFilter  # noqa: PLC0415 - run only

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"{name}.log"
    context = RequestContextFilter()
    fmt = "%(asctime)s %(process)d %(levelname)s %(name)s [%(request_id)s] %(message)s"
    to_file = logging.FileHandler(path)
    to_file.setFormatter(MaskingFormatter(fmt))
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setLevel(logging.DEBUG if debug else logging.WARNING)
    to_stderr.setFormatter(MaskingFormatter(f"{name}: %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = []
    for handler in (to_file, to_stderr):
        handler.addFilter(context)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy in ("alembic", "httpx", "aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


async def serve(topic: str, cloud_settings: CloudSettings, settings: steward.Settings) -> int:
    """Run the service on ``topic`` in this process until SIGTERM/SIGINT; return the exit code.

    Raises :class:`steward.ConfigError` when the database's schema is not the newest (an
    embedded SQLite database is upgraded instead).
    """
    from pocketcloud.database import ensure_schemas  # noqa: PLC0415 - run only
    from steward.config import set_settings  # noqa: PLC0415
    from steward.db import Database  # noqa: PLC0415
    from steward.launcher import ServiceLauncher  # noqa: PLC0415
    from steward.registry import Registry  # noqa: PLC0415
    from steward.rpc import get_transport  # noqa: PLC0415

    set_settings(settings)
    cloud_settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url)
    transport = get_transport(settings=settings)
    try:
        await ensure_schemas(db)
        manager = make_manager(
            topic,
            settings.host,
            db=db,
            cloud_settings=cloud_settings,
            transport=transport,
            settings=settings,
        )
        service = make_service(
            topic,
            manager,
            transport=transport,
            registry=Registry(db, settings=settings),
            settings=settings,
        )
        return await ServiceLauncher([service], settings=settings).run()
    finally:
        await transport.close()
        await db.dispose()


# --- the commands --------------------------------------------------------------------------------

HostOption = typing.Annotated[
    str | None,
    typer.Option(
        "--host", help="This service's host name (compute: its queue); default: the hostname."
    ),
]
TransportOption = typing.Annotated[
    str | None,
    typer.Option(
        "--transport-url",
        help="amqp://user:pass@host:5672/vhost, nats://host:4222 [STEWARD_TRANSPORT_URL].",
    ),
]
DatabaseOption = typing.Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL, e.g. postgresql+asyncpg://user@host/db "
        "[STEWARD_DATABASE_URL, else SQLite in the data directory].",
    ),
]
DataDirOption = typing.Annotated[
    Path | None,
    typer.Option("--data-dir", help="Consoles, volumes, logs [POCKETCLOUD_DATA_DIR]."),
]
DebugOption = typing.Annotated[bool, typer.Option("--debug", help="Debug logs on stderr.")]


def _run(
    topic: str,
    *,
    host: str | None,
    transport_url: str | None,
    database_url: str | None,
    data_dir: Path | None,
    debug: bool,
) -> None:
    from pocketcloud.config import load_cloud_settings  # noqa: PLC0415 - keeps --help fast
    from pocketcloud.rpc import binary_of  # noqa: PLC0415
    from steward import ConfigError  # noqa: PLC0415
    from steward.launcher import die_with_supervisor  # noqa: PLC0415

    die_with_supervisor()
    try:
        cloud_settings = load_cloud_settings({} if data_dir is None else {"data_dir": data_dir})
        if topic == "api" and cloud_settings.api_token_file is not None:
            # A bad token file is one line here, not a failed start with a traceback.
            from pocketcloud.api.tokens import load_tokens  # noqa: PLC0415

            load_tokens(cloud_settings.api_token_file)
        settings = resolve_settings(
            cloud_settings, transport_url=transport_url, database_url=database_url, host=host
        )
        name = binary_of(topic) if topic != "compute" else f"{binary_of(topic)}-{settings.host}"
        configure_logging(cloud_settings.data_dir, name=name, debug=debug)
        code = asyncio.run(serve(topic, cloud_settings, settings))
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:
        if debug:
            raise
        typer.echo(mask_text(f"{binary_of(topic)}: error: {type(exc).__name__}: {exc}"), err=True)
        raise typer.Exit(code=2 if isinstance(exc, ConfigError) else 1) from exc
    raise typer.Exit(code=code)


def service_command(topic: str) -> typer.Typer:
    """Return the ``pocketcloud-<topic>`` command: run that one service until SIGTERM."""
    if topic not in TOPICS:
        raise ValueError(f"unknown pocketcloud service {topic!r}; known: {', '.join(TOPICS)}")
    app = typer.Typer(
        name=f"pocketcloud-{topic}", add_completion=False, pretty_exceptions_enable=False
    )

    @app.command(help=f"Run pocketcloud's {topic} service in this process until SIGTERM.")
    def run(
        host: HostOption = None,
        transport_url: TransportOption = None,
        database_url: DatabaseOption = None,
        data_dir: DataDirOption = None,
        debug: DebugOption = False,
    ) -> None:
        _run(
            topic,
            host=host,
            transport_url=transport_url,
            database_url=database_url,
            data_dir=data_dir,
            debug=debug,
        )

    return app


def api() -> None:
    """``pocketcloud-api``: the REST API and the servers' records."""
    service_command("api")()


def scheduler() -> None:
    """``pocketcloud-scheduler``: picks a compute host for each new server."""
    service_command("scheduler")()


def compute() -> None:
    """``pocketcloud-compute``: runs this host's instances."""
    service_command("compute")()


def volume() -> None:
    """``pocketcloud-volume``: volumes and their attachments."""
    service_command("volume")()


def network() -> None:
    """``pocketcloud-network``: networks and fixed IPs (Flat or Vlan manager)."""
    service_command("network")()


def main() -> None:
    """``python -m pocketcloud.services <service> [options]``."""
    if len(sys.argv) < 2 or sys.argv[1] not in TOPICS:  # noqa: PLR2004 - program, service
        typer.echo(f"usage: python -m pocketcloud.services {{{','.join(TOPICS)}}} [options]")
        raise SystemExit(2)
    topic = sys.argv.pop(1)
    service_command(topic)(prog_name=f"pocketcloud-{topic}")


if __name__ == "__main__":
    main()
