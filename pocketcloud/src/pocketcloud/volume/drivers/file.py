"""The ``file`` volume driver: each volume is a sparse file under ``<data_dir>/volumes``.

A volume of N GiB is a file of N GiB that occupies no disk until written (``truncate``), so a
laptop can hold the demo's volumes. A compute host on the same machine reaches it by its path.
File work runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

__all__ = ["FileVolumeDriver"]

LOG = logging.getLogger(__name__)

GIB = 1024**3


class FileVolumeDriver:
    """Sparse files in ``data_dir/volumes``, named ``<volume id>.img``."""

    name = "file"

    def __init__(self, *, host: str = "", data_dir: Path) -> None:
        self.host = host
        self.root = Path(data_dir) / "volumes"

    def path_of(self, volume_id: str) -> Path:
        """Return the file of volume ``volume_id``."""
        if not volume_id or "/" in volume_id or volume_id.startswith("."):
            raise ValueError(f"a volume id is a plain name, got {volume_id!r}")
        return self.root / f"{volume_id}.img"

    async def create_volume(self, volume_id: str, size_gb: int) -> None:
        """Create a sparse file of ``size_gb`` GiB."""
        path = self.path_of(volume_id)

        def create() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as stream:
                stream.truncate(size_gb * GIB)

        await asyncio.to_thread(create)
        LOG.info("Created %s (%d GiB, sparse)", path, size_gb)

    async def delete_volume(self, volume_id: str) -> None:
        """Delete the file; nothing happens if it is gone."""
        await asyncio.to_thread(self.path_of(volume_id).unlink, missing_ok=True)

    async def initialize_connection(self, volume_id: str, host: str) -> dict[str, str]:
        """Return the file's path: a compute host on this machine opens it directly."""
        return {"path": str(self.path_of(volume_id))}

    async def terminate_connection(self, volume_id: str, host: str) -> None:
        """Nothing to take back: the path stays where it is."""

    async def get_usage(self, volume_id: str) -> int:
        """Return the bytes of disk the sparse file really occupies."""
        path = self.path_of(volume_id)
        try:
            stat = await asyncio.to_thread(os.stat, path)
        except FileNotFoundError:
            return 0
        return stat.st_blocks * 512
