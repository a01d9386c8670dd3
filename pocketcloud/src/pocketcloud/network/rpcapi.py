"""Client side of the network service's RPC API (nova's ``network/rpcapi.py``).

API version history:

* 1.0 - create_network, list_networks, get_network, list_fixed_ips, allocate_for_instance,
  deallocate_for_instance
"""

from __future__ import annotations

from pocketcloud.objects import NetworkInfo, NetworkRecord
from pocketcloud.rpc import make_client
from steward.context import RequestContext
from steward.rpc import Transport

__all__ = ["NetworkAPI"]


class NetworkAPI:
    """Asks the network service; any network host answers (they share the tables).

    ``version_cap`` is the newest version the oldest network service understands (None: no cap).
    """

    VERSION = "1.0"

    def __init__(
        self, transport: Transport, *, version_cap: str | None = None, timeout: float | None = None
    ) -> None:
        self.client = make_client(
            transport, "network", "1.0", version_cap=version_cap, timeout=timeout
        )

    async def create_network(
        self, context: RequestContext, name: str, cidr: str, vlan: int | None = None
    ) -> NetworkRecord:
        """Create a network; raises InvalidInput or NetworkConflict."""
        result = await self.client.call(context, "create_network", name=name, cidr=cidr, vlan=vlan)
        return NetworkRecord.model_validate(result)

    async def list_networks(self, context: RequestContext) -> list[NetworkRecord]:
        """Return every network."""
        result = await self.client.call(context, "list_networks")
        return [NetworkRecord.model_validate(item) for item in result]

    async def get_network(self, context: RequestContext, network_id: str) -> NetworkRecord:
        """Return one network; raises NetworkNotFound."""
        result = await self.client.call(context, "get_network", network_id=network_id)
        return NetworkRecord.model_validate(result)

    async def list_fixed_ips(
        self, context: RequestContext, network_id: str
    ) -> list[dict[str, str]]:
        """Return the addresses allocated on a network."""
        result: list[dict[str, str]] = await self.client.call(
            context, "list_fixed_ips", network_id=network_id
        )
        return result

    async def allocate_for_instance(
        self, context: RequestContext, server_id: str, network_id: str, host: str
    ) -> NetworkInfo:
        """Give a server a fixed IP on a network; raises NetworkNotFound, NoMoreAddresses."""
        result = await self.client.call(
            context,
            "allocate_for_instance",
            server_id=server_id,
            network_id=network_id,
            host=host,
        )
        return NetworkInfo.model_validate(result)

    async def deallocate_for_instance(self, context: RequestContext, server_id: str) -> None:
        """Release a server's fixed IPs, and wait until they are released."""
        await self.client.call(context, "deallocate_for_instance", server_id=server_id)
