"""Run the oslo scheduler and the steward compute service on one broker, and drive them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiormq

import steward
from examples.oslo_bridge.crossings import Crossing, Crossings
from examples.oslo_bridge.oslo_scheduler import FROM_STEWARD, OsloScheduler, new_context
from examples.oslo_bridge.steward_compute import (
    FROM_OSLO,
    ComputeManager,
    SchedulerAPI,
    SchedulerNotifications,
)
from steward.db import Database
from steward.notify import NotificationListener
from steward.redact import mask_url
from steward.registry import Registry
from steward.rpc import Target, get_transport
from steward.service import Service

LOG = logging.getLogger("examples.oslo_bridge")

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
WAIT = 30.0  # seconds to wait for what is still on its way (notifications, a cast)

# (route, kind, start of what) of every crossing the run must see before it ends.
EXPECTED = [
    (FROM_OSLO, "call", "compute.boot_instance(instance_id='vm-1'"),
    (FROM_STEWARD, "call", "scheduler.select_host(ram_mb=512)"),
    (FROM_OSLO, "result", "select_host -> "),
    (FROM_OSLO, "notification", "scheduler.select_host.end"),
    (FROM_STEWARD, "notification", "compute.instance.create.end"),
    (FROM_STEWARD, "result", "boot_instance -> "),
    (FROM_OSLO, "call", "compute.get_instance(instance_id='vm-1')"),
    (FROM_STEWARD, "result", "get_instance -> "),
    (FROM_OSLO, "call", "compute.boot_instance(instance_id='vm-2'"),
    (FROM_STEWARD, "call", "scheduler.select_host(ram_mb=65536)"),
    (FROM_OSLO, "error", "ValueError: no host has 65536 MB free"),
    (FROM_STEWARD, "error", "ValueError: no host has 65536 MB free"),
    (FROM_OSLO, "cast", "compute.stop_instance(instance_id='vm-1')"),
    (FROM_STEWARD, "notification", "compute.instance.power_off.end"),
    (FROM_STEWARD, "notification", "compute.capacity"),
]


class Names:
    """The run's topics: suffixed with a run id, so that runs on one vhost never share a queue."""

    def __init__(self, run_id: str) -> None:
        self.compute = f"compute-{run_id}"
        self.scheduler = f"scheduler-{run_id}"
        self.compute_notifications = f"notifications-{run_id}"
        self.scheduler_notifications = f"scheduler-notifications-{run_id}"

    def queues(self) -> Iterator[str]:
        """The queues the run leaves behind (oslo's topic queues are not auto-deleted)."""
        yield from (self.compute, f"{self.compute}.compute-1")
        yield from (self.scheduler, f"{self.scheduler}.node-s")
        yield from (f"{self.compute_notifications}.info", f"{self.scheduler_notifications}.info")


async def drive(oslo: OsloScheduler, crossings: Crossings) -> None:
    """What the oslo side asks of compute: a boot, a look, a boot that fails, a stop."""
    context = new_context(user_id="demo", project_id="demo-project", roles=["member"])
    booted = await asyncio.to_thread(oslo.compute.boot_instance, context, "vm-1", 512)
    crossings.add(FROM_STEWARD, "result", f"boot_instance -> {booted}", context.request_id)
    found = await asyncio.to_thread(oslo.compute.get_instance, context, "vm-1")
    crossings.add(FROM_STEWARD, "result", f"get_instance -> {found}", context.request_id)
    try:
        await asyncio.to_thread(oslo.compute.boot_instance, context, "vm-2", 65536)
    except ValueError as exc:  # a builtin exception crosses as itself
        message = str(exc).splitlines()[0]  # oslo appends the remote traceback
        crossings.add(FROM_STEWARD, "error", f"ValueError: {message}", context.request_id)
    await asyncio.to_thread(oslo.compute.stop_instance, context, "vm-1")


async def main(url: str = DEFAULT_URL, *, echo: bool = False, keep: bool = False) -> list[Crossing]:
    """Run both services on ``url``, drive them, and return what crossed (in order seen).

    ``echo`` prints each crossing as it is seen; ``keep`` leaves the run's queues on the broker.
    """
    run_id = uuid.uuid4().hex[:6]
    names = Names(run_id)
    crossings = Crossings(echo=echo)
    if echo:
        print(f"oslo.messaging and steward on {mask_url(url)}, run {run_id}:", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="steward-oslo-bridge-"))
    settings = steward.load_settings(
        overrides={
            "transport_url": url,
            "host": "compute-1",
            "database_url": f"sqlite+aiosqlite:///{workdir / 'registry.db'}",
            "notification_driver": "messaging",
            "notification_topics": [names.compute_notifications],
            "periodic_fuzzy_delay": 0,
        }
    )
    oslo = await asyncio.to_thread(
        OsloScheduler,
        url,
        topic=names.scheduler,
        compute_topic=names.compute,
        notification_topic=names.scheduler_notifications,
        compute_notification_topic=names.compute_notifications,
        crossings=crossings,
    )
    await asyncio.to_thread(oslo.start)
    try:
        async with (
            get_transport(settings=settings) as transport,
            Database.from_settings(settings) as db,
        ):
            await db.ensure_schema()
            manager = ComputeManager(
                scheduler=SchedulerAPI(transport, names.scheduler),
                crossings=crossings,
                settings=settings,
            )
            service = Service(
                manager, topic=names.compute, transport=transport, registry=Registry(db)
            )
            listener = NotificationListener(
                transport,
                [Target(names.scheduler_notifications)],
                [SchedulerNotifications(crossings)],
            )
            async with service, listener:
                await drive(oslo, crossings)
                async with asyncio.timeout(WAIT):
                    await crossings.wait_until(
                        lambda: all(crossings.seen(*expected) for expected in EXPECTED)
                    )
    finally:
        await asyncio.to_thread(oslo.stop)
        if not keep:
            await delete_queues(url, names.queues())
    return list(crossings.items)


async def delete_queues(url: str, queues: Iterator[str]) -> None:
    """Delete the run's queues: oslo's defaults declare topic queues that outlive their servers."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        for queue in queues:
            with contextlib.suppress(aiormq.AMQPError):
                await channel.queue_delete(queue)
    finally:
        await connection.close()
