"""The ``fake`` volume driver: volumes as entries in a dict, for tests and dry runs."""

from __future__ import annotations

from pathlib import Path

__all__ = ["FakeVolumeDriver"]


class FakeVolumeDriver:
    """Keeps each volume's size and connections in memory; uses no storage."""

    name = "fake"

    def __init__(self, *, host: str = "", data_dir: Path | None = None) -> None:
        self.host = host
        self.volumes: dict[str, int] = {}
        self.connections: dict[str, set[str]] = {}

    async def create_volume(self, volume_id: str, size_gb: int) -> None:
        """Remember the volume."""
        self.volumes[volume_id] = size_gb

    async def delete_volume(self, volume_id: str) -> None:
        """Forget the volume."""
        self.volumes.pop(volume_id, None)
        self.connections.pop(volume_id, None)

    async def initialize_connection(self, volume_id: str, host: str) -> dict[str, str]:
        """Remember that ``host`` is connected."""
        self.connections.setdefault(volume_id, set()).add(host)
        return {"fake_id": volume_id}

    async def terminate_connection(self, volume_id: str, host: str) -> None:
        """Forget that ``host`` is connected."""
        self.connections.get(volume_id, set()).discard(host)

    async def get_usage(self, volume_id: str) -> int:
        """Return 0: a fake volume occupies nothing."""
        return 0
