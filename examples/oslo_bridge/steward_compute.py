"""The compute service, moved to steward: a manager, its scheduler client, its listener.

What moved, line for line, from an oslo.messaging service: the endpoint became a
:class:`steward.Manager` whose methods take a :class:`~steward.context.RequestContext` (read from
the oslo caller's ``_context_*`` keys) and typed arguments (checked before the method runs); the
``rpcapi`` client of the scheduler became an :class:`~steward.rpc.RPCClient`; the notifier is the
manager's own (``notification_driver = messaging`` writes oslo's ``messagingv2`` format); the
oslo.service periodic task became ``@steward.periodic_task`` with the same arguments; and the
notification endpoint kept its ``info(context, publisher_id, event_type, payload, metadata)``.
"""

from __future__ import annotations

from typing import Any

import steward
from examples.oslo_bridge.crossings import Crossings
from steward.context import RequestContext
from steward.rpc import RPCClient, Target, Transport

FROM_OSLO = "oslo -> steward"


class SchedulerAPI:
    """The scheduler's client (the scheduler is still an oslo service)."""

    def __init__(self, transport: Transport, topic: str) -> None:
        self.client = RPCClient(transport, Target(topic, version="1.0"), timeout=30)

    async def select_host(self, context: RequestContext, ram_mb: int) -> str:
        """Ask the scheduler for a host with ``ram_mb`` free."""
        host: str = await self.client.call(context, "select_host", ram_mb=ram_mb)
        return host


class ComputeManager(steward.Manager):
    """Boots instances on the host the scheduler picks."""

    target = Target(version="1.0")

    def __init__(
        self,
        host: str | None = None,
        *,
        scheduler: SchedulerAPI,
        crossings: Crossings,
        settings: steward.Settings | None = None,
    ) -> None:
        super().__init__(host, service_name="compute", settings=settings)
        self.scheduler = scheduler
        self.crossings = crossings
        self.instances: dict[str, dict[str, Any]] = {}

    async def boot_instance(
        self, context: RequestContext, instance_id: str, ram_mb: int
    ) -> dict[str, Any]:
        """Boot ``instance_id`` where the scheduler says (``async def``: runs on the loop)."""
        what = f"compute.boot_instance(instance_id={instance_id!r}, ram_mb={ram_mb})"
        self.crossings.add(FROM_OSLO, "call", what, context.request_id)
        try:
            host = await self.scheduler.select_host(context, ram_mb)
        except ValueError as exc:  # the oslo scheduler's ValueError, re-raised as one
            message = str(exc).splitlines()[0]  # then comes the remote traceback
            self.crossings.add(FROM_OSLO, "error", f"ValueError: {message}", context.request_id)
            raise  # and on to the oslo caller, as a ValueError again
        self.crossings.add(FROM_OSLO, "result", f"select_host -> {host!r}", context.request_id)
        instance = {"id": instance_id, "host": host, "ram_mb": ram_mb, "state": "ACTIVE"}
        self.instances[instance_id] = instance
        self.notifier.info(context, "compute.instance.create.end", instance)
        return instance

    def get_instance(self, context: RequestContext, instance_id: str) -> dict[str, Any]:
        """Return the instance (a plain ``def``: runs in the executor's threads, as under oslo)."""
        what = f"compute.get_instance(instance_id={instance_id!r})"
        self.crossings.add(FROM_OSLO, "call", what, context.request_id)
        return self.instances[instance_id]

    async def stop_instance(self, context: RequestContext, instance_id: str) -> None:
        """Stop the instance (the oslo side casts this)."""
        what = f"compute.stop_instance(instance_id={instance_id!r})"
        self.crossings.add(FROM_OSLO, "cast", what, context.request_id)
        self.instances[instance_id]["state"] = "SHUTOFF"
        self.notifier.info(context, "compute.instance.power_off.end", {"id": instance_id})

    @steward.periodic_task(spacing=60, run_immediately=True)
    async def _report_capacity(self, context: RequestContext) -> None:
        """Announce the instances this host runs (oslo.service's periodic task, moved).

        Private, as nova names its periodic tasks: a public method would be callable over RPC.
        """
        self.notifier.info(context, "compute.capacity", {"instances": len(self.instances)})


class SchedulerNotifications:
    """Hears what the scheduler (oslo) announces: the endpoint oslo's listener would have."""

    def __init__(self, crossings: Crossings) -> None:
        self.crossings = crossings

    async def info(
        self,
        context: RequestContext,
        publisher_id: str,
        event_type: str,
        payload: dict[str, Any],
        metadata: dict[str, Any],
    ) -> None:
        """Record an INFO notification."""
        what = f"{event_type} from {publisher_id}: {payload}"
        self.crossings.add(FROM_OSLO, "notification", what, context.request_id)
