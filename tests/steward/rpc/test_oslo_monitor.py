"""oslo.messaging's call monitor and ``prepare()`` against steward, on the real RabbitMQ.

Unmodified oslo.messaging (threading executor, global ``cfg.CONF``, as ``test_oslo_compat.py``)
and steward call each other with ``call_monitor_timeout=2`` (heartbeats every second, oslo's
smallest interval) and a much longer ``timeout``. The methods do not sleep: each waits until the
test has seen enough heartbeats go by for the call to outlive its monitor several times over.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from oslo_config import cfg

from steward.context import RequestContext
from steward.errors import MessagingTimeout
from steward.rpc import RPCClient, RPCServer, Target, get_transport, wire
from steward.rpc.replies import PendingCall
from steward.rpc.transports.base import IncomingMessage, Transport

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import oslo_messaging

GUARD = 30.0
MONITOR = 2  # oslo heartbeats every MONITOR / 2 s, and not at all under 1 s
BEATS = 3  # heartbeats a method outlives: 3 s against a 2 s monitor


@pytest.fixture
def topic() -> str:
    return f"monitor_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def oslo_transport(rabbit_url: str) -> AsyncIterator[Any]:
    transport = await asyncio.to_thread(
        oslo_messaging.get_rpc_transport,
        cfg.CONF,
        url=rabbit_url.replace("amqp://", "rabbit://", 1),
    )
    yield transport
    await asyncio.to_thread(transport.cleanup)


@pytest.fixture
async def transport(rabbit_url: str) -> AsyncIterator[Transport]:
    transport = get_transport(rabbit_url)
    yield transport
    await transport.close()


class Held:
    """A steward endpoint whose method returns when the test lets it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def work(self, context: RequestContext) -> str:
        async with asyncio.timeout(GUARD):
            await self.release.wait()
        return "worked"


class OsloHeld:
    """An oslo endpoint (run in oslo's executor threads) whose method returns when let."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def work(self, ctxt: dict[str, Any]) -> str:
        if not self.release.wait(GUARD):
            raise RuntimeError("never released")
        return "worked"


async def test_an_oslo_caller_with_a_monitor_outlives_it_on_a_steward_server(
    oslo_transport: Any,
    transport: Transport,
    topic: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = Held()
    heartbeats = 0
    send_reply = transport.send_reply

    async def counting(reply_to: str, body: bytes) -> None:
        nonlocal heartbeats
        if not wire.parse_reply(wire.decode(body)).ending:
            heartbeats += 1
            if heartbeats == BEATS:
                endpoint.release.set()
        await send_reply(reply_to, body)

    monkeypatch.setattr(transport, "send_reply", counting)
    async with RPCServer(transport, Target(topic, "h1"), [endpoint]):
        client = oslo_messaging.get_rpc_client(
            oslo_transport,
            oslo_messaging.Target(topic=topic),
            timeout=GUARD,
            call_monitor_timeout=MONITOR,
        )
        # Without heartbeats oslo raises MessagingTimeout after MONITOR seconds.
        assert await asyncio.to_thread(client.call, {}, "work") == "worked"
    assert heartbeats == BEATS


async def test_a_steward_caller_with_a_monitor_outlives_it_on_an_oslo_server(
    oslo_transport: Any,
    transport: Transport,
    topic: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = OsloHeld()
    server = oslo_messaging.get_rpc_server(
        oslo_transport, oslo_messaging.Target(topic=topic, server="o1"), [endpoint]
    )
    await asyncio.to_thread(server.start)
    calls: asyncio.Queue[PendingCall] = asyncio.Queue()
    expect = transport.replies.expect

    def watched(msg_id: str) -> PendingCall:
        call = expect(msg_id)
        calls.put_nowait(call)
        return call

    monkeypatch.setattr(transport.replies, "expect", watched)

    async def release_after_heartbeats() -> None:
        call = await calls.get()
        for _ in range(BEATS):
            await call.heartbeat.wait()
            call.heartbeat.clear()
        endpoint.release.set()

    try:
        client = RPCClient(transport, Target(topic), timeout=GUARD, call_monitor_timeout=MONITOR)
        async with asyncio.timeout(GUARD), asyncio.TaskGroup() as group:
            group.create_task(release_after_heartbeats())
            result = await client.call(RequestContext(), "work")
        assert result == "worked"
    finally:
        endpoint.release.set()
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.wait)


async def test_a_steward_call_that_a_server_swallows_fails_on_the_monitor(
    transport: Transport, topic: str
) -> None:
    async def swallow(message: IncomingMessage) -> None:
        """Take the request and never answer: a server that died with it."""

    await transport.listen(Target(topic, "h1"), swallow, prefetch=1)
    client = RPCClient(transport, Target(topic), timeout=GUARD, call_monitor_timeout=MONITOR)
    # The monitor's timeout fires, not the call's (GUARD, which would fail the guard first).
    async with asyncio.timeout(GUARD - 5):
        with pytest.raises(MessagingTimeout, match=r"call_monitor_timeout=2 s \(0 heartbeats"):
            await client.call(RequestContext(), "work")


def test_prepare_takes_oslos_arguments() -> None:
    oslo = inspect.signature(oslo_messaging.RPCClient.prepare).parameters
    ours = inspect.signature(RPCClient.prepare).parameters
    assert list(ours) == list(oslo)
    assert all(parameter.kind is parameter.KEYWORD_ONLY for parameter in list(ours.values())[1:])
