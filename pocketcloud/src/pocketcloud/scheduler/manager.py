"""SchedulerManager: chooses a compute host for each server and claims its resources there.

``select_destinations`` runs the enabled filters over every compute host's state
(:mod:`~pocketcloud.scheduler.host_state`), weighs the hosts that pass and records an allocation
for the winner, so the next choice already counts it, before the compute host has even heard of
the server. Choices are made one at a time, across processes too: the choice and the claim are
one transaction under the database's lock, so two schedulers never promise one host's last free
RAM twice. ``schedule_and_build_instance`` is the boot flow's step: choose, tell the api service
the server's host, and cast the build to ``compute.<host>``; when no host fits, the server goes
to ERROR with the reason as its fault.
"""

from __future__ import annotations

import asyncio
import logging
import typing

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from pocketcloud.api.rpcapi import ServersAPI
from pocketcloud.compute.rpcapi import ComputeAPI
from pocketcloud.compute.tables import compute_nodes
from pocketcloud.database import serialized_session
from pocketcloud.errors import NoValidHost
from pocketcloud.manager import CloudManager, ManagerOptions
from pocketcloud.objects import (
    Destination,
    InstanceSpec,
    RequestSpec,
    ServerChanges,
    ServerStatus,
    wire,
)
from pocketcloud.scheduler.filters import FILTERS, HostFilter, filter_hosts
from pocketcloud.scheduler.host_state import load_host_states
from pocketcloud.scheduler.tables import allocations
from pocketcloud.scheduler.weights import weigh_hosts
from steward.context import RequestContext
from steward.db import utcnow
from steward.errors import MessageUndeliverable
from steward.registry import Registry
from steward.rpc import Target

__all__ = ["SchedulerManager"]

LOG = logging.getLogger(__name__)


class SchedulerManager(CloudManager):
    """Owns the ``allocations`` table; reads compute hosts' reports and the service registry."""

    target = Target(version="1.0")

    def __init__(self, host: str | None = None, **options: typing.Unpack[ManagerOptions]) -> None:
        super().__init__(host, service_name="scheduler", **options)
        self.registry = Registry(self.db, settings=options.get("settings"))
        self.filters: list[tuple[str, HostFilter]] = [
            (name, FILTERS[name]()) for name in self.cloud_settings.scheduler_enabled_filters
        ]
        self._choosing = asyncio.Lock()
        self._servers: ServersAPI | None = None
        self._compute: ComputeAPI | None = None

    async def init_host(self, service_ref: object | None) -> None:
        """Open the clients of the api and compute services."""
        transport = self._rpc_transport()
        self._servers = ServersAPI(transport)
        self._compute = ComputeAPI(transport)

    def _clients(self) -> tuple[ServersAPI, ComputeAPI]:
        if self._servers is None or self._compute is None:
            raise RuntimeError("SchedulerManager.init_host() has not run")
        return self._servers, self._compute

    async def select_destinations(
        self, context: RequestContext, spec: RequestSpec
    ) -> list[dict[str, typing.Any]]:
        """Choose a host for the server ``spec`` describes and claim its resources there.

        Asking again for a server that has a claim returns the same host. Raises
        :class:`NoValidHost` saying which filter left no host.
        """
        # Reading what the hosts have left and claiming on the best one is one transaction under
        # the database's lock: schedulers in other processes wait for it instead of promising the
        # same free RAM twice (the asyncio lock spares this process's connections the queue).
        async with self._choosing, serialized_session(self.db, "allocations") as session:
            claimed = await self._claim_of(spec.server_id, session)
            if claimed is not None:
                return [wire(claimed)]
            states = await load_host_states(self.db, self.registry)
            passed = filter_hosts(states, spec, self.filters)
            best = weigh_hosts(
                passed, ram_weight_multiplier=self.cloud_settings.ram_weight_multiplier
            )[0]
            await session.execute(
                sa.insert(allocations).values(
                    server_id=spec.server_id,
                    host=best.host,
                    ram_mb=spec.ram_mb,
                    disk_gb=spec.disk_gb,
                    created_at=utcnow(),
                )
            )
        LOG.info(
            "Chose %s for server %s (%d of %d hosts passed the filters)",
            best.host,
            spec.server_id,
            len(passed),
            len(states),
        )
        destination = Destination(host=best.host, availability_zone=best.availability_zone)
        return [wire(destination)]

    async def _claim_of(self, server_id: str, session: AsyncSession) -> Destination | None:
        query = (
            sa.select(allocations.c.host, compute_nodes.c.availability_zone)
            .join(compute_nodes, compute_nodes.c.host == allocations.c.host, isouter=True)
            .where(allocations.c.server_id == server_id)
        )
        row = (await session.execute(query)).first()
        if row is None:
            return None
        return Destination(host=row[0], availability_zone=row[1] or "")

    async def schedule_and_build_instance(
        self, context: RequestContext, spec: RequestSpec, instance: InstanceSpec
    ) -> None:
        """Choose a host for a new server and cast its build there (the boot flow's step 2).

        No host: the server goes to ERROR with the reason as its fault. A server deleted while
        it was being scheduled gets its claim back and is not built.
        """
        servers, compute = self._clients()
        try:
            destination = Destination.model_validate(
                (await self.select_destinations(context, spec))[0]
            )
        except NoValidHost as exc:
            LOG.warning("Server %s: %s", spec.server_id, exc)
            self.notifier.error(
                context,
                "scheduler.select_destinations.error",
                {"server_id": spec.server_id, "reason": str(exc)},
            )
            await self._fail(context, spec.server_id, str(exc))
            return
        except Exception as exc:
            LOG.exception("Scheduling server %s failed", spec.server_id)
            await self._fail(context, spec.server_id, f"scheduling failed: {exc}")
            return
        changes = ServerChanges(host=destination.host, expected_status=(ServerStatus.BUILDING,))
        if not await servers.update_server(context, spec.server_id, changes):
            LOG.info("Server %s is no longer building; not building it", spec.server_id)
            await self.release_allocation(context, spec.server_id)
            return
        try:
            await compute.build_and_run_instance(context, destination.host, instance)
        except MessageUndeliverable as exc:
            # The chosen host's queue does not exist (it registered but never consumed): the
            # build goes nowhere, so it fails here and gives its claim back.
            LOG.warning("Cannot build server %s on %s: %s", spec.server_id, destination.host, exc)
            await self.release_allocation(context, spec.server_id)
            await self._fail(context, spec.server_id, f"{destination.host} is not running: {exc}")

    async def _fail(self, context: RequestContext, server_id: str, fault: str) -> None:
        servers, _ = self._clients()
        changes = ServerChanges(
            status=ServerStatus.ERROR, fault=fault, expected_status=(ServerStatus.BUILDING,)
        )
        await servers.update_server(context, server_id, changes)

    async def release_allocation(self, context: RequestContext, server_id: str) -> None:
        """Give back what was claimed for ``server_id`` (it is gone, or its build failed)."""
        async with self._choosing, self.db.session() as session:
            await session.execute(
                sa.delete(allocations).where(allocations.c.server_id == server_id)
            )
