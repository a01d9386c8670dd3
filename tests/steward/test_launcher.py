"""The launchers: ``python -m steward run`` in a subprocess, and ServiceLauncher in this process."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import re
import signal
import socket
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

import steward
from steward.config import load_settings, set_settings
from steward.db import Database
from steward.launcher import (
    SUPERVISOR_ENV,
    ProcessLauncher,
    ServiceLauncher,
    apply_reload,
    load_manager_class,
)
from steward.launcher.telemetry import serving_metrics
from steward.registry import Registry
from steward.rpc import get_transport
from steward.service import Service
from steward.testing import FakeClock

GUARD = 30.0

TARGET = """
import logging
import threading

import steward

LOG = logging.getLogger("target")


class Echo(steward.Manager):
    def __init__(self, host=None):
        super().__init__(host, service_name="echo")

    async def echo(self, context, value):
        return value

    def reset(self):
        LOG.info("reset ran")

    def cleanup_host(self):
        LOG.info("cleanup ran")


class SlowCleanup(Echo):
    def cleanup_host(self):
        LOG.info("cleanup started")
        threading.Event().wait(60)
"""


class Running:
    """A ``steward run`` child process whose stderr lines the test can wait for."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            async with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self._changed.notify_all()

    async def wait_for(self, pattern: str, *, count: int = 1) -> None:
        regex = re.compile(pattern)

        def seen() -> bool:
            return sum(1 for line in self.lines if regex.search(line)) >= count

        try:
            async with asyncio.timeout(GUARD), self._changed:
                await self._changed.wait_for(seen)
        except TimeoutError:
            raise AssertionError(
                f"{pattern!r} never logged; got:\n" + "\n".join(self.lines)
            ) from None

    async def exit_code(self) -> int:
        async with asyncio.timeout(GUARD):
            code = await self.process.wait()
            await self._reader
        return code


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "target.py").write_text(textwrap.dedent(TARGET))
    return tmp_path


Spawn = Callable[..., Awaitable[Running]]


