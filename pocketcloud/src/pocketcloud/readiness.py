"""Waiting until pocketcloud's services consume their queues: a ping each, not the registry.

``pocketcloud up`` says it is ready (and starts the demo) only once every service it started has
answered a ``ping`` (steward's base RPC API, namespace ``baseapi``) on its own queue,
``<topic>.<host>``. The registry cannot tell: a previous run's records stay "up" for
``service_down_time`` after it stopped, and on RabbitMQ its queues stay too, so a request sent in
between is queued where nobody consumes it, and its caller waits for nothing.
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Sequence

from steward.context import RequestContext
from steward.errors import MessagingError
from steward.rpc import RPCClient, Target

if typing.TYPE_CHECKING:
    from steward.rpc import Transport

__all__ = ["PING_TIMEOUT", "RETRY_INTERVAL", "ServiceAddress", "wait_until_consuming"]

LOG = logging.getLogger(__name__)

PING_TIMEOUT = 2.0
"""Seconds one ping waits for its answer before it is sent again."""
RETRY_INTERVAL = 0.2
"""Seconds between a ping that failed at once (no queue yet) and the next."""

ServiceAddress = tuple[str, str]
"""A service's ``(topic, host)``: its own queue is ``topic.host``."""


async def wait_until_consuming(
    transport: Transport,
    services: Sequence[ServiceAddress],
    *,
    pending: set[ServiceAddress] | None = None,
) -> None:
    """Return once every one of ``services`` has answered a ping on its own queue.

    It waits for as long as the caller's ``asyncio.timeout`` scope allows; ``pending``, when
    given, is kept up to date with the services that have not answered yet, so that a caller
    giving up can name them.
    """
    waiting = pending if pending is not None else set()
    waiting.update(services)
    async with asyncio.TaskGroup() as pings:
        for address in services:
            pings.create_task(_ping_until_answered(transport, address, waiting))


async def _ping_until_answered(
    transport: Transport, address: ServiceAddress, waiting: set[ServiceAddress]
) -> None:
    topic, host = address
    target = Target(topic=topic, server=host, namespace="baseapi", version="1.1")
    client = RPCClient(transport, target, timeout=PING_TIMEOUT)
    context = RequestContext()
    while True:
        try:
            await client.call(context, "ping", arg=None)
        except MessagingError as exc:
            # No queue yet (the service has not started), or a queue of a previous run that
            # nobody consumes yet: ask again.
            LOG.debug("%s.%s does not answer yet: %s", topic, host, exc or type(exc).__name__)
            await asyncio.sleep(RETRY_INTERVAL)
            continue
        waiting.discard(address)
        LOG.debug("%s.%s consumes its queue", topic, host)
        return
