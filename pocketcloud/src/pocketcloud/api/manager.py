"""ApiManager: owns the servers' records and serves the REST API.

The api service is where a user's request enters: its REST API (:mod:`~pocketcloud.api.app`,
served from ``post_start_hook`` until ``cleanup_host``) records a new server BUILDING and asks the
other services over RPC for everything else. It is also the only code that changes a server's
record: the scheduler and compute services report what they did through its RPC methods,
``update_server`` and ``server_deleted`` (see :class:`~pocketcloud.api.rpcapi.ServersAPI`).

A periodic task puts a server that has been BUILDING longer than ``build_timeout`` into ERROR
with a fault (nova's ``instance_build_timeout``), so a build whose message was lost does not
leave it BUILDING for ever.
"""

from __future__ import annotations

import datetime
import logging
import typing

import steward
from pocketcloud.api.app import create_app
from pocketcloud.api.cloud import Cloud
from pocketcloud.api.rest import RestServer
from pocketcloud.api.servers import ServerStore
from pocketcloud.api.tokens import load_tokens
from pocketcloud.compute.rpcapi import ComputeAPI
from pocketcloud.manager import CloudManager, ManagerOptions
from pocketcloud.network.rpcapi import NetworkAPI
from pocketcloud.objects import ServerChanges, ServerStatus
from pocketcloud.scheduler.rpcapi import SchedulerAPI
from pocketcloud.volume.rpcapi import VolumeAPI
from steward.context import RequestContext
from steward.db import utcnow
from steward.registry import Registry
from steward.rpc import Target

if typing.TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["BUILD_TIMEOUT_CHECK_INTERVAL", "ApiManager"]

LOG = logging.getLogger(__name__)

BUILD_TIMEOUT_CHECK_INTERVAL = 60.0
"""Seconds between two looks for servers BUILDING too long."""


class ApiManager(CloudManager):
    """Owns the ``servers`` table; serves the REST API when ``serve_rest`` (tests may not)."""

    target = Target(version="1.0")
    # The REST application is callable (ASGI), but not for RPC callers.
    __rpc_private__: typing.ClassVar[frozenset[str]] = CloudManager.__rpc_private__ | {"app"}

    def __init__(
        self,
        host: str | None = None,
        *,
        serve_rest: bool = True,
        **options: typing.Unpack[ManagerOptions],
    ) -> None:
        super().__init__(host, service_name="api", **options)
        self.serve_rest = serve_rest
        self.store = ServerStore(self.db)
        self.registry = Registry(self.db, settings=options.get("settings"))
        self.cloud: Cloud | None = None
        self.app: FastAPI | None = None
        self.rest: RestServer | None = None

    async def init_host(self, service_ref: object | None) -> None:
        """Open the clients of the other services and build the REST application."""
        transport = self._rpc_transport()
        self.cloud = Cloud(
            self.store,
            registry=self.registry,
            scheduler=SchedulerAPI(transport),
            compute=ComputeAPI(transport),
            volume=VolumeAPI(transport),
            network=NetworkAPI(transport),
            settings=self.cloud_settings,
        )
        token_file = self.cloud_settings.api_token_file
        tokens = load_tokens(token_file) if token_file is not None else None
        if tokens is None:
            LOG.warning(
                "The REST API is open: no api_token_file is set, so every request is an admin's; "
                "it listens on %s only",
                self.cloud_settings.api_host,
            )
        else:
            LOG.info("The REST API needs a token: %d known, from %s", len(tokens), token_file)
        self.app = create_app(
            self.cloud, max_body_size=self.cloud_settings.api_max_body_size, tokens=tokens
        )

    async def post_start_hook(self) -> None:
        """Start serving the REST API, now that the service answers RPC."""
        if not self.serve_rest or self.app is None:
            return
        graceful = self.registry.settings.graceful_shutdown_timeout
        self.rest = RestServer(
            self.app,
            host=self.cloud_settings.api_host,
            port=self.cloud_settings.api_port,
            graceful_shutdown_timeout=min(graceful, 10.0),
        )
        await self.rest.start()

    async def cleanup_host(self) -> None:
        """Stop the REST API, then close what the manager opened."""
        if self.rest is not None:
            await self.rest.stop()
            self.rest = None
        await super().cleanup_host()

    # --- reports from other services -----------------------------------------------------------

    async def update_server(
        self, context: RequestContext, server_id: str, changes: ServerChanges
    ) -> bool:
        """Apply a change another service reports; return False if the status did not fit.

        False means the server moved on meanwhile (deleted, say): the reporter undoes its work.
        """
        applied = await self.store.update(server_id, changes)
        if not applied:
            LOG.info("Server %s: change %s not applied (status moved on)", server_id, changes)
        elif changes.status is not None:
            LOG.info("Server %s is %s", server_id, changes.status)
        return applied

    async def server_deleted(self, context: RequestContext, server_id: str) -> None:
        """Drop the record of a server its host has removed."""
        await self.store.mark_deleted(server_id)
        LOG.info("Server %s deleted", server_id)

    # --- periodic tasks ------------------------------------------------------------------------

    @steward.periodic_task(spacing=BUILD_TIMEOUT_CHECK_INTERVAL)
    async def check_build_timeouts(self, context: RequestContext) -> None:
        """Put servers BUILDING longer than ``build_timeout`` into ERROR with a fault."""
        timeout = self.cloud_settings.build_timeout
        if not timeout:
            return
        before = utcnow() - datetime.timedelta(seconds=timeout)
        for server_id in await self.store.building_since(before):
            LOG.warning("Server %s has been BUILDING over %g s; ERROR", server_id, timeout)
            await self.store.update(
                server_id,
                ServerChanges(
                    status=ServerStatus.ERROR,
                    fault=f"build timed out after {timeout:g} s",
                    expected_status=(ServerStatus.BUILDING,),
                ),
            )
