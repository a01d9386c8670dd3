"""``pocketcloud up``: run every service, say when the cloud is up, and run the demo if asked.

On ``memory://`` every service runs in this process (:class:`~pocketcloud.allinone.AllInOne`);
on a broker each runs in a process of its own (``python -m pocketcloud.services``), supervised
by this one. Either way ``up`` announces the REST API once every service it started answers a
ping on its own queue (:mod:`pocketcloud.readiness`), names those that never do, and stops on
SIGINT or SIGTERM with exit code 0.

One piece past 400 lines: the command's options, its two ways to run the services, and the
supervision they share (:func:`_serve` runs the launcher, the announcement and the demo in one
task group, so one outcome decides the exit code); no part is used without the others.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import typing

import typer
from rich.console import Console

from pocketcloud import TOPICS
from pocketcloud.cli._errors import errors_are_one_line, print_error, stderr
from pocketcloud.cli._options import DataDir, cloud_overrides
from pocketcloud.services import (
    DatabaseOption,
    TransportOption,
    configure_logging,
    resolve_settings,
)
from steward._lazy import lazy_import

if typing.TYPE_CHECKING:
    import httpx

    import steward
    from pocketcloud import allinone, config, database, readiness
    from pocketcloud import demo as cloud_demo
    from pocketcloud.api import tokens
    from pocketcloud.config import CloudSettings
    from steward import config as steward_config
    from steward import db, rpc
    from steward import launcher as steward_launcher
else:
    httpx = lazy_import("httpx")
    allinone = lazy_import("pocketcloud.allinone")
    config = lazy_import("pocketcloud.config")
    database = lazy_import("pocketcloud.database")
    cloud_demo = lazy_import("pocketcloud.demo")
    readiness = lazy_import("pocketcloud.readiness")
    tokens = lazy_import("pocketcloud.api.tokens")
    db = lazy_import("steward.db")
    steward_launcher = lazy_import("steward.launcher")
    rpc = lazy_import("steward.rpc")
    steward_config = lazy_import("steward.config")

__all__ = ["DEMO_TIMEOUT", "STARTUP_TIMEOUT", "up"]

DEMO_TIMEOUT = 120.0
"""Seconds the demo may take before it is given up."""
STARTUP_TIMEOUT = 120.0
"""Seconds the services may take to serve the REST API before ``up`` gives up."""


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
    with errors_are_one_line(debug):
        overrides = cloud_overrides(
            data_dir=data_dir.resolve() if data_dir is not None else None,
            api_port=api_port,
            network_manager=network_manager,
            compute_driver=compute_driver,
            volume_driver=volume_driver,
        )
        cloud_settings = config.load_cloud_settings(overrides)
        if cloud_settings.api_token_file is not None:
            # A bad token file is one line here, not the api service failing its start.
            tokens.load_tokens(cloud_settings.api_token_file)
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
    if cloud_settings.api_port:
        # A port in use is one line here, before anything starts, rather than the api service
        # failing its start with a traceback (port 0 is any free one: nothing to check).
        _api_port(cloud_settings.api_host, cloud_settings.api_port)
    steward_config.set_settings(settings)
    cloud = allinone.AllInOne(cloud_settings, settings=settings, compute_hosts=compute_hosts)
    await cloud.prepare()
    launcher = steward_launcher.ServiceLauncher(cloud.services, settings=settings)
    pending: set[tuple[str, str]] = set()

    async def ready() -> str:
        while cloud.api.rest is None or cloud.api.rest.port is None:  # noqa: ASYNC110 - no event
            await asyncio.sleep(0.05)
        services = [(service.topic, service.host) for service in cloud.services]
        await readiness.wait_until_consuming(cloud.transport, services, pending=pending)
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
    port = _api_port(cloud_settings.api_host, cloud_settings.api_port)
    if settings.database_url.startswith("sqlite"):
        stderr.print(
            "[yellow]note:[/yellow] every service process shares one SQLite file; for more than "
            "a try-out, give a PostgreSQL --database-url",
            highlight=False,
            soft_wrap=True,
        )
    cloud_settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The schema first, once: the services only check it.
    async with db.Database(settings.database_url) as schema:
        await database.ensure_schemas(schema, upgrade=True)
    # Secrets travel in the environment, never on a command line that `ps` shows.
    environment = {
        "STEWARD_TRANSPORT_URL": settings.transport_url,
        "STEWARD_DATABASE_URL": settings.database_url,
        **{f"{config.ENV_PREFIX}{name.upper()}": str(value) for name, value in overrides.items()},
        f"{config.ENV_PREFIX}DATA_DIR": str(cloud_settings.data_dir.resolve()),
        f"{config.ENV_PREFIX}API_PORT": str(port),
    }
    program = [sys.executable, "-m", "pocketcloud.services"]
    extra = ["--debug"] if debug else []
    commands = [[*program, topic, *extra] for topic in TOPICS if topic != "compute"]
    commands += [[*program, "compute", "--host", host, *extra] for host in compute_hosts]
    launcher = steward_launcher.ProcessLauncher.for_commands(
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
        transport = rpc.get_transport(settings=settings)
        try:
            await readiness.wait_until_consuming(transport, services, pending=pending)
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
            stderr.print(
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
    url = await announced
    if url is None:
        return 1
    code = 0
    try:
        async with asyncio.timeout(DEMO_TIMEOUT):
            await cloud_demo.run_demo(url, console=console, token=token)
    except TimeoutError:
        stderr.print(f"[red]demo failed:[/red] it did not finish within {DEMO_TIMEOUT:g} s")
        code = 1
    except (cloud_demo.DemoError, OSError) as exc:
        print_error("demo failed:", str(exc))
        code = 1
    if exit_after or code != 0:
        launcher.request_stop()
    else:
        console.print("Serving the API until Ctrl-C.")
    return code
