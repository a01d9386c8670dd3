"""Launchers: run a service in this process, or in N supervised worker processes; signals.

:class:`ServiceLauncher` runs services in the current process until a signal says otherwise:

* SIGTERM or SIGINT: graceful stop (consumers stop, requests in flight finish up to
  ``graceful_shutdown_timeout``, the rest go back to the queue), exit code 0. A second SIGINT
  exits at once (code 130), for an operator who does not want to wait.
* SIGHUP: re-read the config file, apply the options marked mutable (others need a restart and
  are logged as such) and call each manager's ``reset()``; the services keep running.
* SIGUSR2: write the service report (:mod:`steward.report`) to the log, or to a file in the
  ``report_directory`` setting.

It also applies the tracing settings (``tracing_enabled``, ``tracing_exporter``) and, with
``metrics_port`` set, serves metrics and health probes (:mod:`steward.observe`).

:class:`ProcessLauncher` starts N worker processes, each a ``steward run`` with one worker (or,
through :meth:`ProcessLauncher.for_commands`, one process for each of several programs), and
supervises them: a worker that dies is started again after a backoff (1 s, doubling to 30 s,
back to 1 s once a worker has lived a minute); SIGTERM/SIGINT stop them all gracefully (SIGKILL
after ``graceful_shutdown_timeout`` plus a margin); SIGHUP is passed on to every worker.
Workers are separate interpreters started with ``sys.executable``, not forks of a process that
already runs an event loop.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from steward import config
from steward.manager import Manager
from steward.observe import Observer
from steward.service import Service
from steward.tracing import configure_tracing

__all__ = [
    "SUPERVISOR_ENV",
    "ProcessLauncher",
    "ServiceLauncher",
    "die_with_supervisor",
    "load_manager_class",
]

LOG = logging.getLogger(__name__)

SUPERVISOR_ENV = "STEWARD_SUPERVISOR_PID"
"""Set in a worker's environment to its supervisor's pid; the worker dies with it."""

RESPAWN_MIN = 1.0
RESPAWN_MAX = 30.0
HEALTHY_AFTER = 60.0
KILL_MARGIN = 10.0


def die_with_supervisor() -> None:
    """In a worker started by :class:`ProcessLauncher`, exit when the supervisor dies.

    oslo's workers watch a pipe from their parent; on Linux the kernel does it for us: it sends
    the worker SIGTERM (a graceful stop) when the supervisor exits, however it exits, so no
    worker outlives a supervisor that was killed.
    """
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor:
        return
    if sys.platform == "linux":
        import ctypes  # noqa: PLC0415 - Linux only

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != int(supervisor):
        LOG.error("The supervisor (pid %s) is gone; exiting", supervisor)
        raise SystemExit(1)


def load_manager_class(path: str) -> type[Manager]:
    """Import ``"module:Class"`` and check it is a :class:`Manager` subclass.

    The path comes from the operator's command line, never from a message. As uvicorn does, the
    current directory is importable, so ``steward run myapp:MyManager`` works from a checkout.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, sep, class_name = path.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"expected a manager as 'module:Class', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} of {path!r}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Manager)):
        raise TypeError(f"{path!r} is {cls!r}, not a steward.Manager subclass")
    return cls


SettingsLoader = Callable[[], config.Settings]


def apply_reload(current: config.Settings, reloaded: config.Settings) -> config.Settings:
    """Return ``current`` with the mutable options of ``reloaded``; log the rest as ignored."""
    mutable = config.Settings.mutable_options()
    changes = {}
    for name in config.Settings.model_fields:
        old, new = getattr(current, name), getattr(reloaded, name)
        if old == new:
            continue
        if name in mutable:
            changes[name] = new
            LOG.info("Reloaded option %s", name)
        else:
            LOG.warning("Option %s changed in the configuration; it takes a restart", name)
    return current.model_copy(update=changes)


