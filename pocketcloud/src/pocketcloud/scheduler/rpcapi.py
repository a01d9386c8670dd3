"""Client side of the scheduler service's RPC API (nova's ``scheduler/rpcapi.py``).

API version history:

* 1.0 - select_destinations, schedule_and_build_instance, release_allocation
"""

from __future__ import annotations

from pocketcloud.objects import Destination, InstanceSpec, RequestSpec, wire
from pocketcloud.rpc import make_client
from steward.context import RequestContext
from steward.rpc import Transport

__all__ = ["SchedulerAPI"]


class SchedulerAPI:
    """Asks the scheduler. ``version_cap``: the newest version its oldest instance speaks."""

    VERSION = "1.0"

    def __init__(
        self, transport: Transport, *, version_cap: str | None = None, timeout: float | None = None
    ) -> None:
        self.client = make_client(
            transport, "scheduler", "1.0", version_cap=version_cap, timeout=timeout
        )

    async def select_destinations(
        self, context: RequestContext, spec: RequestSpec
    ) -> list[Destination]:
        """Choose a host and claim its resources; raises NoValidHost."""
        result = await self.client.call(context, "select_destinations", spec=wire(spec))
        return [Destination.model_validate(item) for item in result]

    async def schedule_and_build_instance(
        self, context: RequestContext, spec: RequestSpec, instance: InstanceSpec
    ) -> None:
        """Cast: choose a host for a new server and have it built there."""
        await self.client.cast(
            context, "schedule_and_build_instance", spec=wire(spec), instance=wire(instance)
        )

    async def release_allocation(self, context: RequestContext, server_id: str) -> None:
        """Cast: give back what was claimed for a server."""
        await self.client.cast(context, "release_allocation", server_id=server_id)
