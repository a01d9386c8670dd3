"""ProcessLauncher: N supervised worker processes (or one per program); SIGTERM, SIGINT, SIGHUP.

See :mod:`steward.launcher` for what it does with each signal and how it respawns a worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
import typing
from collections.abc import Mapping, Sequence

from steward.redact import mask_url

__all__ = [
    "HEALTHY_AFTER",
    "KILL_MARGIN",
    "RESPAWN_MAX",
    "RESPAWN_MIN",
    "SUPERVISOR_ENV",
    "ProcessLauncher",
    "die_with_supervisor",
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
        LOG.info("Started worker %d: %s", process.pid, " ".join(map(mask_url, self._slots[slot])))
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