class ServiceLauncher:
    """Runs ``services`` in this process until SIGTERM/SIGINT; reloads on SIGHUP.

    ``reload_settings`` re-reads the configuration (the file, the environment and the original
    command line) for SIGHUP. ``on_started`` is called once every service has started (and
    metrics are served), for an embedding application that must know when to go on.
    """

    def __init__(
        self,
        services: Sequence[Service],
        *,
        reload_settings: SettingsLoader,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        self.services = list(services)
        self._on_started = on_started
        self._reload_settings = reload_settings
        self._stop = asyncio.Event()
        self._interrupts = 0
        self._reloads: set[asyncio.Task[None]] = set()

    def request_stop(self) -> None:
        """Ask for a graceful stop (what SIGTERM does)."""
        self._stop.set()

    def _on_sigint(self) -> None:
        self._interrupts += 1
        if self._interrupts > 1:
            LOG.warning("Second SIGINT: exiting at once")
            os._exit(130)
        LOG.info("SIGINT: stopping gracefully (press Ctrl-C again to exit at once)")
        self._stop.set()

    def _on_sigterm(self) -> None:
        if self._stop.is_set():
            LOG.info("SIGTERM again: already stopping")
            return
        LOG.info("SIGTERM: stopping gracefully")
        self._stop.set()

    def _on_sigusr2(self) -> None:
        from steward.report import build_report, format_report  # noqa: PLC0415 - rarely used

        text = format_report(build_report(self.services))
        directory = config.get_settings().report_directory
        if directory is None:
            LOG.info("SIGUSR2: service report\n%s", text)
            return
        path = (
            Path(directory) / f"steward-report-{os.getpid()}-{time.strftime('%Y%m%dT%H%M%S')}.txt"
        )
        try:
            path.write_text(text)
        except OSError:
            LOG.exception("SIGUSR2: cannot write the report to %s; logging it", path)
            LOG.info("SIGUSR2: service report\n%s", text)
            return
        LOG.info("SIGUSR2: service report written to %s", path)

    def _on_sighup(self) -> None:
        if self._stop.is_set():
            LOG.info("SIGHUP while stopping: ignored")
            return
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> None:
        """Re-read settings, apply the mutable ones, and reset every service's manager."""
        LOG.info("SIGHUP: reloading the configuration")
        try:
            reloaded = self._reload_settings()
        except Exception:
            LOG.exception("Reloading the configuration failed; keeping the current one")
            return
        settings = apply_reload(config.get_settings(), reloaded)
        config.set_settings(settings)
        for service in self.services:
            try:
                await service.reset(settings)
            except Exception:
                LOG.exception("reset() of %s failed", service.binary)

    async def run(self) -> int:
        """Start the services, wait for a stop signal, stop them; return the exit code."""
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: self._on_sigterm,
            signal.SIGINT: self._on_sigint,
            signal.SIGHUP: self._on_sighup,
            signal.SIGUSR2: self._on_sigusr2,
        }
        for signum, handler in handlers.items():
            loop.add_signal_handler(signum, handler)
        settings = config.get_settings()
        shutdown_tracing = configure_tracing(
            enabled=settings.tracing_enabled,
            exporter=settings.tracing_exporter,
            service_name=self.services[0].binary if self.services else "steward",
        )
        observer: Observer | None = None
        started: list[Service] = []
        try:
            for service in self.services:
                await service.start()
                started.append(service)
            if settings.metrics_port is not None:
                observer = Observer(
                    self.services, host=settings.metrics_host, port=settings.metrics_port
                )
                await observer.start()
            LOG.info("All services started; serving until SIGTERM or SIGINT")
            if self._on_started is not None:
                self._on_started()
            await self._stop.wait()
            return 0
        finally:
            if observer is not None:
                await observer.close()
            # The handlers stay while the services stop: a signal arriving now (a second
            # SIGTERM, a SIGHUP) must not fall back to the default action and kill the process
            # before cleanup_host has run.
            for service in reversed(started):
                await service.stop()
            for task in list(self._reloads):
                await task
            for signum in handlers:
                loop.remove_signal_handler(signum)
            shutdown_tracing()


async def _wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; return whether it is set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


