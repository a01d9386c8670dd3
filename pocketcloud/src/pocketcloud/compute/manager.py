"""ComputeManager: runs the instances of its host through a compute driver.

The boot flow's last step happens here: ``build_and_run_instance`` (cast to ``compute.<host>`` by
the scheduler) asks the network service for a fixed IP, spawns the instance through the driver
and reports the server ACTIVE to the api service, with ``compute.instance.create.start``/``.end``
notifications. Anything that fails on the way undoes what was done and reports the server ERROR
with a fault; it never stays BUILDING.

The manager owns ``instances`` (what runs here), ``instance_volumes`` (what is attached, see
:mod:`~pocketcloud.compute.volumes`) and its host's row of ``compute_nodes`` (see
:mod:`~pocketcloud.compute.resource_tracker`). Two periodic tasks keep them true:
``update_available_resource`` reports what the host offers and uses, and ``sync_power_states``
notices an instance that stopped behind pocketcloud's back and reports it SHUTOFF. Operations on
one instance run one at a time (nova's per-instance lock).

One piece past 400 lines, as nova's ``compute/manager.py`` is: every RPC method of the compute
service is here, because the manager is the only code that changes the host's instances; what
can live apart already does (volumes, the resource tracker, the drivers).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import typing
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

import steward
from pocketcloud.api.rpcapi import ServersAPI
from pocketcloud.compute.driver import ComputeDriver, Instance
from pocketcloud.compute.resource_tracker import ResourceTracker
from pocketcloud.compute.tables import instances
from pocketcloud.compute.volumes import VolumeAttachments
from pocketcloud.errors import ServerNotFound, describe_fault
from pocketcloud.manager import CloudManager, ManagerOptions
from pocketcloud.network.rpcapi import NetworkAPI
from pocketcloud.objects import InstanceSpec, NetworkInfo, PowerState, ServerChanges, ServerStatus
from pocketcloud.scheduler.rpcapi import SchedulerAPI
from pocketcloud.volume.rpcapi import VolumeAPI
from steward.context import RequestContext
from steward.db import utcnow
from steward.rpc import Target

__all__ = ["SYNC_POWER_STATE_INTERVAL", "UPDATE_RESOURCES_INTERVAL", "ComputeManager"]

LOG = logging.getLogger(__name__)

UPDATE_RESOURCES_INTERVAL = 60.0
"""Seconds between two reports of the host's resources (nova's ``update_resources_interval``)."""
SYNC_POWER_STATE_INTERVAL = 60.0
"""Seconds between two power-state checks (nova's ``sync_power_state_interval``)."""
INTERRUPTED_UNDO_TIMEOUT = 5.0
"""Seconds a stopping service spends undoing a build it cut off (well inside the launcher's
margin past ``graceful_shutdown_timeout``); a redelivery finishes what is left."""


class _Clients(typing.NamedTuple):
    servers: ServersAPI
    network: NetworkAPI
    scheduler: SchedulerAPI
    volumes: VolumeAttachments


class ComputeManager(CloudManager):
    """Owns this host's instances; see the module docstring."""

    target = Target(version="1.1")

    def __init__(self, host: str | None = None, **options: typing.Unpack[ManagerOptions]) -> None:
        super().__init__(host, service_name="compute", **options)
        self.driver: ComputeDriver | None = None
        self.resource_tracker = ResourceTracker(
            self.db, self.host, availability_zone=self.cloud_settings.availability_zone
        )
        self._clients: _Clients | None = None
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )

    # --- lifecycle -----------------------------------------------------------------------------

    async def init_host(self, service_ref: object | None) -> None:
        """Load the driver, open the clients, restart the guests that ran when the host stopped."""
        settings = self.cloud_settings
        self.driver = steward.load_driver(
            "compute",
            settings.compute_driver,
            ComputeDriver,
            host=self.host,
            data_dir=settings.data_dir,
            memory_mb=settings.compute_memory_mb,
            disk_gb=settings.compute_disk_gb,
            boot_seconds=settings.guest_boot_seconds,
        )
        transport = self._rpc_transport()
        self._clients = _Clients(
            servers=ServersAPI(transport),
            network=NetworkAPI(transport),
            scheduler=SchedulerAPI(transport),
            volumes=VolumeAttachments(self.db, self.host, VolumeAPI(transport)),
        )
        if settings.resume_guests_state_on_host_boot:
            await self._resume_guests()

    async def _resume_guests(self) -> None:
        # A guest recorded RUNNING that does not run stopped with the host: start it again.
        # Without resume, sync_power_states reports it SHUTOFF instead.
        driver = self._driver()
        for row in await self._instance_rows():
            instance = _instance(row)
            if row["power_state"] != PowerState.RUNNING:
                continue
            if await driver.get_power_state(instance) == PowerState.RUNNING:
                continue
            LOG.info(
                "Resuming %s (%s), which ran when the host stopped", instance.name, row["server_id"]
            )
            try:
                await driver.spawn(instance)
            except Exception:
                LOG.exception("Could not resume %s; it will be reported SHUTOFF", instance.name)

    async def pre_start_hook(self, service_ref: object | None) -> None:
        """Report the host's resources before taking requests, so the scheduler sees it at once."""
        await self.resource_tracker.update(self._driver())

    async def cleanup_host(self) -> None:
        """Let the driver release the host, then close what the manager opened."""
        if self.driver is not None:
            await self.driver.cleanup_host()
        await super().cleanup_host()

    def _driver(self) -> ComputeDriver:
        if self.driver is None:
            raise RuntimeError("ComputeManager.init_host() has not run")
        return self.driver

    def _rpc(self) -> _Clients:
        if self._clients is None:
            raise RuntimeError("ComputeManager.init_host() has not run")
        return self._clients

    # --- records -------------------------------------------------------------------------------

    async def _instance_rows(self) -> list[sa.RowMapping]:
        query = sa.select(instances).where(instances.c.host == self.host)
        async with self.db.session() as session:
            return list((await session.execute(query)).mappings().all())

    async def _instance_row(self, server_id: str) -> sa.RowMapping | None:
        query = sa.select(instances).where(
            instances.c.server_id == server_id, instances.c.host == self.host
        )
        async with self.db.session() as session:
            return (await session.execute(query)).mappings().first()

    async def _require_instance(self, server_id: str) -> Instance:
        row = await self._instance_row(server_id)
        if row is None:
            raise ServerNotFound(f"server {server_id!r} does not run on compute host {self.host}")
        return _instance(row)

    async def _set_instance(self, server_id: str, **values: object) -> None:
        statement = (
            sa.update(instances)
            .where(instances.c.server_id == server_id)
            .values(**values, updated_at=utcnow())
        )
        async with self.db.session() as session:
            await session.execute(statement)

    async def _forget_instance(self, server_id: str) -> None:
        await self._rpc().volumes.forget(server_id)
        async with self.db.session() as session:
            await session.execute(sa.delete(instances).where(instances.c.server_id == server_id))

    async def _report(
        self, context: RequestContext, server_id: str, changes: ServerChanges
    ) -> bool:
        """Tell the api service what happened to a server; log (not raise) if it cannot hear."""
        try:
            return await self._rpc().servers.update_server(context, server_id, changes)
        except Exception:
            LOG.exception("Could not report %s of server %s to the api service", changes, server_id)
            return False

    async def _report_error(
        self, context: RequestContext, server_id: str, fault: str, expected: ServerStatus
    ) -> None:
        changes = ServerChanges(status=ServerStatus.ERROR, fault=fault, expected_status=(expected,))
        await self._report(context, server_id, changes)

    # --- boot, reboot, delete ------------------------------------------------------------------

    async def build_and_run_instance(self, context: RequestContext, instance: InstanceSpec) -> None:
        """Build and start a server here; report it ACTIVE, or ERROR with a fault.

        A build cut off because the service stops is undone, and its request goes back to the
        queue (steward requeues what a stopping server cancels), so the next delivery builds the
        server afresh. A request delivered again for a server this host already built (the
        process died before its report) reports the server again instead of building it twice.
        """
        server_id = instance.server_id
        payload = {"server_id": server_id, "name": instance.name, "host": self.host}
        async with self._locks[server_id]:
            row = await self._instance_row(server_id)
            if row is not None and row["power_state"] == PowerState.NOSTATE:
                LOG.warning("Server %s was left half-built here; building it again", server_id)
                await self._remove(context, _instance(row), keep_claim=True)
            elif row is not None:
                LOG.info("Server %s is already built here (a redelivered request)", server_id)
                # ACTIVE already is fine (the first report got through); anything else (deleted
                # while this host was down, or given up as ERROR) leaves nothing to keep.
                built = _instance(row)
                if not await self._report_built(context, built, already=(ServerStatus.ACTIVE,)):
                    LOG.info("Server %s is gone or given up; removing it", server_id)
                    await self._remove(context, built)
                return
            self.notifier.info(context, "compute.instance.create.start", payload)
            network: NetworkInfo | None = None
            try:
                network = await self._build(context, instance)
            except asyncio.CancelledError:
                LOG.warning("Building server %s was interrupted; undoing it", server_id)
                await asyncio.shield(self._undo_interrupted_build(context, instance))
                raise
            except Exception as exc:
                LOG.exception("Building server %s failed", server_id)
                await self._undo_build(context, instance)
                self.notifier.error(
                    context, "compute.instance.create.error", {**payload, "reason": str(exc)}
                )
                fault = f"build failed on {self.host}: {describe_fault(exc)}"
                await self._report_error(context, server_id, fault, ServerStatus.BUILDING)
                return
            await self.resource_tracker.update(self._driver())
            built = Instance.from_spec(instance, network)
            if not await self._report_built(context, built):
                LOG.info("Server %s was deleted while building; removing it", server_id)
                await self._remove(context, built)
                return
            address = network.address if network is not None else None
            self.notifier.info(
                context, "compute.instance.create.end", {**payload, "address": address}
            )

    async def _report_built(
        self,
        context: RequestContext,
        instance: Instance,
        *,
        already: tuple[ServerStatus, ...] = (),
    ) -> bool:
        """Report a built server ACTIVE; False if it is no longer BUILDING (or in ``already``)."""
        active = ServerChanges(
            status=ServerStatus.ACTIVE,
            host=self.host,
            power_state=PowerState.RUNNING,
            address=instance.network.address if instance.network is not None else None,
            launched=True,
            expected_status=(ServerStatus.BUILDING, *already),
        )
        return await self._report(context, instance.server_id, active)

    async def _undo_interrupted_build(self, context: RequestContext, spec: InstanceSpec) -> None:
        """Undo a build a stopping service cut off, keeping the claim: it will be built again.

        The record goes back to NOSTATE first, so whatever the bounded undo does not finish
        (the other services may be stopping too) is finished by the redelivered request.
        """
        row = await self._instance_row(spec.server_id)
        if row is None:
            return
        await self._set_instance(spec.server_id, power_state=PowerState.NOSTATE)
        try:
            async with asyncio.timeout(INTERRUPTED_UNDO_TIMEOUT):
                await self._remove(context, _instance(row), keep_claim=True)
        except TimeoutError:
            LOG.warning(
                "Undoing server %s took over %g s; its redelivered request finishes it",
                spec.server_id,
                INTERRUPTED_UNDO_TIMEOUT,
            )

    async def _undo_build(self, context: RequestContext, spec: InstanceSpec) -> None:
        """Remove what a build that did not finish left (its record knows the address)."""
        row = await self._instance_row(spec.server_id)
        await self._remove(
            context, _instance(row) if row is not None else Instance.from_spec(spec, None)
        )

    async def _build(self, context: RequestContext, spec: InstanceSpec) -> NetworkInfo | None:
        now = utcnow()
        async with self.db.session() as session:
            await session.execute(
                sa.insert(instances).values(
                    server_id=spec.server_id,
                    host=self.host,
                    name=spec.name,
                    ram_mb=spec.ram_mb,
                    disk_gb=spec.disk_gb,
                    power_state=PowerState.NOSTATE,
                    created_at=now,
                    updated_at=now,
                )
            )
        network = None
        if spec.network_id is not None:
            network = await self._rpc().network.allocate_for_instance(
                context, spec.server_id, spec.network_id, self.host
            )
            await self._set_instance(spec.server_id, network_info=network.model_dump(mode="json"))
        await self._driver().spawn(Instance.from_spec(spec, network))
        await self._set_instance(spec.server_id, power_state=PowerState.RUNNING)
        return network

    async def _remove(
        self, context: RequestContext, instance: Instance, *, keep_claim: bool = False
    ) -> None:
        """Undo a server on this host, each step best effort: guest, address, records, claim.

        ``keep_claim`` keeps the scheduler's claim of the host's resources, for a server that
        will be built here again (its request goes back to this host's queue).
        """
        rpc = self._rpc()
        server_id = instance.server_id
        steps: tuple[tuple[str, Callable[[], Awaitable[None]]], ...] = (
            ("destroying the guest", lambda: self._driver().destroy(instance)),
            (
                "releasing its address",
                lambda: rpc.network.deallocate_for_instance(context, server_id),
            ),
            ("forgetting the instance", lambda: self._forget_instance(server_id)),
            *(
                ()
                if keep_claim
                else (
                    (
                        "releasing its claim",
                        lambda: rpc.scheduler.release_allocation(context, server_id),
                    ),
                )
            ),
            (
                "reporting the host's resources",
                lambda: self.resource_tracker.update(self._driver()),
            ),
        )
        for what, step in steps:
            try:
                await step()
            except Exception:
                LOG.exception("Removing server %s: %s failed", server_id, what)

    async def reboot_instance(self, context: RequestContext, server_id: str) -> None:
        """Restart a server's guest; report it ACTIVE, or ERROR with a fault."""
        payload = {"server_id": server_id, "host": self.host}
        async with self._locks[server_id]:
            self.notifier.info(context, "compute.instance.reboot.start", payload)
            try:
                instance = await self._require_instance(server_id)
                await self._driver().reboot(instance)
                await self._set_instance(server_id, power_state=PowerState.RUNNING)
            except Exception as exc:
                LOG.exception("Rebooting server %s failed", server_id)
                fault = f"reboot failed: {describe_fault(exc)}"
                await self._report_error(context, server_id, fault, ServerStatus.REBOOTING)
                return
            changes = ServerChanges(
                status=ServerStatus.ACTIVE,
                power_state=PowerState.RUNNING,
                expected_status=(ServerStatus.REBOOTING,),
            )
            await self._report(context, server_id, changes)
            self.notifier.info(context, "compute.instance.reboot.end", payload)

    async def terminate_instance(self, context: RequestContext, server_id: str) -> None:
        """Detach volumes, stop the guest, release the address and the claim; report it gone."""
        payload = {"server_id": server_id, "host": self.host}
        async with self._locks[server_id]:
            self.notifier.info(context, "compute.instance.delete.start", payload)
            rpc = self._rpc()
            try:
                row = await self._instance_row(server_id)
                if row is not None:
                    await rpc.volumes.detach_all(context, self._driver(), _instance(row))
                    await self._driver().destroy(_instance(row))
                await rpc.network.deallocate_for_instance(context, server_id)
                await self._forget_instance(server_id)
                await rpc.scheduler.release_allocation(context, server_id)
            except Exception as exc:
                LOG.exception("Deleting server %s failed", server_id)
                fault = f"delete failed: {describe_fault(exc)}"
                await self._report_error(context, server_id, fault, ServerStatus.DELETING)
                return
            await rpc.servers.server_deleted(context, server_id)
            self.notifier.info(context, "compute.instance.delete.end", payload)
        self._locks.pop(server_id, None)
        await self.resource_tracker.update(self._driver())

    # --- volumes and console -------------------------------------------------------------------

    async def attach_volume(self, context: RequestContext, server_id: str, volume_id: str) -> None:
        """Attach a volume to a server of this host; raises NotFound or InvalidVolumeState."""
        async with self._locks[server_id]:
            instance = await self._require_instance(server_id)
            await self._rpc().volumes.attach(context, self._driver(), instance, volume_id)

    async def detach_volume(self, context: RequestContext, server_id: str, volume_id: str) -> None:
        """Detach a volume from a server of this host; raises InvalidVolumeState if not attached."""
        async with self._locks[server_id]:
            instance = await self._require_instance(server_id)
            await self._rpc().volumes.detach(context, self._driver(), instance, volume_id)

    async def get_console_output(self, context: RequestContext, server_id: str) -> str:
        """Return the end of a server's console (API 1.1)."""
        return await self._driver().get_console_output(await self._require_instance(server_id))

    # --- periodic tasks ------------------------------------------------------------------------

    @steward.periodic_task(spacing=UPDATE_RESOURCES_INTERVAL, run_immediately=True)
    async def update_available_resource(self, context: RequestContext) -> None:
        """Report what this host offers and what its instances use (``compute_nodes``)."""
        await self.resource_tracker.update(self._driver())

    @steward.periodic_task(spacing=SYNC_POWER_STATE_INTERVAL)
    async def sync_power_states(self, context: RequestContext) -> None:
        """Compare each instance's recorded power state with the driver's; report changes.

        A guest that stopped behind pocketcloud's back makes its server SHUTOFF (with a
        ``compute.instance.power_off`` notification); one that runs again makes it ACTIVE.
        Instances with an operation in progress are left alone.
        """
        for row in await self._instance_rows():
            server_id = row["server_id"]
            if self._locks[server_id].locked():
                continue
            async with self._locks[server_id]:
                running = await self._driver().get_power_state(_instance(row)) == PowerState.RUNNING
                if (row["power_state"] == PowerState.RUNNING) == running:
                    continue
                power = PowerState.RUNNING if running else PowerState.SHUTDOWN
                await self._set_instance(server_id, power_state=power)
                if running:
                    changes = ServerChanges(
                        status=ServerStatus.ACTIVE,
                        power_state=power,
                        expected_status=(ServerStatus.SHUTOFF,),
                    )
                else:
                    LOG.warning("Server %s stopped by itself; marking it SHUTOFF", server_id)
                    self.notifier.info(
                        context,
                        "compute.instance.power_off",
                        {"server_id": server_id, "host": self.host, "reason": "guest stopped"},
                    )
                    changes = ServerChanges(
                        status=ServerStatus.SHUTOFF,
                        power_state=power,
                        expected_status=(ServerStatus.ACTIVE,),
                    )
                await self._report(context, server_id, changes)


def _instance(row: sa.RowMapping) -> Instance:
    network = row["network_info"]
    return Instance(
        server_id=row["server_id"],
        name=row["name"],
        ram_mb=row["ram_mb"],
        disk_gb=row["disk_gb"],
        network=NetworkInfo.model_validate(network) if network is not None else None,
    )
