"""Cloud: what the REST API does for each user action (nova's ``compute/api.py``).

It changes only what the api service owns, the servers' records, and asks every other service
over RPC: the scheduler to place and build a server, the compute host to reboot or delete it or
to attach a volume, the volume and network services for their resources. Ids named in a request
body that do not exist are :class:`~pocketcloud.errors.InvalidInput` (400); ids in the path are
:class:`~pocketcloud.errors.NotFound` (404).

Every resource belongs to the project of the request that made it (the context's
``project_id``). A request sees, changes and names only its own project's servers, volumes and
networks (and the networks shared by all, of no project); another project's are "not found", as
in nova, so that their ids say nothing. An admin's request sees every project's, and only an
admin's may list the services (:class:`~pocketcloud.errors.Forbidden`, 403, for others).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from pocketcloud.api.schemas import (
    FaultView,
    NetworkCreate,
    NetworkView,
    ServerCreate,
    ServerView,
    ServiceView,
    VolumeCreate,
    VolumeView,
)
from pocketcloud.api.servers import ServerStore
from pocketcloud.compute.rpcapi import ComputeAPI
from pocketcloud.config import CloudSettings
from pocketcloud.errors import (
    Forbidden,
    InvalidInput,
    InvalidServerState,
    InvalidVolumeState,
    NetworkNotFound,
    ServerNotFound,
    VolumeNotFound,
)
from pocketcloud.network.rpcapi import NetworkAPI
from pocketcloud.objects import (
    InstanceSpec,
    RequestSpec,
    ServerChanges,
    ServerStatus,
    VolumeRecord,
)
from pocketcloud.rpc import binary_of
from pocketcloud.scheduler.rpcapi import SchedulerAPI
from pocketcloud.volume.rpcapi import VolumeAPI
from steward.context import RequestContext
from steward.errors import MessageUndeliverable
from steward.redact import shorten
from steward.registry import Registry

__all__ = ["MAX_ID_LENGTH", "Cloud", "server_view"]

LOG = logging.getLogger(__name__)

_LIVE = (ServerStatus.ACTIVE, ServerStatus.SHUTOFF)
MAX_ID_LENGTH = 64
"""No id is longer (the cloud's are UUIDs): a longer one in a path is not found, here, at once."""


def _volume_id(volume_id: str) -> str:
    if len(volume_id) > MAX_ID_LENGTH:
        raise VolumeNotFound(f"volume {shorten(volume_id)!r} does not exist")
    return volume_id


def _network_id(network_id: str) -> str:
    if len(network_id) > MAX_ID_LENGTH:
        raise NetworkNotFound(f"network {shorten(network_id)!r} does not exist")
    return network_id


def _sees(context: RequestContext, project_id: str | None, *, shared: bool = False) -> bool:
    """Whether ``context`` may see a resource of ``project_id`` (None and ``shared``: anyone)."""
    if context.is_admin or project_id == context.project_id:
        return True
    return shared and project_id is None


def server_view(row: sa.RowMapping) -> ServerView:
    """Return the REST view of a ``servers`` row."""
    fault = FaultView(message=row["fault"], created_at=row["fault_at"]) if row["fault"] else None
    return ServerView.model_validate({**row, "fault": fault})


class Cloud:
    """The user actions behind the REST API; see the module docstring."""

    def __init__(
        self,
        store: ServerStore,
        *,
        registry: Registry,
        scheduler: SchedulerAPI,
        compute: ComputeAPI,
        volume: VolumeAPI,
        network: NetworkAPI,
        settings: CloudSettings,
    ) -> None:
        self.store = store
        self.registry = registry
        self.scheduler = scheduler
        self.compute = compute
        self.volume = volume
        self.network = network
        self.settings = settings

    # --- servers -------------------------------------------------------------------------------

    async def create_server(self, context: RequestContext, request: ServerCreate) -> ServerView:
        """Record the server BUILDING and cast it to the scheduler (the boot flow's first step)."""
        limits = self.settings
        if request.ram_mb > limits.server_max_ram_mb:
            raise InvalidInput(
                f"`ram_mb` must be at most {limits.server_max_ram_mb}, got {request.ram_mb}"
            )
        if request.disk_gb > limits.server_max_disk_gb:
            raise InvalidInput(
                f"`disk_gb` must be at most {limits.server_max_disk_gb}, got {request.disk_gb}"
            )
        network_id = await self._network_for(context, request.network_id)
        row = await self.store.create(
            name=request.name,
            ram_mb=request.ram_mb,
            disk_gb=request.disk_gb,
            availability_zone=request.availability_zone,
            network_id=network_id,
            project_id=context.project_id,
        )
        spec = RequestSpec(
            server_id=row["id"],
            ram_mb=request.ram_mb,
            disk_gb=request.disk_gb,
            availability_zone=request.availability_zone,
        )
        instance = InstanceSpec(
            server_id=row["id"],
            name=request.name,
            ram_mb=request.ram_mb,
            disk_gb=request.disk_gb,
            network_id=network_id,
        )
        try:
            await self.scheduler.schedule_and_build_instance(context, spec, instance)
        except Exception as exc:
            LOG.exception("Could not hand server %s to the scheduler", row["id"])
            await self.store.update(
                row["id"],
                ServerChanges(
                    status=ServerStatus.ERROR,
                    fault=f"the scheduler could not be reached: {exc}",
                    expected_status=(ServerStatus.BUILDING,),
                ),
            )
        return server_view(await self.store.get(row["id"]))

    async def _network_for(self, context: RequestContext, network_id: str | None) -> str | None:
        if network_id is not None:
            try:
                return (await self.get_network(context, network_id)).id
            except NetworkNotFound as exc:
                raise InvalidInput(f"network {shorten(network_id)!r} does not exist") from exc
        networks = await self.list_networks(context)
        return networks[0].id if networks else None

    async def list_servers(self, context: RequestContext) -> list[ServerView]:
        """Return every server the context's project may see."""
        project_id = None if context.is_admin else context.project_id
        if not context.is_admin and project_id is None:
            return []
        return [server_view(row) for row in await self.store.list_all(project_id=project_id)]

    async def _server(self, context: RequestContext, server_id: str) -> sa.RowMapping:
        """Return the server's row if the context's project may see it; else ServerNotFound."""
        row = await self.store.get(server_id)
        if not _sees(context, row["project_id"]):
            raise ServerNotFound(f"server {shorten(server_id)!r} does not exist")
        return row

    async def get_server(self, context: RequestContext, server_id: str) -> ServerView:
        """Return one server; raises ServerNotFound."""
        return server_view(await self._server(context, server_id))

    async def delete_server(self, context: RequestContext, server_id: str) -> None:
        """Mark the server DELETING and have its host remove it.

        A server without a host, or whose compute service is down, is deleted here at once
        (nova's local delete), after its address and its claim are released.
        """
        row = await self._server(context, server_id)
        if row["status"] == ServerStatus.DELETING:
            return
        others = tuple(status for status in ServerStatus if status != ServerStatus.DELETING)
        changes = ServerChanges(status=ServerStatus.DELETING, expected_status=others)
        if not await self.store.update(server_id, changes):
            return  # deleted or being deleted by a concurrent request
        # The host as of DELETING, not as first read: a build may have reported its host (and
        # ACTIVE) in between, and a host reporting later sees DELETING and undoes its own work.
        host = (await self.store.get(server_id))["host"]
        # A host that is up, or that stopped gracefully (it comes back: a restart, an upgrade),
        # gets the delete on its queue and removes the guest; only a dead host's server, or one
        # whose host has no queue at all, is deleted here (its guest, if any, is left behind).
        if host is not None and await self._compute_may_come_back(host):
            try:
                await self.compute.terminate_instance(context, host, server_id)
            except MessageUndeliverable:
                LOG.info("Nothing consumes compute.%s; deleting server %s here", host, server_id)
            else:
                return
        LOG.info("Deleting server %s here: its host %s is not up", server_id, host)
        if host is not None:
            await self.network.deallocate_for_instance(context, server_id)
            await self.scheduler.release_allocation(context, server_id)
        await self.store.mark_deleted(server_id)

    async def _compute_may_come_back(self, host: str) -> bool:
        """Whether ``host``'s compute service is up, or stopped gracefully (not dead or forced)."""
        record = await self.registry.get(host, binary_of("compute"))
        if record is None:
            return False
        stopped = record.stopped_at is not None and not record.forced_down
        return stopped or await self.registry.is_up(record)

    async def reboot_server(self, context: RequestContext, server_id: str) -> ServerView:
        """Mark the server REBOOTING and cast the reboot to its host."""
        row = await self._server(context, server_id)
        changes = ServerChanges(status=ServerStatus.REBOOTING, expected_status=_LIVE)
        if row["host"] is None or not await self.store.update(server_id, changes):
            current = await self.store.get(server_id)
            raise InvalidServerState(
                f"server {server_id} is {current['status']}; only an ACTIVE or SHUTOFF server "
                "can be rebooted"
            )
        try:
            await self.compute.reboot_instance(context, row["host"], server_id)
        except MessageUndeliverable:
            # Nothing will reboot it: give the server its status back, and say why (503).
            back = ServerChanges(status=row["status"], expected_status=(ServerStatus.REBOOTING,))
            await self.store.update(server_id, back)
            raise
        return server_view(await self.store.get(server_id))

    async def get_console_output(self, context: RequestContext, server_id: str) -> str:
        """Return the end of the server's console, from its host."""
        row = await self._server(context, server_id)
        if row["host"] is None or row["status"] not in _LIVE:
            raise InvalidServerState(
                f"server {server_id} is {row['status']}; it has a console once ACTIVE"
            )
        return await self.compute.get_console_output(context, row["host"], server_id)

    # --- volumes -------------------------------------------------------------------------------

    async def create_volume(self, context: RequestContext, request: VolumeCreate) -> VolumeView:
        """Create a volume on some volume host."""
        if request.size_gb > self.settings.volume_max_size_gb:
            raise InvalidInput(
                f"`size_gb` must be at most {self.settings.volume_max_size_gb}, "
                f"got {request.size_gb}"
            )
        record = await self.volume.create_volume(context, request.name, request.size_gb)
        return VolumeView.model_validate(record.model_dump())

    async def list_volumes(self, context: RequestContext) -> list[VolumeView]:
        """Return every volume the context's project may see."""
        return [
            VolumeView.model_validate(record.model_dump())
            for record in await self.volume.list_volumes(context)
            if _sees(context, record.project_id)
        ]

    async def _volume(self, context: RequestContext, volume_id: str) -> VolumeRecord:
        """Return the volume if the context's project may see it; else VolumeNotFound."""
        record = await self.volume.get_volume(context, _volume_id(volume_id))
        if not _sees(context, record.project_id):
            raise VolumeNotFound(f"volume {shorten(volume_id)!r} does not exist")
        return record

    async def get_volume(self, context: RequestContext, volume_id: str) -> VolumeView:
        """Return one volume; raises VolumeNotFound."""
        return VolumeView.model_validate((await self._volume(context, volume_id)).model_dump())

    async def delete_volume(self, context: RequestContext, volume_id: str) -> None:
        """Delete an available volume on its host; raises InvalidVolumeState when attached."""
        await self.volume.delete_volume(context, await self._volume(context, volume_id))

    async def attach_volume(
        self, context: RequestContext, volume_id: str, server_id: str
    ) -> VolumeView:
        """Attach the volume to an ACTIVE or SHUTOFF server, through the server's host."""
        await self._volume(context, volume_id)
        try:
            row = await self._server(context, server_id)
        except ServerNotFound as exc:
            raise InvalidInput(f"server {shorten(server_id)!r} does not exist") from exc
        if row["host"] is None or row["status"] not in _LIVE:
            raise InvalidServerState(
                f"server {server_id} is {row['status']}; volumes attach to ACTIVE or SHUTOFF "
                "servers"
            )
        await self.compute.attach_volume(context, row["host"], server_id, volume_id)
        return await self.get_volume(context, volume_id)

    async def detach_volume(self, context: RequestContext, volume_id: str) -> VolumeView:
        """Detach the volume from the server that holds it, through the server's host."""
        volume = await self._volume(context, volume_id)
        if volume.server_id is None or volume.attached_host is None:
            raise InvalidVolumeState(f"volume {volume_id} is {volume.status}; nothing to detach")
        await self.compute.detach_volume(context, volume.attached_host, volume.server_id, volume_id)
        return await self.get_volume(context, volume_id)

    # --- networks and services -----------------------------------------------------------------

    async def create_network(self, context: RequestContext, request: NetworkCreate) -> NetworkView:
        """Create a network; the running network manager decides its layout."""
        record = await self.network.create_network(
            context, request.name, request.cidr, request.vlan
        )
        return NetworkView.model_validate(record.model_dump())

    async def list_networks(self, context: RequestContext) -> list[NetworkView]:
        """Return every network the context's project may see (its own and the shared ones)."""
        return [
            NetworkView.model_validate(record.model_dump())
            for record in await self.network.list_networks(context)
            if _sees(context, record.project_id, shared=True)
        ]

    async def get_network(self, context: RequestContext, network_id: str) -> NetworkView:
        """Return one network; raises NetworkNotFound."""
        record = await self.network.get_network(context, _network_id(network_id))
        if not _sees(context, record.project_id, shared=True):
            raise NetworkNotFound(f"network {shorten(network_id)!r} does not exist")
        return NetworkView.model_validate(record.model_dump())

    async def list_services(self, context: RequestContext) -> list[ServiceView]:
        """Return every service of the registry with its up/down state; admins only."""
        if not context.is_admin:
            raise Forbidden("only an admin may list the services; this token is not an admin's")
        return [
            ServiceView(
                host=status.record.host,
                binary=status.record.binary,
                topic=status.record.topic,
                state="up" if status.up else "down",
                status="disabled" if status.record.disabled else "enabled",
                disabled_reason=status.record.disabled_reason,
                last_seen_up=status.record.last_seen_up,
            )
            for status in await self.registry.list_services()
        ]
