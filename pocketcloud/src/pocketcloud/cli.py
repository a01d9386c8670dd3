"""The ``pocketcloud`` command.

* ``pocketcloud up [--demo] [--demo-exit]`` — every service in this process on ``memory://`` and
  an SQLite database in ``--data-dir``, serving the REST API on 127.0.0.1 until SIGINT or SIGTERM
  (a graceful stop, exit code 0). It says it is up once every service it started answers a ping on
  its own queue (:mod:`pocketcloud.readiness`). ``--demo`` then makes a network, a volume and
  three servers through the API (or finds them by name) and shows them in a table (sending
  ``--token`` when the API has tokens); ``--demo-exit`` stops once the demo is done (for scripts
  and CI). With ``--transport-url amqp://...`` (and ``--database-url postgresql+asyncpg://...``)
  each service runs in a process of its own instead, supervised by this one (a dead one is
  restarted), as the ``pocketcloud-<service>`` commands would run them.
* ``pocketcloud db upgrade`` / ``pocketcloud db current`` — pocketcloud's schema (and steward's,
  which it sits beside), in the data directory's database or ``--database-url``.
* ``pocketcloud server|volume|network|host ...`` — a user's commands, over the REST API.

Options not on the command line come from ``POCKETCLOUD_<NAME>`` (pocketcloud's settings) and
``STEWARD_<NAME>`` (steward's) environment variables. Logs go to ``<data dir>/pocketcloud.log``,
warnings also to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console

from pocketcloud.commands import host_app, network_app, server_app, volume_app
from pocketcloud.services import DatabaseOption, TransportOption
from steward.redact import mask_text

if typing.TYPE_CHECKING:
    import steward
    from pocketcloud.config import CloudSettings

__all__ = ["app", "main"]

app = typer.Typer(
    name="pocketcloud",
    help="A small cloud on steward: run it, and see it work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="pocketcloud's database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(server_app, name="server")
app.add_typer(volume_app, name="volume")
app.add_typer(network_app, name="network")
app.add_typer(host_app, name="host")

_stderr = Console(stderr=True)

DataDir = typing.Annotated[
    Path | None,
    typer.Option("--data-dir", help="Database, consoles and volumes [./pocketcloud-data]."),
]
DEMO_TIMEOUT = 120.0
"""Seconds the demo may take before it is given up."""
STARTUP_TIMEOUT = 120.0
"""Seconds the services may take to serve the REST API before ``up`` gives up."""


@contextlib.contextmanager
def _errors_are_one_line(debug: bool) -> Iterator[None]:
    """Turn an error into one line on stderr and exit code 1 (2 for bad settings)."""
    from steward import ConfigError  # noqa: PLC0415 - keeps --help fast

    try:
        yield
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:
        if debug:
            raise
        code = 2 if isinstance(exc, ConfigError) else 1
        _print_error("error:", f"{type(exc).__name__}: {str(exc) or 'no detail'}")
        raise typer.Exit(code=code) from exc


def _print_error(label: str, message: str) -> None:
    """Print ``label message`` on stderr in one line: as it is (never as markup), URLs masked."""
    from rich.text import Text  # noqa: PLC0415 - keeps --help fast

    shown = mask_text(message)
    _stderr.print(Text.assemble((label, "red"), " ", shown), highlight=False, soft_wrap=True)


def _cloud_overrides(**values: object) -> dict[str, object]:
    return {name: value for name, value in values.items() if value is not None}


@app.command("up")
def up(  # noqa: PLR0917 - typer takes a command's options as its parameters
    demo: typing.Annotated[
        bool, typer.Option("--demo", help="Make a network, a volume and three servers.")
    ] = False,
    demo_exit: typing.Annotated[
        bool, typer.Option("--demo-exit", help="With --demo: stop once the demo is done.")
    ] = False,
    data_dir: DataDir = None,
    compute_hosts: typing.Annotated[
        int, typer.Option("--compute-hosts", min=1, max=16, help="Compute hosts to run.")
    ] = 2,
    api_port: typing.Annotated[
        int | None, typer.Option("--api-port", min=0, max=65535, help="REST port [8774]; 0: any.")
    ] = None,
    network_manager: typing.Annotated[
        str | None, typer.Option("--network-manager", help="flat or vlan [flat].")
    ] = None,
    compute_driver: typing.Annotated[
        str, typer.Option("--compute-driver", help="fake or process.")
    ] = "process",
    volume_driver: typing.Annotated[
        str, typer.Option("--volume-driver", help="fake or file.")
    ] = "file",
    transport_url: TransportOption = None,
    database_url: DatabaseOption = None,
    token: typing.Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="POCKETCLOUD_TOKEN",
            help="With --demo and api_token_file: the token the demo sends.",
            show_default=False,
        ),
    ] = None,
    debug: typing.Annotated[bool, typer.Option("--debug", help="Debug logs on stderr.")] = False,
) -> None:
    """Run every pocketcloud service until Ctrl-C: in this process, or one process each.

    On memory:// (the default) every service runs in this process. With another transport
    (``--transport-url amqp://...``) each service runs in a process of its own, supervised by
    this one, sharing the broker and the database (``--database-url``).
    """
    with _errors_are_one_line(debug):
        from pocketcloud.config import load_cloud_settings  # noqa: PLC0415 - keeps --help fast
        from pocketcloud.services import configure_logging, resolve_settings  # noqa: PLC0415

        overrides = _cloud_overrides(
            data_dir=data_dir.resolve() if data_dir is not None else None,
            api_port=api_port,
            network_manager=network_manager,
            compute_driver=compute_driver,
            volume_driver=volume_driver,
        )
        cloud_settings = load_cloud_settings(overrides)
        if cloud_settings.api_token_file is not None:
            # A bad token file is one line here, not the api service failing its start.
            from pocketcloud.api.tokens import load_tokens  # noqa: PLC0415

            load_tokens(cloud_settings.api_token_file)
        settings = resolve_settings(
            cloud_settings, transport_url=transport_url, database_url=database_url
        )
        configure_logging(cloud_settings.data_dir, name="pocketcloud", debug=debug)
        hosts = [f"compute{number}" for number in range(1, compute_hosts + 1)]
        if settings.transport_url.startswith("memory:"):
            run = _up(
                cloud_settings,
                settings,
                compute_hosts=hosts,
                demo=demo,
                demo_exit=demo_exit,
                token=token,
            )
        else:
            run = _up_processes(
                cloud_settings,
                settings,
                overrides=overrides,
                compute_hosts=hosts,
                demo=demo,
                demo_exit=demo_exit,
                token=token,
                debug=debug,
            )
        code = asyncio.run(run)
    raise typer.Exit(code=code)


async def _up(
    cloud_settings: CloudSettings,
    settings: steward.Settings,
    *,
    compute_hosts: list[str],
    demo: bool,
    demo_exit: bool,
    token: str | None,
) -> int:
    """Every service in this process, on an in-process transport."""
    from pocketcloud.allinone import AllInOne  # noqa: PLC0415 - run only
    from steward.config import set_settings  # noqa: PLC0415
    from steward.launcher import ServiceLauncher  # noqa: PLC0415

    if cloud_settings.api_port:
        # A port in use is one line here, before anything starts, rather than the api service
        # failing its start with a traceback (port 0 is any free one: nothing to check).
        _api_port(cloud_settings.api_host, cloud_settings.api_port)
    from pocketcloud.readiness import wait_until_consuming  # noqa: PLC0415

    set_settings(settings)
    cloud = AllInOne(cloud_settings, settings=settings, compute_hosts=compute_hosts)
    await cloud.prepare()
    launcher = ServiceLauncher(cloud.services, settings=settings)
    pending: set[tuple[str, str]] = set()

    async def ready() -> str:
        while cloud.api.rest is None or cloud.api.rest.port is None:  # noqa: ASYNC110 - no event
            await asyncio.sleep(0.05)
        services = [(service.topic, service.host) for service in cloud.services]
        await wait_until_consuming(cloud.transport, services, pending=pending)
        return cloud.api_url

    try:
        return await _serve(
            launcher,
            ready(),
            f"{len(cloud.computes)} compute hosts in this process",
            cloud_settings,
            pending=pending,
            demo=demo,
            demo_exit=demo_exit,
            token=token,
        )
    finally:
        await cloud.close()


async def _up_processes(
    cloud_settings: CloudSettings,
    settings: steward.Settings,
    *,
    overrides: dict[str, object],
    compute_hosts: list[str],
    demo: bool,
    demo_exit: bool,
    token: str | None,
    debug: bool,
) -> int:
    """One process per service (``python -m pocketcloud.services``), supervised by this one."""
    from pocketcloud.config import ENV_PREFIX  # noqa: PLC0415 - run only
    from pocketcloud.database import ensure_schemas  # noqa: PLC0415
    from pocketcloud.readiness import wait_until_consuming  # noqa: PLC0415
    from pocketcloud.rpc import TOPICS  # noqa: PLC0415
    from steward.db import Database  # noqa: PLC0415
    from steward.launcher import ProcessLauncher  # noqa: PLC0415
    from steward.rpc import get_transport  # noqa: PLC0415

    port = _api_port(cloud_settings.api_host, cloud_settings.api_port)
    if settings.database_url.startswith("sqlite"):
        _stderr.print(
            "[yellow]note:[/yellow] every service process shares one SQLite file; for more than "
            "a try-out, give a PostgreSQL --database-url",
            highlight=False,
            soft_wrap=True,
        )
    cloud_settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The schema first, once: the services only check it.
    async with Database(settings.database_url) as db:
        await ensure_schemas(db, upgrade=True)
    # Secrets travel in the environment, never on a command line that `ps` shows.
    environment = {
        "STEWARD_TRANSPORT_URL": settings.transport_url,
        "STEWARD_DATABASE_URL": settings.database_url,
        **{f"{ENV_PREFIX}{name.upper()}": str(value) for name, value in overrides.items()},
        f"{ENV_PREFIX}DATA_DIR": str(cloud_settings.data_dir.resolve()),
        f"{ENV_PREFIX}API_PORT": str(port),
    }
    program = [sys.executable, "-m", "pocketcloud.services"]
    extra = ["--debug"] if debug else []
    commands = [[*program, topic, *extra] for topic in TOPICS if topic != "compute"]
    commands += [[*program, "compute", "--host", host, *extra] for host in compute_hosts]
    launcher = ProcessLauncher.for_commands(
        commands,
        graceful_shutdown_timeout=settings.graceful_shutdown_timeout,
        environment=environment,
    )
    url = f"http://{_url_host(cloud_settings.api_host)}:{port}"
    services = [(topic, settings.host) for topic in TOPICS if topic != "compute"]
    services += [("compute", host) for host in compute_hosts]
    pending: set[tuple[str, str]] = set()

    async def ready() -> str:
        await _api_answers(url)
        transport = get_transport(settings=settings)
        try:
            await wait_until_consuming(transport, services, pending=pending)
        finally:
            await transport.close()
        return url

    return await _serve(
        launcher,
        ready(),
        f"{len(commands)} service processes on {settings.masked()['transport_url']}",
        cloud_settings,
        pending=pending,
        demo=demo,
        demo_exit=demo_exit,
        token=token,
    )


class _Launcher(typing.Protocol):
    async def run(self) -> int: ...
    def request_stop(self) -> None: ...


async def _serve(
    launcher: _Launcher,
    api_url: typing.Coroutine[None, None, str],
    where: str,
    cloud_settings: CloudSettings,
    *,
    pending: set[tuple[str, str]],
    demo: bool,
    demo_exit: bool,
    token: str | None,
) -> int:
    """Run ``launcher``; once ``api_url`` returns, say so and run the demo if asked.

    ``api_url`` returns once the REST API serves and every service consumes its queue;
    ``pending`` holds the ``(topic, host)`` of those that do not yet, to name them on a timeout.
    """
    console = Console()
    outcome: asyncio.Task[int] | None = None
    try:
        async with asyncio.TaskGroup() as tasks:
            running = tasks.create_task(launcher.run())
            announced = tasks.create_task(
                _announce(
                    api_url,
                    running,
                    launcher=launcher,
                    console=console,
                    where=where,
                    cloud_settings=cloud_settings,
                    pending=pending,
                )
            )
            if demo:
                outcome = tasks.create_task(
                    _demo(console, announced, exit_after=demo_exit, launcher=launcher, token=token)
                )
            code = await running
            announced.cancel()
            if outcome is not None:
                outcome.cancel()
    except BaseExceptionGroup as group:
        # One failure (a service that cannot start) is the news; the group is noise.
        raise group.exceptions[0] from None
    if announced.done() and not announced.cancelled() and announced.result() is None:
        return 1  # never served: it stopped, or was stopped, before the API answered
    if outcome is not None and not outcome.cancelled() and outcome.result() != 0:
        return outcome.result()
    return code


async def _announce(
    api_url: typing.Coroutine[None, None, str],
    running: asyncio.Task[int],
    *,
    launcher: _Launcher,
    console: Console,
    where: str,
    cloud_settings: CloudSettings,
    pending: set[tuple[str, str]],
) -> str | None:
    """Wait until the services serve, say where, and return the API's URL (None: they never did).

    Services that do not all consume within :data:`STARTUP_TIMEOUT` (one that cannot start,
    restarted again and again) are stopped, with a line naming those that did not answer and
    saying where their logs are.
    """
    waiting = asyncio.ensure_future(api_url)
    await asyncio.wait(
        [waiting, running], timeout=STARTUP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
    )
    if not waiting.done():
        waiting.cancel()
        if not running.done():
            silent = ", ".join(f"{topic} on {host}" for topic, host in sorted(pending))
            what = f"the services {silent} did not" if silent else "the REST API did not"
            _stderr.print(
                f"[red]error:[/red] {what} answer within {STARTUP_TIMEOUT:g} s; stopping. "
                f"The services' logs are in {cloud_settings.data_dir}.",
                highlight=False,
                soft_wrap=True,
            )
            launcher.request_stop()
        return None
    url = waiting.result()
    console.print(
        f"pocketcloud is up: REST API on [bold]{url}/v1[/bold] (OpenAPI docs at {url}/docs); "
        f"{where}; data in {cloud_settings.data_dir}. Ctrl-C stops it.",
        highlight=False,
        soft_wrap=True,
    )
    return url


async def _api_answers(url: str) -> str:
    """Return ``url`` once the REST API there answers (the api process has started).

    It asks for the API's description, which needs no token.
    """
    import httpx  # noqa: PLC0415 - run only

    async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        while True:
            try:
                if (await client.get("/openapi.json")).status_code == httpx.codes.OK:
                    return url
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


def _api_port(host: str, port: int) -> int:
    """Return the port the api process will serve on, checked free now (0: any free one).

    A port in use is an error here, at once, rather than an api process that fails and is
    restarted again and again.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(f"the REST API cannot listen on {host}:{port}: {exc.strerror}") from exc
        return int(probe.getsockname()[1])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _demo(
    console: Console,
    announced: asyncio.Task[str | None],
    *,
    exit_after: bool,
    launcher: _Launcher,
    token: str | None,
) -> int:
    from pocketcloud.demo import DemoError, run_demo  # noqa: PLC0415

    url = await announced
    if url is None:
        return 1
    code = 0
    try:
        async with asyncio.timeout(DEMO_TIMEOUT):
            await run_demo(url, console=console, token=token)
    except TimeoutError:
        _stderr.print(f"[red]demo failed:[/red] it did not finish within {DEMO_TIMEOUT:g} s")
        code = 1
    except (DemoError, OSError) as exc:
        _print_error("demo failed:", str(exc))
        code = 1
    if exit_after or code != 0:
        launcher.request_stop()
    else:
        console.print("Serving the API until Ctrl-C.")
    return code


def _database_url(data_dir: Path | None, database_url: str | None) -> str:
    from pocketcloud.config import load_cloud_settings  # noqa: PLC0415 - database commands only
    from pocketcloud.services import resolve_settings  # noqa: PLC0415

    cloud_settings = load_cloud_settings(_cloud_overrides(data_dir=data_dir))
    cloud_settings.data_dir.mkdir(parents=True, exist_ok=True)
    return resolve_settings(cloud_settings, database_url=database_url).database_url


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None, database_url: DatabaseOption = None) -> None:
    """Bring steward's and pocketcloud's schemas up to date."""
    with _errors_are_one_line(debug=False):
        from pocketcloud.database import MIGRATIONS, ensure_schemas  # noqa: PLC0415
        from steward.db import Database  # noqa: PLC0415 - database commands only

        url = _database_url(data_dir, database_url)

        async def upgrade() -> str | None:
            async with Database(url) as db:
                await ensure_schemas(db, upgrade=True)
                return await db.current_revision(migrations=MIGRATIONS)

        typer.echo(f"pocketcloud schema: {asyncio.run(upgrade())}")


@db_app.command("current")
def db_current(data_dir: DataDir = None, database_url: DatabaseOption = None) -> None:
    """Print pocketcloud's schema revision and whether it is the newest."""
    with _errors_are_one_line(debug=False):
        from pocketcloud.database import MIGRATIONS  # noqa: PLC0415
        from steward.db import Database  # noqa: PLC0415 - database commands only

        url = _database_url(data_dir, database_url)

        async def current() -> str | None:
            async with Database(url) as db:
                return await db.current_revision(migrations=MIGRATIONS)

        revision, head = asyncio.run(current()), Database.head_revision(MIGRATIONS)
        state = "up to date" if revision == head else f"behind {head}: run `pocketcloud db upgrade`"
        typer.echo(f"pocketcloud schema: {revision or 'empty'} ({state})")


def main() -> None:
    """Run the ``pocketcloud`` command."""
    app()
