"""A volume service's manager, started and exercised in one process.

Run from the repository root: ``python -m examples.volumes``. It shows the pieces steward has
today: a :class:`steward.Manager` subclass whose driver is chosen by name
(:func:`steward.load_driver`), lifecycle hooks written as ``async def`` and plain ``def``, a
periodic task on the real clock, the request context, and settings from the environment
(``STEWARD_HOST=... python -m examples.volumes``). RPC over ``memory://`` joins once it lands.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import tempfile
import typing
from pathlib import Path

import steward
from steward.clock import Clock, SystemClock
from steward.context import RequestContext
from steward.manager import run_hook

LOG = logging.getLogger("examples.volumes")


@typing.runtime_checkable
class VolumeDriver(typing.Protocol):
    """What the volume manager needs of a driver."""

    def create(self, volume_id: str, size_gib: int) -> None: ...

    def delete(self, volume_id: str) -> None: ...

    def used_bytes(self) -> int: ...

    def list(self) -> dict[str, int]: ...


class FakeVolumeDriver:
    """Keeps volumes in a dict: for tests and demos."""

    def __init__(self, root: Path) -> None:
        self.volumes: dict[str, int] = {}

    def create(self, volume_id: str, size_gib: int) -> None:
        self.volumes[volume_id] = size_gib

    def delete(self, volume_id: str) -> None:
        del self.volumes[volume_id]

    def used_bytes(self) -> int:
        return 0

    def list(self) -> dict[str, int]:
        return dict(self.volumes)


class FileVolumeDriver:
    """A volume is a sparse file of its size under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def create(self, volume_id: str, size_gib: int) -> None:
        with (self.root / volume_id).open("wb") as volume:
            volume.truncate(size_gib * 1024**3)

    def delete(self, volume_id: str) -> None:
        (self.root / volume_id).unlink()

    def used_bytes(self) -> int:
        return sum(path.stat().st_blocks * 512 for path in self.root.iterdir())

    def list(self) -> dict[str, int]:
        return {path.name: path.stat().st_size // 1024**3 for path in self.root.iterdir()}


# Drivers by name. Installed packages register theirs as entry points in the group
# "steward.drivers.volume"; this example is not installed, so it names them by "module:Class".
DRIVERS = {
    "fake": "examples.volumes:FakeVolumeDriver",
    "file": "examples.volumes:FileVolumeDriver",
}


class VolumeManager(steward.Manager):
    """Owns the volumes of one host; the only code that creates or deletes them."""

    def __init__(
        self, *, driver: str, root: Path, host: str | None = None, clock: Clock | None = None
    ) -> None:
        super().__init__(host, service_name="volume", clock=clock)
        self.root = root
        self.driver_name = driver
        self._driver: VolumeDriver | None = None
        self.audits = 0
        self.last_audit: tuple[int, int] = (0, 0)  # volumes, GiB provisioned

    async def init_host(self, service_ref: object | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._driver = steward.load_driver("volume", self.driver_name, VolumeDriver, root=self.root)
        LOG.info("init_host: %s driver on %s", type(self._driver).__name__, self.root)

    @property
    def driver(self) -> VolumeDriver:
        """The driver chosen by name; there is none before ``init_host``."""
        if self._driver is None:
            raise RuntimeError("VolumeManager.init_host() has not run: no driver yet")
        return self._driver

    def create_volume(self, context: RequestContext, volume_id: str, size_gib: int) -> str:
        self.driver.create(volume_id, size_gib)
        self.notifier.info(context, "volume.create.end", {"volume_id": volume_id})
        LOG.info("[%s] created %s (%d GiB)", context.request_id, volume_id, size_gib)
        return volume_id

    @steward.periodic_task(spacing=1, run_immediately=True)
    def audit_usage(self, context: RequestContext) -> None:
        """Report what the volumes use on disk (sparse files use next to nothing)."""
        volumes = self.driver.list()
        self.audits += 1
        self.last_audit = (len(volumes), sum(volumes.values()))
        LOG.info(
            "audit #%d: %d volumes, %d GiB provisioned, %d bytes used on disk",
            self.audits,
            *self.last_audit,
            self.driver.used_bytes(),
        )

    def cleanup_host(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        LOG.info("cleanup_host: removed %s", self.root)


async def main(
    *, driver: str = DRIVERS["file"], run_for: float = 3.5, clock: Clock | None = None
) -> VolumeManager:
    """Start the manager, create volumes, run its periodic tasks for ``run_for`` s, stop."""
    clock = clock or SystemClock()
    settings = steward.get_settings()
    root = Path(tempfile.mkdtemp(prefix="steward-volumes-"))
    manager = VolumeManager(driver=driver, root=root, clock=clock)
    LOG.info("%r on transport %s", manager, steward.config.mask_url(settings.transport_url))
    await run_hook(manager, "init_host", None)
    await run_hook(manager, "pre_start_hook", None)
    await run_hook(manager, "post_start_hook")
    context = steward.get_admin_context()
    for number, size in enumerate((1, 10, 100)):
        manager.create_volume(context, f"vol-{number}", size)
    deadline = clock.monotonic() + run_for
    while (left := deadline - clock.monotonic()) > 0:
        idle = await manager.periodic_tasks(context)
        await clock.sleep(min(idle, left))
    await run_hook(manager, "cleanup_host")
    return manager


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", choices=sorted(DRIVERS), default="file")
    parser.add_argument("--seconds", type=float, default=3.5, help="how long to run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(driver=DRIVERS[args.driver], run_for=args.seconds))
