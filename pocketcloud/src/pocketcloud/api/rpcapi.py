"""Client side of the api service's RPC API: how other services report a server's changes.

The api service owns the servers' records (the user's view: status, host, address, fault); the
scheduler and compute services report what they did to it instead of writing the records
themselves.

API version history:

* 1.0 - update_server, server_deleted
"""

from __future__ import annotations

from pocketcloud.objects import ServerChanges, wire
from pocketcloud.rpc import make_client
from steward.context import RequestContext
from steward.rpc import Transport

__all__ = ["ServersAPI"]


class ServersAPI:
    """Reports server changes to the api service (any api host: they share the records)."""

    VERSION = "1.0"

    def __init__(
        self, transport: Transport, *, version_cap: str | None = None, timeout: float | None = None
    ) -> None:
        self.client = make_client(transport, "api", "1.0", version_cap=version_cap, timeout=timeout)

    async def update_server(
        self, context: RequestContext, server_id: str, changes: ServerChanges
    ) -> bool:
        """Apply ``changes`` to a server; return False if its status was not the expected one."""
        applied: bool = await self.client.call(
            context, "update_server", server_id=server_id, changes=wire(changes)
        )
        return applied

    async def server_deleted(self, context: RequestContext, server_id: str) -> None:
        """Cast: the server is gone from its host; its record may go too."""
        await self.client.cast(context, "server_deleted", server_id=server_id)