@pytest.fixture
async def spawn(workdir: Path) -> AsyncIterator[Spawn]:
    started: list[Running] = []

    async def start(*args: str, env: dict[str, str] | None = None) -> Running:
        environment = {
            **os.environ,
            "STEWARD_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'registry.db'}",
            "STEWARD_PERIODIC_FUZZY_DELAY": "0",
            **(env or {}),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "steward", *args,
            cwd=workdir, env=environment, start_new_session=True,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        running = Running(process)
        started.append(running)
        return running

    yield start
    for running in started:
        # The whole session: a supervisor's workers too, whatever state the test left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(running.process.pid, signal.SIGKILL)
        await running.process.wait()


async def test_run_serves_reloads_on_sighup_and_stops_on_sigterm(
    spawn: Spawn, workdir: Path
) -> None:
    config = workdir / "steward.toml"
    config.write_text("report_interval = 10\nservice_down_time = 60\n")
    running = await spawn("--config-file", str(config), "run", "target:Echo", "--topic", "echo")
    await running.wait_for(r"steward-echo on \S+ started")
    async with Database(f"sqlite+aiosqlite:///{workdir / 'registry.db'}") as db:
        statuses = await Registry(db, settings=load_settings()).list_services()
    assert [(s.record.binary, s.up) for s in statuses] == [("steward-echo", True)]
    config.write_text("report_interval = 3\nservice_down_time = 60\nhost = 'elsewhere'\n")
    running.process.send_signal(signal.SIGHUP)
    await running.wait_for("Reloaded option report_interval")
    await running.wait_for("Option host changed in the configuration; it takes a restart")
    await running.wait_for("reset ran")
    running.process.send_signal(signal.SIGUSR2)
    await running.wait_for("SIGUSR2: service report")
    await running.wait_for(r"-- service steward-echo \(topic echo, Echo\)")
    running.process.send_signal(signal.SIGTERM)
    assert await running.exit_code() == 0
    assert any("cleanup ran" in line for line in running.lines)


async def test_a_killed_service_turns_down_within_down_time_plus_report_interval(
    spawn: Spawn, workdir: Path
) -> None:
    settings = load_settings(overrides={"report_interval": "0.5", "service_down_time": "1.5"})
    running = await spawn(
        "run", "target:Echo", "--topic", "echo",
        env={"STEWARD_REPORT_INTERVAL": "0.5", "STEWARD_SERVICE_DOWN_TIME": "1.5"},
    )  # fmt: skip
    await running.wait_for("started")
    running.process.kill()
    await running.process.wait()
    async with Database(f"sqlite+aiosqlite:///{workdir / 'registry.db'}") as db:
        registry = Registry(db, settings=settings)
        (status,) = await registry.list_services()
        record = status.record
        # Killed, it never marked itself stopped: only its last heartbeat's age turns it down,
        # service_down_time after that heartbeat (a verdict on times, not a measured wait).
        assert record.stopped_at is None
        last_heartbeat = record.last_seen_up or record.created_at  # killed before a heartbeat?
        down_at = last_heartbeat + datetime.timedelta(seconds=1.5)
        assert registry.is_up_at(record, down_at - datetime.timedelta(milliseconds=1))
        assert not registry.is_up_at(record, down_at + datetime.timedelta(milliseconds=1))
        # And the registry says so once the database's clock gets there (a bounded poll of an
        # external clock; no assertion on how long it took).
        async with asyncio.timeout(GUARD):
            while (await registry.list_services())[0].up:  # noqa: ASYNC110 - polls the database
                await asyncio.sleep(0.1)


async def test_a_second_sigint_exits_at_once(spawn: Spawn) -> None:
    running = await spawn("run", "target:SlowCleanup", "--topic", "echo")
    await running.wait_for("started")
    running.process.send_signal(signal.SIGINT)
    await running.wait_for("cleanup started")
    running.process.send_signal(signal.SIGINT)
    assert await running.exit_code() == 130


async def test_workers_are_supervised_and_respawned(spawn: Spawn) -> None:
    running = await spawn("run", "target:Echo", "--topic", "echo", "--workers", "2")
    await running.wait_for(r"steward-echo on \S+ started", count=2)
    pids = [
        int(m.group(1)) for line in running.lines if (m := re.search(r"Started worker (\d+)", line))
    ]
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    await running.wait_for(rf"Worker {pids[0]} \(slot \d\) exited with -9; restarting")
    await running.wait_for(r"Started worker", count=3)
    await running.wait_for(r"steward-echo on \S+ started", count=3)
    running.process.send_signal(signal.SIGTERM)
    assert await running.exit_code() == 0
    assert sum("cleanup ran" in line for line in running.lines) == 2


async def test_no_log_line_shows_the_transport_urls_token(spawn: Spawn) -> None:
    running = await spawn(
        "--set", "transport_url=memory://S3cretT0ken@bus",
        "run", "target:Echo", "--topic", "echo", "--workers", "2",
    )  # fmt: skip
    await running.wait_for(r"steward-echo on \S+ started", count=2)
    await running.wait_for(r"Started worker \d+: .* transport_url=memory://\*\*\*@bus", count=2)
    await running.wait_for(r"RPC server consuming .* on memory://\*\*\*@bus", count=2)
    running.process.send_signal(signal.SIGTERM)
    assert await running.exit_code() == 0
    assert not [line for line in running.lines if "S3cretT0ken" in line]


async def test_workers_die_with_a_killed_supervisor(spawn: Spawn) -> None:
    running = await spawn("run", "target:Echo", "--topic", "echo", "--workers", "2")
    await running.wait_for(r"steward-echo on \S+ started", count=2)
    running.process.kill()  # SIGKILL: the supervisor cannot stop its workers itself
    await running.wait_for("SIGTERM: stopping gracefully", count=2)
    await running.wait_for("cleanup ran", count=2)
    await running.exit_code()  # stderr reaches EOF: no worker holds it any more


async def test_for_commands_supervises_different_programs_with_their_environment(
    tmp_path: Path,
) -> None:
    # Each program writes what it was given, then waits to be stopped.
    program = textwrap.dedent(
        """
        import os, sys, time
        from pathlib import Path
        Path(sys.argv[1]).write_text(os.environ["SECRET_URL"] + " " + os.environ["{supervisor}"])
        time.sleep(60)
        """
    ).replace("{supervisor}", SUPERVISOR_ENV)
    outputs = [tmp_path / "first", tmp_path / "second"]
    supervisor = ProcessLauncher.for_commands(
        [[sys.executable, "-c", program, str(path)] for path in outputs],
        graceful_shutdown_timeout=5,
        environment={"SECRET_URL": "amqp://user:secret@127.0.0.1/"},
    )
    running = asyncio.create_task(supervisor.run())
    async with asyncio.timeout(GUARD):
        while not all(path.exists() and path.read_text() for path in outputs):  # noqa: ASYNC110 - polls files
            await asyncio.sleep(0.05)
        assert len(supervisor.children) == 2
        for path in outputs:
            assert path.read_text() == f"amqp://user:secret@127.0.0.1/ {os.getpid()}"
        supervisor.request_stop()
        assert await running == 0
    assert supervisor.children == {}
    assert supervisor.respawns == 0


async def test_a_worker_starting_when_the_stop_comes_is_stopped_too() -> None:
    supervisor = ProcessLauncher.for_commands(
        [[sys.executable, "-c", "import time; time.sleep(60)"]] * 2,
        graceful_shutdown_timeout=60,
    )
    running = asyncio.create_task(supervisor.run())
    for _ in range(3):  # the supervisors are inside create_subprocess_exec now
        await asyncio.sleep(0)
    assert supervisor.children == {}
    supervisor.request_stop()
    async with asyncio.timeout(GUARD):  # well before the 60 s sleep or grace period ends
        assert await running == 0
    assert supervisor.children == {}


def test_for_commands_needs_programs() -> None:
    with pytest.raises(ValueError, match="at least one program"):
        ProcessLauncher.for_commands([], graceful_shutdown_timeout=1)
    with pytest.raises(ValueError, match="command 1 of `commands` names no program"):
        ProcessLauncher.for_commands([["true"], []], graceful_shutdown_timeout=1)


def test_load_manager_class_checks_the_path(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    assert load_manager_class("target:Echo").__name__ == "Echo"
    with pytest.raises(ValueError, match=r"expected a manager as 'module:Class'"):
        load_manager_class("target.Echo")
    with pytest.raises(ValueError, match="cannot import module"):
        load_manager_class("no_such_module_here:Echo")
    with pytest.raises(TypeError, match=r"not a steward\.Manager subclass"):
        load_manager_class("target:LOG")


def test_reload_applies_only_mutable_options() -> None:
    current = load_settings(overrides={"host": "a", "report_interval": "10"})
    reloaded = load_settings(overrides={"host": "b", "report_interval": "4"})
    applied = apply_reload(current, reloaded)
    assert applied.report_interval == 4
    assert applied.host == "a"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_metrics_probes_reports_to_a_directory_and_console_traces(
    spawn: Spawn, workdir: Path
) -> None:
    port = free_port()
    reports = workdir / "reports"
    reports.mkdir()
    running = await spawn(
        "run", "target:Echo", "--topic", "echo",
        env={
            "STEWARD_METRICS_PORT": str(port),
            "STEWARD_REPORT_DIRECTORY": str(reports),
            "STEWARD_TRACING_ENABLED": "true",
            "STEWARD_TRACING_EXPORTER": "console",
        },
    )  # fmt: skip
    await running.wait_for(r"Metrics and health on http://127\.0\.0\.1:\d+/metrics")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.text) == (200, "ready\n")
        assert "steward_rpc_in_flight" in (await client.get("/metrics")).text
    running.process.send_signal(signal.SIGUSR2)
    await running.wait_for("SIGUSR2: service report written to")
    (report,) = reports.iterdir()
    assert "-- service steward-echo" in report.read_text()
    running.process.send_signal(signal.SIGTERM)
    assert await running.exit_code() == 0


def test_reload_keeps_a_changed_transport_option_and_names_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    current = load_settings()
    reloaded = load_settings(overrides={"rabbit_quorum_queue": "true", "report_interval": "4"})
    with caplog.at_level(logging.INFO, logger="steward.launcher"):
        applied = apply_reload(current, reloaded)
    assert applied.rabbit.quorum_queue is False
    assert applied.report_interval == 4
    assert "Option rabbit.quorum_queue changed in the configuration; it takes a restart" in (
        caplog.text
    )


# --- the service launcher in this process ------------------------------------------------------


class Resettable(steward.Manager):
    def __init__(self) -> None:
        super().__init__("node1", service_name="resettable")
        self.reset_started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.resets = 0
        self.cleaned = asyncio.Event()

    async def cleanup_host(self) -> None:
        self.cleaned.set()

    async def reset(self) -> None:
        self.reset_started.set()
        await self.release.wait()
        self.resets += 1


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "steward.toml"
    path.write_text("report_interval = 10\nrpc_response_timeout = 60\nperiodic_enable = false\n")
    return path


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}") as db:
        await db.upgrade()
        yield db


