from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from steward.config import load_settings, set_settings
from steward.context import RequestContext, bind
from steward.errors import InvalidTarget, InvalidTransportURL, MessagingTimeout, RPCVersionCapError
from steward.rpc import RPCClient, RPCServer, SyncRPCClient, Target, get_transport
from steward.rpc.transports.base import IncomingMessage, Transport
from steward.rpc.transports.memory import MemoryTransport


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    transport = get_transport("memory://")
    yield transport
    await transport.close()


class Who:
    target = Target(version="2.5")

    def whoami(self, context: RequestContext) -> dict[str, Any]:
        return {"request_id": context.request_id, "user_id": context.user_id}


@pytest.fixture
async def server(transport: Transport) -> AsyncIterator[RPCServer]:
    server = RPCServer(transport, Target("who", "h1"), [Who()])
    await server.start()
    yield server
    await server.stop()
    await server.wait()


def test_prepare_returns_a_new_client_and_keeps_the_original() -> None:
    client = RPCClient(MemoryTransport(), Target("compute", version="5.0"), timeout=3)
    prepared = client.prepare(server="h1", version="5.1", timeout=9)
    assert prepared.target == Target("compute", "h1", version="5.1")
    assert prepared.timeout == 9
    assert client.target == Target("compute", version="5.0")
    assert client.timeout == 3
    assert prepared.prepare(server=None).target.server is None


@pytest.mark.parametrize(
    ("cap", "version", "allowed"),
    [
        (None, "9.9", True),
        ("5.2", "5.0", True),
        ("5.2", "5.2", True),
        ("5.2", "5.3", False),
        ("5.2", "6.0", False),
        ("5.2", "4.0", False),
    ],
)
def test_can_send_version_follows_the_cap(cap: str | None, version: str, allowed: bool) -> None:
    client = RPCClient(MemoryTransport(), Target("compute", version="5.0"), version_cap=cap)
    assert client.can_send_version(version) is allowed
    assert client.prepare(version=version).can_send_version() is allowed


async def test_sending_above_the_cap_raises_before_sending(transport: Transport) -> None:
    client = RPCClient(transport, Target("who", version="2.5"), version_cap="2.4")
    with pytest.raises(RPCVersionCapError, match=r"version 2\.5 is above the version cap 2\.4"):
        await client.call(RequestContext(), "whoami")
    with pytest.raises(RPCVersionCapError):
        await client.cast(RequestContext(), "whoami")


async def test_a_target_without_topic_is_refused(transport: Transport) -> None:
    with pytest.raises(InvalidTarget, match="a topic is required"):
        await RPCClient(transport, Target()).cast(RequestContext(), "x")


async def test_context_defaults_to_the_current_one(transport: Transport, server: RPCServer) -> None:
    client = RPCClient(transport, Target("who", version="2.0"))
    context = RequestContext(user_id="alice")
    with bind(context):
        result = await client.call(None, "whoami")
    assert result == {"request_id": context.request_id, "user_id": "alice"}


@pytest.mark.looptime  # the 0.2 s timeout passes on the loop's virtual clock
async def test_a_client_given_settings_reads_its_defaults_there(transport: Transport) -> None:
    async def hold(message: IncomingMessage) -> None:
        """Take requests and never answer them."""

    await transport.listen(Target("silent", "h1"), hold, prefetch=1)
    own = load_settings(overrides={"rpc_response_timeout": "0.2"})  # the process's says 60
    client = RPCClient(transport, Target("silent"), settings=own)
    with pytest.raises(MessagingTimeout, match=r"after 0\.2 s"):
        await client.prepare(version="1.0").call(RequestContext(), "x")


@pytest.mark.looptime  # the 0.2 s timeout passes on the loop's virtual clock
async def test_timeout_defaults_to_the_transports_setting() -> None:
    async def hold(message: IncomingMessage) -> None:
        """Take requests and never answer them."""

    set_settings(load_settings(overrides={"rpc_response_timeout": "60"}))  # not read
    own = load_settings(overrides={"rpc_response_timeout": "0.2"})
    transport = get_transport("memory://", settings=own)
    await transport.listen(Target("silent", "h1"), hold, prefetch=1)
    client = RPCClient(transport, Target("silent"))
    assert client.settings is None  # read at call time: a reload of the transport's reaches it
    try:
        with pytest.raises(MessagingTimeout, match=r"after 0\.2 s"):
            await client.call(RequestContext(), "x")
    finally:
        await transport.close()


async def test_arguments_that_are_not_json_are_refused_by_name(transport: Transport) -> None:
    client = RPCClient(transport, Target("who"))
    with pytest.raises(TypeError, match=r"arguments of 'whoami' cannot be sent as JSON: object"):
        await client.cast(RequestContext(), "whoami", thing=object())


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="`timeout` must be a number of seconds > 0"):
        RPCClient(MemoryTransport(), Target("t"), timeout=0)
    with pytest.raises(InvalidTarget, match=r"'MAJOR\.MINOR'"):
        RPCClient(MemoryTransport(), Target("t"), version_cap="five")


def test_get_transport_lists_known_schemes_and_masks_the_url() -> None:
    with pytest.raises(InvalidTransportURL) as caught:
        get_transport("kafka://user:hunter2@127.0.0.1/")
    message = str(caught.value)
    assert "memory://" in message
    assert "amqp://" in message
    assert "hunter2" not in message
    assert isinstance(get_transport(), MemoryTransport)


class Caller:
    """A plain-def method (so: an executor thread) that calls another service."""

    def __init__(self, other: SyncRPCClient) -> None:
        self.other = other

    def relay(self, context: RequestContext) -> dict[str, Any]:
        result: dict[str, Any] = self.other.call(context, "whoami")
        return result


async def test_sync_facade_lets_thread_code_call_other_services(
    transport: Transport, server: RPCServer
) -> None:
    other = SyncRPCClient(RPCClient(transport, Target("who", version="2.0")))
    relay = RPCServer(transport, Target("relay", "h1"), [Caller(other)])
    await relay.start()
    try:
        context = RequestContext(user_id="bob")
        result = await RPCClient(transport, Target("relay")).call(context, "relay")
        assert result == {"request_id": context.request_id, "user_id": "bob"}
    finally:
        await relay.stop()
        await relay.wait()


async def test_sync_facade_refuses_to_block_the_loop(transport: Transport) -> None:
    facade = SyncRPCClient(RPCClient(transport, Target("who")))
    with pytest.raises(RuntimeError, match="cannot be used on the event loop's thread"):
        facade.cast(RequestContext(), "whoami")


@pytest.mark.parametrize(
    "url",
    ["amqp://guest:secret@127.0.0.1:1/", "nats://token-secret@127.0.0.1:1"],
    ids=["amqp", "nats"],
)
async def test_a_call_times_out_when_the_broker_cannot_be_reached(url: str) -> None:
    transport = get_transport(url)
    try:
        client = RPCClient(transport, Target("who"), timeout=0.5)
        # A guard, not a measure: without the fix the call waits for ever for a connection.
        async with asyncio.timeout(60):
            with pytest.raises(MessagingTimeout) as raised:
                await client.call(None, "whoami")
    finally:
        async with asyncio.timeout(60):
            await transport.close()
    message = str(raised.value)
    assert "127.0.0.1:1" in message
    assert "could not be reached" in message
    assert "secret" not in message
