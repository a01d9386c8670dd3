"""The volume driver seam: what the volume manager asks of its storage backend.

A driver creates and deletes a volume's storage, says how a compute host reaches it
(:meth:`VolumeDriver.initialize_connection`, whose data the compute driver understands), and
measures what a volume really uses, for the usage audit. Calls are idempotent: deleting what is
gone, or connecting twice, is not an error.

Drivers register under the entry-point group ``steward.drivers.volume`` and are built with the
keyword arguments ``host`` and ``data_dir``.
"""

from __future__ import annotations

import typing

__all__ = ["VolumeDriver"]


@typing.runtime_checkable
class VolumeDriver(typing.Protocol):
    """What the volume manager needs of its driver. See the module docstring."""

    name: str
    """The driver's name, which compute drivers see in the connection info."""

    async def create_volume(self, volume_id: str, size_gb: int) -> None:
        """Create the storage of a volume of ``size_gb`` GiB."""
        ...

    async def delete_volume(self, volume_id: str) -> None:
        """Delete the volume's storage; nothing happens if it is gone."""
        ...

    async def initialize_connection(self, volume_id: str, host: str) -> dict[str, str]:
        """Let compute ``host`` reach the volume; return how (e.g. ``{"path": ...}``)."""
        ...

    async def terminate_connection(self, volume_id: str, host: str) -> None:
        """Take back what :meth:`initialize_connection` gave ``host``."""
        ...

    async def get_usage(self, volume_id: str) -> int:
        """Return the bytes the volume really occupies (a sparse file: its allocated blocks)."""
        ...
