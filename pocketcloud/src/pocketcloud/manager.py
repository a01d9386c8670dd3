"""CloudManager: what pocketcloud's managers share on top of :class:`steward.Manager`.

Each pocketcloud manager has its :class:`~pocketcloud.config.CloudSettings`, the
:class:`~steward.db.Database` that holds its tables (``self.db``), and an RPC transport for the
clients through which it asks other services. The transport is given by whoever assembles the
services (all of them share one in ``pocketcloud up``) or, if not, opened from the
``transport_url`` setting in ``init_host`` and closed in ``cleanup_host``.
"""

from __future__ import annotations

import typing

import steward
from pocketcloud.config import CloudSettings
from steward.clock import Clock
from steward.db import Database
from steward.rpc import Transport, get_transport

__all__ = ["CloudManager", "ManagerOptions"]


class ManagerOptions(typing.TypedDict, total=False):
    """The keyword arguments every pocketcloud manager takes."""

    db: typing.Required[Database]
    cloud_settings: typing.Required[CloudSettings]
    transport: Transport | None
    clock: Clock | None
    settings: steward.Settings | None


class CloudManager(steward.Manager[Database]):
    """Base of pocketcloud's managers. Subclasses call ``super()`` in the hooks they override.

    ``db`` (``self.db``, typed through ``steward.Manager[Database]``) is required: it holds the
    cloud's tables. ``transport`` carries the manager's RPC clients (None: one opened from the
    settings when first needed); ``clock`` and ``settings`` are steward's (tests pass a fake
    clock).
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        service_name: str,
        **options: typing.Unpack[ManagerOptions],
    ) -> None:
        settings = options.get("settings")
        super().__init__(
            host, options["db"], service_name, clock=options.get("clock"), settings=settings
        )
        self.cloud_settings = options["cloud_settings"]
        self._steward_settings = settings
        self._transport = options.get("transport")
        self._own_transport = False

    def _rpc_transport(self) -> Transport:
        """Return the transport for RPC clients, opening one from the settings if none was given."""
        if self._transport is None:
            self._transport = get_transport(settings=self._steward_settings)
            self._own_transport = True
        return self._transport

    async def cleanup_host(self) -> None:
        """Close the transport this manager opened itself."""
        if self._own_transport and self._transport is not None:
            await self._transport.close()
            self._transport = None
            self._own_transport = False
