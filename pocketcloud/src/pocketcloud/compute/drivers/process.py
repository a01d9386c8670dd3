"""The ``process`` compute driver: each instance is a real local process.

An instance runs :mod:`pocketcloud.compute.guest` in its own session, with its console (standard
output and error) appended to ``<data_dir>/instances/<host>/<server id>/console.log`` and its pid
in ``guest.pid`` beside it. ``spawn`` waits until the guest says it booted; ``reboot`` stops and
starts it; ``destroy`` stops it and removes its directory. A process that died, however it died,
is seen as SHUTDOWN by :meth:`ProcessComputeDriver.get_power_state`. When the compute service
stops, its guests are stopped too; the guests also power off by themselves if their compute
process disappears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from pocketcloud.compute.driver import HostResources, Instance
from pocketcloud.objects import ConnectionInfo, PowerState

__all__ = ["ProcessComputeDriver"]

LOG = logging.getLogger(__name__)

GIB = 1024**3
MIB = 1024**2
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# How much of the console get_console_output returns.
CONSOLE_TAIL_BYTES = 16 * 1024


class ProcessComputeDriver:
    """Runs each instance as a guest process; see the module docstring.

    ``boot_seconds`` is how long each guest takes to boot before it says it is up;
    ``boot_timeout`` bounds how long ``spawn`` waits beyond that for the guest to report it
    booted; ``stop_timeout`` how long a guest gets to exit after SIGTERM before SIGKILL.
    """

    def __init__(
        self,
        *,
        host: str,
        data_dir: Path,
        memory_mb: int | None = None,
        disk_gb: int | None = None,
        boot_seconds: float = 0.0,
        boot_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if not _SAFE_NAME.match(host):
            raise ValueError(f"`host` must be a plain name to use in a path, got {host!r}")
        self.host = host
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "instances" / host
        self.memory_mb = memory_mb
        self.disk_gb = disk_gb
        if boot_seconds < 0:
            raise ValueError(f"`boot_seconds` must not be negative, got {boot_seconds}")
        self.boot_seconds = boot_seconds
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._volumes: dict[str, dict[str, ConnectionInfo]] = {}

    def instance_dir(self, server_id: str) -> Path:
        """Return the directory of instance ``server_id``."""
        if not _SAFE_NAME.match(server_id):
            raise ValueError(f"a server id is a plain name, got {server_id!r}")
        return self.root / server_id

    def console_path(self, server_id: str) -> Path:
        """Return the console file of instance ``server_id``."""
        return self.instance_dir(server_id) / "console.log"

    # --- lifecycle -------------------------------------------------------------------------

    async def spawn(self, instance: Instance) -> None:
        """Start the guest and wait until it reports it booted."""
        await asyncio.to_thread(
            self.instance_dir(instance.server_id).mkdir, parents=True, exist_ok=True
        )
        await self._start(instance)

    async def _start(self, instance: Instance) -> None:
        server_id = instance.server_id
        console = await asyncio.to_thread(self.console_path(server_id).open, "ab")
        read_fd, write_fd = os.pipe()
        try:
            # "--option=value": a value starting with "-" is never taken for an option.
            command = [
                sys.executable,
                "-m",
                "pocketcloud.compute.guest",
                f"--server-id={server_id}",
                f"--name={instance.name}",
                f"--ready-fd={write_fd}",
                f"--parent={os.getpid()}",
            ]
            if instance.network is not None:
                command.append(f"--address={instance.network.address}")
            if self.boot_seconds:
                command.append(f"--boot-seconds={self.boot_seconds:g}")
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                start_new_session=True,  # Ctrl-C in the terminal is for pocketcloud, not guests
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
            console.close()
        self._processes[server_id] = process
        await asyncio.to_thread(
            (self.instance_dir(server_id) / "guest.pid").write_text, f"{process.pid}\n"
        )
        try:
            async with asyncio.timeout(self.boot_seconds + self.boot_timeout):
                ready = await _read_line(read_fd)
        except TimeoutError:
            await self._stop(server_id)
            raise RuntimeError(
                f"guest of {server_id} did not boot within "
                f"{self.boot_seconds + self.boot_timeout:g} s"
            ) from None
        if ready.strip() != b"ready":
            code = await process.wait()
            self._processes.pop(server_id, None)
            tail = await self.get_console_output(instance)
            raise RuntimeError(f"guest of {server_id} exited with {code} while booting: {tail}")
        LOG.info("Guest of %s runs as pid %d", server_id, process.pid)

    async def reboot(self, instance: Instance) -> None:
        """Stop the guest (if it runs) and start it again."""
        await self._stop(instance.server_id)
        await self.spawn(instance)

    async def destroy(self, instance: Instance) -> None:
        """Stop the guest and remove its directory."""
        await self._stop(instance.server_id)
        self._volumes.pop(instance.server_id, None)
        directory = self.instance_dir(instance.server_id)
        await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)

    async def _stop(self, server_id: str) -> None:
        process = self._processes.pop(server_id, None)
        pid = process.pid if process is not None else self._pid_of(server_id)
        if pid is None or not _runs(pid, server_id):
            if process is not None:
                await process.wait()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if process is None:
            await self._wait_foreign(pid, server_id)
            return
        try:
            async with asyncio.timeout(self.stop_timeout):
                await process.wait()
        except TimeoutError:
            LOG.warning(
                "Guest of %s ignored SIGTERM for %g s; killing it", server_id, self.stop_timeout
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            await process.wait()

    async def _wait_foreign(self, pid: int, server_id: str) -> None:
        """Wait for a guest this process did not start (it cannot be waited for as a child)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stop_timeout
        while _runs(pid, server_id):
            if loop.time() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                return
            await asyncio.sleep(0.1)

    def _pid_of(self, server_id: str) -> int | None:
        try:
            return int((self.instance_dir(server_id) / "guest.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    async def get_power_state(self, instance: Instance) -> PowerState:
        """Return RUNNING while the guest process lives (a zombie does not count)."""
        server_id = instance.server_id
        process = self._processes.get(server_id)
        if process is not None and process.returncode is not None:
            return PowerState.SHUTDOWN
        pid = process.pid if process is not None else self._pid_of(server_id)
        if pid is None:
            return PowerState.NOSTATE
        return PowerState.RUNNING if _runs(pid, server_id) else PowerState.SHUTDOWN

    async def get_console_output(self, instance: Instance) -> str:
        """Return the last 16 KiB of the console file."""

        def tail() -> str:
            path = self.console_path(instance.server_id)
            try:
                with path.open("rb") as stream:
                    stream.seek(max(0, path.stat().st_size - CONSOLE_TAIL_BYTES))
                    return stream.read().decode(errors="replace")
            except FileNotFoundError:
                return ""

        return await asyncio.to_thread(tail)

    async def attach_volume(self, instance: Instance, connection: ConnectionInfo) -> None:
        """Record the volume for the instance (a guest process has no block devices)."""
        self._volumes.setdefault(instance.server_id, {})[connection.volume_id] = connection

    async def detach_volume(self, instance: Instance, volume_id: str) -> None:
        """Forget the volume."""
        self._volumes.get(instance.server_id, {}).pop(volume_id, None)

    def get_available_resource(self) -> HostResources:
        """Return the configured totals, or this machine's RAM and its data disk's size."""
        memory_mb = self.memory_mb
        if memory_mb is None:
            memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MIB
        disk_gb = self.disk_gb
        if disk_gb is None:
            existing = next(
                p for p in (self.data_dir, *self.data_dir.resolve().parents) if p.exists()
            )
            disk_gb = shutil.disk_usage(existing).total // GIB
        return HostResources(memory_mb, disk_gb, hypervisor_type="process")

    async def cleanup_host(self) -> None:
        """Stop every guest this driver started: the host goes down with its service."""
        async with asyncio.TaskGroup() as stopping:
            for server_id in list(self._processes):
                stopping.create_task(self._stop(server_id))


async def _read_line(fd: int) -> bytes:
    """Read one line from pipe ``fd`` on the loop, then close it; b"" at end of file."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        return await reader.readline()
    finally:
        transport.close()


def _runs(pid: int, marker: str) -> bool:
    """Return whether process ``pid`` is alive (not a zombie) and is the guest of ``marker``."""
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = stat.rpartition(")")[2].split()[0] if ")" in stat else "?"
    return state not in {"Z", "X"} and marker.encode() in cmdline
