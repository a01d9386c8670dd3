"""The ``pocketcloud`` command.

* ``pocketcloud up [--demo] [--demo-exit]`` — every service in this process on ``memory://`` and
  an SQLite database in ``--data-dir``, serving the REST API on 127.0.0.1 until SIGINT or SIGTERM
  (a graceful stop, exit code 0). ``--demo`` then makes a network, a volume and three servers
  through the API and shows them in a table; ``--demo-exit`` stops once the demo is done (for
  scripts and CI).
* ``pocketcloud db upgrade`` / ``pocketcloud db current`` — pocketcloud's schema (and steward's,
  which it sits beside).

Options not on the command line come from ``POCKETCLOUD_<NAME>`` (pocketcloud's settings) and
``STEWARD_<NAME>`` (steward's) environment variables. Logs go to ``<data dir>/pocketcloud.log``,
warnings also to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console

if typing.TYPE_CHECKING:
    from pocketcloud.allinone import AllInOne
    from pocketcloud.config import CloudSettings
    from steward.launcher import ServiceLauncher

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

_stderr = Console(stderr=True)

DataDir = typing.Annotated[
    Path | None,
    typer.Option("--data-dir", help="Database, consoles and volumes [./pocketcloud-data]."),
]
DEMO_TIMEOUT = 120.0
"""Seconds the demo may take before it is given up."""


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
        _stderr.print(f"[red]error:[/red] {type(exc).__name__}: {exc}", highlight=False)
        raise typer.Exit(code=code) from exc


def _cloud_overrides(**values: object) -> dict[str, object]:
    return {name: value for name, value in values.items() if value is not None}


def _configure_logging(data_dir: Path, *, debug: bool) -> None:
    from steward.context import RequestContextFilter  # noqa: PLC0415 - run only

    data_dir.mkdir(parents=True, exist_ok=True)
    context = RequestContextFilter()
    fmt = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
    to_file = logging.FileHandler(data_dir / "pocketcloud.log")
    to_file.setFormatter(logging.Formatter(fmt))
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setLevel(logging.DEBUG if debug else logging.WARNING)
    to_stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = []
    for handler in (to_file, to_stderr):
        handler.addFilter(context)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


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
    debug: typing.Annotated[bool, typer.Option("--debug", help="Debug logs on stderr.")] = False,
) -> None:
    """Run every pocketcloud service in this process until Ctrl-C."""
    with _errors_are_one_line(debug):
        from pocketcloud.config import load_cloud_settings  # noqa: PLC0415 - keeps --help fast

        cloud_settings = load_cloud_settings(
            _cloud_overrides(
                data_dir=data_dir,
                api_port=api_port,
                network_manager=network_manager,
                compute_driver=compute_driver,
                volume_driver=volume_driver,
            )
        )
        _configure_logging(cloud_settings.data_dir, debug=debug)
        code = asyncio.run(
            _up(cloud_settings, compute_hosts=compute_hosts, demo=demo, demo_exit=demo_exit)
        )
    raise typer.Exit(code=code)


async def _up(
    cloud_settings: CloudSettings,
    *,
    compute_hosts: int,
    demo: bool,
    demo_exit: bool,
) -> int:
    import steward  # noqa: PLC0415 - run only
    from pocketcloud.allinone import AllInOne  # noqa: PLC0415
    from steward.launcher import ServiceLauncher  # noqa: PLC0415

    # The all-in-one cloud: in-process RPC, the embedded database in the data directory.
    settings = steward.load_settings(
        overrides={"transport_url": "memory://", "database_url": cloud_settings.database_url}
    )
    steward.config.set_settings(settings)
    cloud = AllInOne(
        cloud_settings,
        settings=settings,
        compute_hosts=[f"compute{number}" for number in range(1, compute_hosts + 1)],
    )
    await cloud.prepare()
    launcher = ServiceLauncher(cloud.services, reload_settings=lambda: settings)
    console = Console()
    outcome: asyncio.Task[int] | None = None
    try:
        async with asyncio.TaskGroup() as tasks:
            running = tasks.create_task(launcher.run())
            announced = tasks.create_task(_announce(cloud, console, running))
            if demo:
                outcome = tasks.create_task(
                    _demo(console, announced, exit_after=demo_exit, launcher=launcher)
                )
            code = await running
            announced.cancel()
            if outcome is not None:
                outcome.cancel()
    except BaseExceptionGroup as group:
        # One failure (a service that cannot start) is the news; the group is noise.
        raise group.exceptions[0] from None
    finally:
        await cloud.close()
    if outcome is not None and not outcome.cancelled() and outcome.result() != 0:
        return outcome.result()
    return code


async def _announce(cloud: AllInOne, console: Console, running: asyncio.Task[int]) -> str | None:
    """Wait until the REST API serves, say where, and return its URL (None: it never did)."""
    while cloud.api.rest is None or cloud.api.rest.port is None:
        if running.done():
            return None
        await asyncio.sleep(0.05)
    url = cloud.api_url
    console.print(
        f"pocketcloud is up: REST API on [bold]{url}/v1[/bold] (OpenAPI docs at {url}/docs); "
        f"{len(cloud.computes)} compute hosts; data in {cloud.cloud_settings.data_dir}. "
        "Ctrl-C stops it.",
        highlight=False,
        soft_wrap=True,
    )
    return url


async def _demo(
    console: Console,
    announced: asyncio.Task[str | None],
    *,
    exit_after: bool,
    launcher: ServiceLauncher,
) -> int:
    from pocketcloud.demo import DemoError, run_demo  # noqa: PLC0415

    url = await announced
    if url is None:
        return 1
    code = 0
    try:
        async with asyncio.timeout(DEMO_TIMEOUT):
            await run_demo(url, console=console)
    except TimeoutError:
        _stderr.print(f"[red]demo failed:[/red] it did not finish within {DEMO_TIMEOUT:g} s")
        code = 1
    except (DemoError, OSError) as exc:
        _stderr.print(f"[red]demo failed:[/red] {exc}", highlight=False)
        code = 1
    if exit_after or code != 0:
        launcher.request_stop()
    else:
        console.print("Serving the API until Ctrl-C.")
    return code


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Bring steward's and pocketcloud's schemas in the data directory up to date."""
    with _errors_are_one_line(debug=False):
        from pocketcloud.config import load_cloud_settings  # noqa: PLC0415
        from pocketcloud.database import MIGRATIONS, ensure_schemas  # noqa: PLC0415
        from steward.db import Database  # noqa: PLC0415 - database commands only

        cloud_settings = load_cloud_settings(_cloud_overrides(data_dir=data_dir))
        cloud_settings.data_dir.mkdir(parents=True, exist_ok=True)

        async def upgrade() -> str | None:
            async with Database(cloud_settings.database_url) as db:
                await ensure_schemas(db, upgrade=True)
                return await db.current_revision(migrations=MIGRATIONS)

        typer.echo(f"pocketcloud schema: {asyncio.run(upgrade())}")


@db_app.command("current")
def db_current(data_dir: DataDir = None) -> None:
    """Print pocketcloud's schema revision and whether it is the newest."""
    with _errors_are_one_line(debug=False):
        from pocketcloud.config import load_cloud_settings  # noqa: PLC0415
        from pocketcloud.database import MIGRATIONS  # noqa: PLC0415
        from steward.db import Database  # noqa: PLC0415 - database commands only

        cloud_settings = load_cloud_settings(_cloud_overrides(data_dir=data_dir))

        async def current() -> str | None:
            async with Database(cloud_settings.database_url) as db:
                return await db.current_revision(migrations=MIGRATIONS)

        revision, head = asyncio.run(current()), Database.head_revision(MIGRATIONS)
        state = "up to date" if revision == head else f"behind {head}: run `pocketcloud db upgrade`"
        typer.echo(f"pocketcloud schema: {revision or 'empty'} ({state})")


def main() -> None:
    """Run the ``pocketcloud`` command."""
    app()
