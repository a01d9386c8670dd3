"""AllInOne: every pocketcloud service in one process, on one transport and one database.

What ``pocketcloud up`` runs, and what the tests run: the api, network, volume and scheduler
services on ``host`` and one compute service per name in ``compute_hosts``, each a steward
:class:`~steward.service.Service` wrapping its manager, sharing one transport (``memory://`` by
default) and one database (the ``database_url`` setting; SQLite by default). The services start
in the order that lets each find the ones it reports to (api first, compute last) and stop in
reverse.

Use it as ``async with AllInOne(...) as cloud:``, or, under a steward launcher that starts and
stops :attr:`AllInOne.services` itself, call :meth:`AllInOne.prepare` before and
:meth:`AllInOne.close` after.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

import steward
from pocketcloud.api.manager import ApiManager
from pocketcloud.compute.manager import ComputeManager
from pocketcloud.config import CloudSettings
from pocketcloud.database import ensure_schemas
from pocketcloud.manager import CloudManager, ManagerOptions
from pocketcloud.network.manager import NetworkManager
from pocketcloud.scheduler.manager import SchedulerManager
from pocketcloud.services import make_manager, make_service
from pocketcloud.volume.manager import VolumeManager
from steward.clock import Clock
from steward.db import Database
from steward.registry import Registry
from steward.rpc import Transport, get_transport
from steward.service import Service

__all__ = ["AllInOne"]


class AllInOne:
    """The whole cloud in this process. See the module docstring.

    ``settings`` are steward's, built by the caller (the ``pocketcloud`` command, a test);
    ``clock`` drives the services' loops and the managers' periodic tasks (tests pass a fake
    one); ``serve_rest`` False leaves the REST API unserved (tests call :attr:`api`'s ``app``
    directly).
    """

    def __init__(
        self,
        cloud_settings: CloudSettings,
        *,
        settings: steward.Settings,
        host: str | None = None,
        compute_hosts: Sequence[str] = ("compute1",),
        clock: Clock | None = None,
        serve_rest: bool = True,
    ) -> None:
        if not compute_hosts:
            raise ValueError("`compute_hosts` must name at least one compute host")
        if len(set(compute_hosts)) != len(compute_hosts):
            raise ValueError(f"`compute_hosts` must be distinct, got {list(compute_hosts)}")
        self.settings = settings
        self.cloud_settings = cloud_settings
        self.db = Database(self.settings.database_url)
        self.transport: Transport = get_transport(settings=self.settings)
        self.registry = Registry(self.db, settings=self.settings)
        options: ManagerOptions = {
            "db": self.db,
            "cloud_settings": cloud_settings,
            "transport": self.transport,
            "clock": clock,
            "settings": self.settings,
        }
        self.api = typing.cast(
            "ApiManager", make_manager("api", host, serve_rest=serve_rest, **options)
        )
        self.network = typing.cast("NetworkManager", make_manager("network", host, **options))
        self.volume = typing.cast("VolumeManager", make_manager("volume", host, **options))
        self.scheduler = typing.cast("SchedulerManager", make_manager("scheduler", host, **options))
        self.computes = [
            typing.cast("ComputeManager", make_manager("compute", name, **options))
            for name in compute_hosts
        ]
        managers: list[tuple[str, CloudManager]] = [
            ("api", self.api),
            ("network", self.network),
            ("volume", self.volume),
            ("scheduler", self.scheduler),
            *(("compute", compute) for compute in self.computes),
        ]
        self.services = [
            make_service(
                topic,
                manager,
                transport=self.transport,
                registry=self.registry,
                settings=self.settings,
                clock=clock,
            )
            for topic, manager in managers
        ]
        self._started: list[Service] = []

    @property
    def api_url(self) -> str:
        """The REST API's base URL (once serving)."""
        if self.api.rest is None:
            raise RuntimeError("the REST API is not served (serve_rest=False, or not started)")
        return self.api.rest.url

    async def prepare(self) -> None:
        """Create the data directory; bring steward's and pocketcloud's schemas up to date."""
        self.cloud_settings.data_dir.mkdir(parents=True, exist_ok=True)
        await ensure_schemas(self.db)

    async def start(self) -> None:
        """Prepare, then start every service in order; on failure stop those started."""
        await self.prepare()
        try:
            for service in self.services:
                await service.start()
                self._started.append(service)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the started services in reverse order, then :meth:`close`."""
        try:
            while self._started:
                await self._started.pop().stop()
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the shared transport and the database's connections."""
        await self.transport.close()
        await self.db.dispose()

    async def __aenter__(self) -> typing.Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
