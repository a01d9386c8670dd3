"""Two services, one calling the other across hosts by ``topic.server``.

``VolumeManager`` (topic ``volume``) owns volumes; ``ComputeManager`` (topic ``compute``) owns
instances and asks the volume service *on a given host* to create the volume it attaches, through
a small client class (``VolumeAPI``, nova's ``*rpcapi`` pattern).

In one process, on ``memory://`` and a SQLite registry::

    python -m examples.storage

As separate processes on RabbitMQ (each line in its own terminal)::

    export STEWARD_TRANSPORT_URL=amqp://guest:guest@127.0.0.1:5672/
    steward --set host=storage1 run examples.storage:VolumeManager --topic volume
    steward --set host=compute1 run examples.storage:ComputeManager --topic compute
    steward call compute attach_volume \
        --arg instance_id=vm-1 --arg size=10 --arg volume_host=storage1
    steward services list
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

import steward
from steward.context import RequestContext
from steward.db import Database
from steward.registry import Registry
from steward.rpc import RPCClient, Target, Transport, get_transport
from steward.service import Service

LOG = logging.getLogger("examples.storage")


class VolumeManager(steward.Manager):
    """Creates volumes on its host."""

    target = Target(version="1.1")

    def __init__(self, host: str | None = None) -> None:
        super().__init__(host, service_name="volume")
        self.volumes: dict[str, int] = {}

    async def create_volume(self, context: RequestContext, name: str, size: int) -> dict[str, Any]:
        """Create volume ``name`` of ``size`` GiB here."""
        self.volumes[name] = size
        LOG.info("[%s] volume %s: %d GiB on %s", context.request_id, name, size, self.host)
        return {"name": name, "size": size, "host": self.host}


class VolumeAPI:
    """The client side of the volume service's API, version 1.x."""

    def __init__(self, transport: Transport) -> None:
        self.client = RPCClient(transport, Target("volume", version="1.0"), timeout=30)

    async def create_volume(
        self, context: RequestContext, host: str, name: str, size: int
    ) -> dict[str, Any]:
        """Ask the volume service on ``host`` (topic ``volume.<host>``) for a volume."""
        result: dict[str, Any] = await self.client.prepare(server=host).call(
            context, "create_volume", name=name, size=size
        )
        return result


class ComputeManager(steward.Manager):
    """Runs instances; attaches volumes made by a chosen volume host."""

    def __init__(self, host: str | None = None) -> None:
        super().__init__(host, service_name="compute")
        self.transport: Transport | None = None
        self.volume_api: VolumeAPI | None = None
        self.attachments: dict[str, list[dict[str, Any]]] = {}

    async def init_host(self, service_ref: object | None) -> None:
        """Open the client to the volume service."""
        self.transport = get_transport()
        self.volume_api = VolumeAPI(self.transport)

    async def attach_volume(
        self, context: RequestContext, instance_id: str, size: int, volume_host: str
    ) -> dict[str, Any]:
        """Create a volume on ``volume_host`` and attach it to ``instance_id``."""
        if self.volume_api is None:
            raise RuntimeError("ComputeManager.init_host() has not run")
        name = f"{instance_id}-disk{len(self.attachments.get(instance_id, [])) + 1}"
        volume = await self.volume_api.create_volume(context, volume_host, name, size)
        self.attachments.setdefault(instance_id, []).append(volume)
        return {"instance_id": instance_id, "volume": volume, "compute_host": self.host}

    async def cleanup_host(self) -> None:
        """Close the client's transport."""
        if self.transport is not None:
            await self.transport.close()


async def main(workdir: Path | None = None) -> list[dict[str, Any]]:
    """Start two volume hosts and a compute host in this process and attach volumes."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="steward-storage-"))
    settings = steward.load_settings(
        overrides={
            "database_url": f"sqlite+aiosqlite:///{workdir / 'registry.db'}",
            "periodic_fuzzy_delay": "0",
        }
    )
    steward.config.set_settings(settings)
    transport = get_transport(settings=settings)
    async with Database.from_settings(settings) as db:
        await db.ensure_schema()
        registry = Registry(db, settings=settings)
        managers = [
            ("volume", VolumeManager("storage1")),
            ("volume", VolumeManager("storage2")),
            ("compute", ComputeManager("compute1")),
        ]
        services = [
            Service(manager, topic=topic, transport=transport, registry=registry)
            for topic, manager in managers
        ]
        for service in services:
            await service.start()
        try:
            compute = RPCClient(transport, Target("compute"), timeout=30)
            context = steward.get_admin_context()
            results = [
                await compute.call(
                    context, "attach_volume", instance_id="vm-1", size=size, volume_host=host
                )
                for host, size in (("storage1", 10), ("storage2", 20), ("storage2", 5))
            ]
            for status in await registry.list_services():
                LOG.info(
                    "registry: %s on %s is %s",
                    status.record.binary,
                    status.record.host,
                    "up" if status.up else "down",
                )
        finally:
            for service in reversed(services):
                await service.stop()
            await transport.close()
    for result in results:
        LOG.info("attached %s", result)
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main())
