"""The scheduler, still an oslo.messaging service: plain oslo code, as a nova-era service has it.

Nothing here knows of steward: a global ``cfg.CONF``, oslo transports made from a ``rabbit://``
URL, an RPC server (oslo's default threading executor) whose endpoint takes the context as a
dict, a ``Notifier`` with the ``messagingv2`` driver, a notification listener, and the compute
service's client written the way ``nova/compute/rpcapi.py`` writes it. In a deployment this
runs in a process of its own; the example runs it in threads beside the steward service.
"""

from __future__ import annotations

import warnings
from typing import Any

from oslo_config import cfg
from oslo_context import context as oslo_context

from examples.oslo_bridge.crossings import Crossings

with warnings.catch_warnings():
    # oslo.messaging imports oslo.service's eventlet backend, which announces its deprecation.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import oslo_messaging

FROM_STEWARD = "steward -> oslo"


class SchedulerEndpoint:
    """Picks a host with enough free RAM, and says so in a notification."""

    target = oslo_messaging.Target(version="1.0")

    def __init__(self, notifier: Any, crossings: Crossings) -> None:  # noqa: ANN401 - oslo's
        self.notifier = notifier
        self.crossings = crossings
        self.free_ram_mb = {"node-a": 2048, "node-b": 4096}

    # The caller's problem, not the scheduler's: oslo logs it without a traceback. (oslo has no
    # type hints, hence the ignore.)
    @oslo_messaging.expected_exceptions(ValueError)  # type: ignore[untyped-decorator]
    def select_host(self, ctxt: dict[str, Any], ram_mb: int) -> str:
        """Return the host with the most free RAM; ``ValueError`` when none has ``ram_mb``."""
        context = oslo_context.RequestContext.from_dict(ctxt)
        self.crossings.add(
            FROM_STEWARD, "call", f"scheduler.select_host(ram_mb={ram_mb})", context.request_id
        )
        host = max(self.free_ram_mb, key=self.free_ram_mb.__getitem__)
        if self.free_ram_mb[host] < ram_mb:
            raise ValueError(f"no host has {ram_mb} MB free")
        self.free_ram_mb[host] -= ram_mb
        self.notifier.info(context, "scheduler.select_host.end", {"host": host, "ram_mb": ram_mb})
        return host


class ComputeNotifications:
    """Hears what the compute service (steward now) announces."""

    def __init__(self, crossings: Crossings) -> None:
        self.crossings = crossings

    def info(
        self,
        ctxt: dict[str, Any],
        publisher_id: str,
        event_type: str,
        payload: dict[str, Any],
        metadata: dict[str, Any],
    ) -> None:
        """Record an INFO notification."""
        context = oslo_context.RequestContext.from_dict(ctxt)
        what = f"{event_type} from {publisher_id}: {payload}"
        self.crossings.add(FROM_STEWARD, "notification", what, context.request_id)


class ComputeAPI:
    """The compute service's client, as the oslo services have it (nova's ``rpcapi`` style)."""

    def __init__(self, transport: Any, topic: str) -> None:  # noqa: ANN401 - oslo's transport
        target = oslo_messaging.Target(topic=topic, version="1.0")
        self.client = oslo_messaging.get_rpc_client(transport, target)

    def boot_instance(self, ctxt: Any, instance_id: str, ram_mb: int) -> dict[str, Any]:  # noqa: ANN401
        """Boot ``instance_id`` somewhere; blocks until compute answers."""
        cctxt = self.client.prepare(timeout=30)
        result: dict[str, Any] = cctxt.call(
            ctxt, "boot_instance", instance_id=instance_id, ram_mb=ram_mb
        )
        return result

    def get_instance(self, ctxt: Any, instance_id: str) -> dict[str, Any]:  # noqa: ANN401
        """Return what compute knows of ``instance_id``."""
        result: dict[str, Any] = self.client.prepare(timeout=30).call(
            ctxt, "get_instance", instance_id=instance_id
        )
        return result

    def stop_instance(self, ctxt: Any, instance_id: str) -> None:  # noqa: ANN401
        """Ask compute to stop ``instance_id``; returns at once (a cast)."""
        self.client.cast(ctxt, "stop_instance", instance_id=instance_id)


class OsloScheduler:
    """The oslo side: its RPC server on ``topic``, its notifier, a listener and a compute client.

    ``start()`` and ``stop()`` block (oslo's API): call them in a thread from asyncio code.
    """

    def __init__(
        self,
        url: str,
        *,
        topic: str,
        compute_topic: str,
        notification_topic: str,
        compute_notification_topic: str,
        crossings: Crossings,
    ) -> None:
        oslo_url = url.replace("amqp://", "rabbit://", 1)  # oslo's scheme for RabbitMQ
        self.transport = oslo_messaging.get_rpc_transport(cfg.CONF, url=oslo_url)
        self.notification_transport = oslo_messaging.get_notification_transport(
            cfg.CONF, url=oslo_url
        )
        notifier = oslo_messaging.Notifier(
            self.notification_transport,
            publisher_id="scheduler.node-s",
            driver="messagingv2",
            topics=[notification_topic],
        )
        self.server = oslo_messaging.get_rpc_server(
            self.transport,
            oslo_messaging.Target(topic=topic, server="node-s"),
            [SchedulerEndpoint(notifier, crossings)],
        )
        self.listener = oslo_messaging.get_notification_listener(
            self.notification_transport,
            [oslo_messaging.Target(topic=compute_notification_topic)],
            [ComputeNotifications(crossings)],
        )
        self.compute = ComputeAPI(self.transport, compute_topic)

    def start(self) -> None:
        """Start serving and listening."""
        self.server.start()
        self.listener.start()

    def stop(self) -> None:
        """Stop, wait for the work in progress, close the transports."""
        self.server.stop()
        self.listener.stop()
        self.server.wait()
        self.listener.wait()
        self.transport.cleanup()
        self.notification_transport.cleanup()


def new_context(**fields: Any) -> Any:  # noqa: ANN401 - oslo.context's RequestContext
    """An oslo.context request context, as an oslo API service makes one per request."""
    return oslo_context.RequestContext(**fields)