class ProcessLauncher:
    """Supervises ``workers`` processes running ``command``; see the module docstring.

    :meth:`for_commands` supervises different programs instead, one process each (a cloud's
    services on one machine). ``environment`` is added to the children's environment: the way
    to hand them secrets such as a transport URL, which a command line would show to ``ps``.
    """

    def __init__(
        self,
        command: Sequence[str],
        workers: int,
        *,
        graceful_shutdown_timeout: float,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"`workers` must be at least 1, got {workers}")
        if not command:
            raise ValueError("`command` must name a program")
        self.command = list(command)
        self.workers = workers
        self.graceful_shutdown_timeout = graceful_shutdown_timeout
        self.environment = dict(environment or {})
        self.children: dict[int, asyncio.subprocess.Process] = {}
        self.respawns = 0
        self._slots = [self.command] * workers
        self._stopping = asyncio.Event()

    @classmethod
    def for_commands(
        cls,
        commands: Sequence[Sequence[str]],
        *,
        graceful_shutdown_timeout: float,
        environment: Mapping[str, str] | None = None,
    ) -> typing.Self:
        """Supervise one process per command in ``commands``, each restarted if it dies."""
        if not commands:
            raise ValueError("`commands` must name at least one program")
        launcher = cls(
            commands[0],
            len(commands),
            graceful_shutdown_timeout=graceful_shutdown_timeout,
            environment=environment,
        )
        for slot, command in enumerate(commands):
            if not command:
                raise ValueError(f"command {slot} of `commands` names no program")
            launcher._slots[slot] = list(command)
        return launcher

    def request_stop(self) -> None:
        """Stop every worker gracefully (what SIGTERM does)."""
        if not self._stopping.is_set():
            self._on_stop_signal(signal.SIGTERM)

    async def _spawn(self, slot: int) -> asyncio.subprocess.Process:
        environment = {**os.environ, **self.environment, SUPERVISOR_ENV: str(os.getpid())}
        process = await asyncio.create_subprocess_exec(*self._slots[slot], env=environment)
        self.children[process.pid] = process
        LOG.info(
            "Started worker %d: %s", process.pid, " ".join(map(config.mask_url, self._slots[slot]))
        )
        if self._stopping.is_set():
            # The stop came while this one was starting: it missed the signal the others got.
            process.send_signal(signal.SIGTERM)
        return process

    async def _supervise(self, slot: int) -> None:
        delay = RESPAWN_MIN
        while not self._stopping.is_set():
            process = await self._spawn(slot)
            started = time.monotonic()
            code = await process.wait()
            self.children.pop(process.pid, None)
            if self._stopping.is_set():
                return
            LOG.warning("Worker %d (slot %d) exited with %s; restarting", process.pid, slot, code)
            if time.monotonic() - started > HEALTHY_AFTER:
                delay = RESPAWN_MIN
            stopped = await _wait_event(self._stopping, delay)
            if stopped:
                return
            self.respawns += 1
            delay = min(delay * 2, RESPAWN_MAX)

    def _signal_children(self, signum: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                continue

    def _on_stop_signal(self, signum: int) -> None:
        LOG.info("%s: stopping %d workers", signal.Signals(signum).name, len(self.children))
        self._stopping.set()
        self._signal_children(signal.SIGTERM)

    async def run(self) -> int:
        """Run and supervise the workers until SIGTERM/SIGINT; return the exit code."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_stop_signal, signal.SIGTERM)
        loop.add_signal_handler(signal.SIGINT, self._on_stop_signal, signal.SIGINT)
        loop.add_signal_handler(signal.SIGHUP, self._signal_children, signal.SIGHUP)
        try:
            async with asyncio.TaskGroup() as supervisors:
                for slot in range(len(self._slots)):
                    supervisors.create_task(self._supervise(slot))
                supervisors.create_task(self._kill_after_grace())
        finally:
            if self.children:  # cancelled, or a supervisor failed: no worker outlives us
                self._stopping.set()
                self._signal_children(signal.SIGTERM)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
        return 0

    async def _kill_after_grace(self) -> None:
        await self._stopping.wait()
        try:
            async with asyncio.timeout(self.graceful_shutdown_timeout + KILL_MARGIN):
                # Read again each time: a worker that was starting when the stop came joins late.
                while self.children:
                    await asyncio.gather(*(p.wait() for p in list(self.children.values())))
                    await asyncio.sleep(0)
        except TimeoutError:
            LOG.warning("Workers still running after the grace period; killing them")
            self._signal_children(signal.SIGKILL)