@contextlib.asynccontextmanager
async def launched(
    config_file: Path, database: Database
) -> AsyncIterator[tuple[ServiceLauncher, Resettable, asyncio.Task[int]]]:
    settings = load_settings(config_file=config_file)
    manager = Resettable()
    transport = get_transport("memory://", settings=settings)
    service = Service(
        manager,
        topic="resettable",
        transport=transport,
        registry=Registry(database, settings=settings),
        settings=settings,
    )
    started = asyncio.Event()
    launcher = ServiceLauncher([service], settings=settings, on_started=started.set)
    run = asyncio.create_task(launcher.run())
    try:
        async with asyncio.timeout(GUARD):
            await started.wait()
        yield launcher, manager, run
    finally:
        launcher.request_stop()
        async with asyncio.timeout(GUARD):
            await run
        await transport.close()


async def test_sighup_rereads_the_sources_and_applies_the_mutable_options_everywhere(
    config_file: Path, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async with launched(config_file, database) as (launcher, manager, _):
        given = launcher.settings
        (service,) = launcher.services
        await asyncio.to_thread(
            config_file.write_text,
            "report_interval = 3\nrpc_response_timeout = 5\nperiodic_enable = false\n"
            "host = 'elsewhere'\n[rabbit]\nquorum_queue = true\n",
        )
        with caplog.at_level(logging.INFO, logger="steward.launcher"):
            os.kill(os.getpid(), signal.SIGHUP)
            async with asyncio.timeout(GUARD):
                await manager.reset_started.wait()
            await launcher._tasks.wait()
        assert (launcher.settings.report_interval, launcher.settings.host) == (3, given.host)
        assert launcher.settings.rabbit.quorum_queue is False
        assert service.settings is launcher.settings
        assert service.transport.settings.rpc_response_timeout == 5  # what clients read
        assert manager.resets == 1
        assert "Reloaded option report_interval" in caplog.text
        assert "Option host changed in the configuration; it takes a restart" in caplog.text


async def test_a_reload_in_progress_finishes_before_the_launcher_returns(
    config_file: Path, database: Database
) -> None:
    async with launched(config_file, database) as (launcher, manager, run):
        manager.release.clear()
        os.kill(os.getpid(), signal.SIGHUP)
        async with asyncio.timeout(GUARD):
            await manager.reset_started.wait()
        launcher.request_stop()
        async with asyncio.timeout(GUARD):
            await manager.cleaned.wait()  # the service has stopped; the reload still runs
        for _ in range(20):
            await asyncio.sleep(0)
        assert not run.done()
        manager.release.set()
        async with asyncio.timeout(GUARD):
            assert await run == 0
        assert manager.resets == 1
        assert launcher._tasks.closed


def test_a_launcher_reports_to_its_own_report_directory(tmp_path: Path) -> None:
    set_settings(load_settings())  # the process's: no report directory
    own = load_settings(overrides={"report_directory": str(tmp_path), "host": "own-host"})
    ServiceLauncher([], settings=own)._on_sigusr2()
    (report,) = tmp_path.iterdir()
    assert "own-host" in report.read_text()


def test_a_launcher_given_no_settings_holds_its_first_services() -> None:
    settings = load_settings(overrides={"host": "svc-host"})
    service = Service(
        steward.Manager(host="h"),
        topic="t",
        transport=get_transport("memory://", settings=settings),
    )
    try:
        assert ServiceLauncher([service]).settings is settings
    finally:
        service.executor.shutdown()


async def test_metrics_are_served_only_with_a_metrics_port() -> None:
    async with serving_metrics(load_settings(), []) as observer:
        assert observer is None
    port = free_port()
    settings = load_settings(overrides={"metrics_port": str(port)})
    async with serving_metrics(settings, []) as observer:
        assert observer is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await client.get("/healthz")


class _BrokenClock(FakeClock):
    """A clock that breaks once told to: a bug in a service's loop."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        await self.broken.wait()
        raise RuntimeError("the clock broke")


async def test_a_failed_service_stops_the_launcher_and_the_others_and_exits_1(
    config_file: Path, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(config_file=config_file)
    transport = get_transport("memory://", settings=settings)
    clock = _BrokenClock()
    healthy_manager, failing_manager = Resettable(), Resettable()
    services = [
        Service(
            manager,
            topic=topic,
            transport=transport,
            registry=Registry(database, settings=settings),
            settings=settings,
            clock=service_clock,
        )
        for manager, topic, service_clock in [
            (healthy_manager, "healthy", FakeClock()),
            (failing_manager, "failing", clock),
        ]
    ]
    started = asyncio.Event()
    launcher = ServiceLauncher(services, settings=settings, on_started=started.set)
    run = asyncio.create_task(launcher.run())
    async with asyncio.timeout(GUARD):
        await started.wait()
    clock.broken.set()
    async with asyncio.timeout(GUARD):
        assert await run == 1
    assert healthy_manager.cleaned.is_set()  # the other service was stopped too
    assert failing_manager.cleaned.is_set()
    assert re.search(
        r"steward-failing failed \(RuntimeError\('the clock broke'\)\); stopping every service",
        caplog.text,
    )
    await transport.close()
