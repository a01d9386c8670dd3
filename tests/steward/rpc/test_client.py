from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiormq
import pytest

from steward.config import load_settings, set_settings
from steward.context import RequestContext, bind
from steward.errors import (
    InvalidTarget,
    InvalidTransportURL,
    MessageDeliveryFailure,
    MessageUndeliverable,
    MessagingTimeout,
    RPCVersionCapError,
)
from steward.rpc import RPCClient, RPCServer, SyncRPCClient, Target, get_transport
from steward.rpc.client import SEND_ATTEMPT_SECONDS
from steward.rpc.transports.base import IncomingMessage, Transport
from steward.rpc.transports.memory import MemoryTransport
from steward.rpc.transports.rabbit import RabbitTransport


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


# --- oslo's prepare() arguments, retry ------------------------------------------------------------


def test_prepare_changes_the_topic_and_keeps_oslos_options() -> None:
    client = RPCClient(
        MemoryTransport(), Target("compute", exchange="nova"), retry=3, call_monitor_timeout=5
    )
    prepared = client.prepare(topic="conductor", namespace="baseapi", transport_options={"x": 1})
    assert prepared.target == Target("conductor", exchange="nova", namespace="baseapi")
    assert (prepared.retry, prepared.call_monitor_timeout) == (3, 5)
    assert prepared.transport_options == {"x": 1}
    assert prepared.prepare(retry=0).retry == 0
    assert prepared.prepare(retry=-1).retry is None  # oslo: -1 is "for ever" too
    with pytest.raises(ValueError, match="`retry` must be None or -1"):
        client.prepare(retry=-2)


class FailingSends(MemoryTransport):
    """A memory transport whose first ``failures`` sends fail to hand the message over."""

    def __init__(self, url: str, failures: int) -> None:
        super().__init__(url)
        self.failures = failures
        self.attempts = 0

    async def send(
        self,
        target: Target,
        body: bytes,
        *,
        expiration: float | None = None,
        confirm: bool = True,
        call_id: str | None = None,
    ) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise MessageDeliveryFailure("the connection was lost")
        await super().send(target, body, expiration=expiration, confirm=confirm, call_id=call_id)


@pytest.fixture
def memory_url() -> str:
    return f"memory://retry-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def who(memory_url: str) -> AsyncIterator[RPCServer]:
    transport = MemoryTransport(memory_url)
    async with RPCServer(transport, Target("who", "h1"), [Who()]) as server:
        yield server
    await transport.close()


@pytest.mark.looptime  # the waits between attempts pass on the loop's virtual clock
@pytest.mark.parametrize(
    ("retry", "failures", "attempts", "delivered", "waited"),
    [
        pytest.param(0, 1, 1, False, 0, id="0-never"),
        pytest.param(2, 2, 3, True, 1 + 3, id="2-enough"),
        pytest.param(2, 3, 3, False, 1 + 3, id="2-too-few"),
        pytest.param(None, 5, 6, True, 1 + 3 + 5 + 7 + 9, id="none-for-ever"),
        pytest.param(-1, 1, 2, True, 1, id="minus-one-for-ever"),
    ],
)
async def test_retry_counts_sends_that_were_not_handed_over(
    who: RPCServer,
    memory_url: str,
    retry: int | None,
    failures: int,
    attempts: int,
    delivered: bool,
    waited: float,
) -> None:
    transport = FailingSends(memory_url, failures)
    loop = asyncio.get_running_loop()
    try:
        client = RPCClient(transport, Target("who", version="2.5"), retry=retry)
        start = loop.time()
        if delivered:
            await client.cast(RequestContext(), "whoami")
        else:
            with pytest.raises(MessageDeliveryFailure, match="the connection was lost"):
                await client.cast(RequestContext(), "whoami")
        # Waits as the rabbit transport reconnects: 1 s, then 2 s more per failed attempt.
        assert loop.time() - start == waited
        assert transport.attempts == attempts
    finally:
        await transport.close()


@pytest.mark.looptime
async def test_a_call_retries_its_request_too(who: RPCServer, memory_url: str) -> None:
    transport = FailingSends(memory_url, failures=1)
    try:
        client = RPCClient(transport, Target("who", version="2.5"), timeout=30)
        with pytest.raises(MessageDeliveryFailure):
            await client.prepare(retry=0).call(RequestContext(), "whoami")
        transport.failures = 1
        context = RequestContext(user_id="u")
        reply = await client.prepare(retry=1).call(context, "whoami")
        assert reply == {"request_id": context.request_id, "user_id": "u"}
    finally:
        await transport.close()


async def test_a_request_no_server_listens_for_is_never_retried(memory_url: str) -> None:
    transport = FailingSends(memory_url, failures=0)
    try:
        with pytest.raises(MessageUndeliverable):
            await RPCClient(transport, Target("nobody"), retry=None).cast(None, "x")
        assert transport.attempts == 1
    finally:
        await transport.close()


async def test_retry_on_rabbitmq_gives_up_on_a_refused_cast(
    rabbit_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"retry_{uuid.uuid4().hex[:12]}"
    settings = load_settings(
        overrides={"rabbit_retry_interval": "0.01", "rabbit_retry_backoff": "0"}
    )
    transport = get_transport(rabbit_url, settings=settings)
    assert isinstance(transport, RabbitTransport)
    connection = await aiormq.connect(rabbit_url)
    try:
        # A queue that refuses every message: the broker nacks the cast routed to it.
        channel = await connection.channel()
        await channel.exchange_declare("openstack", exchange_type="topic")
        await channel.queue_declare(
            f"{topic}.full",
            exclusive=True,
            arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
        )
        await channel.queue_bind(f"{topic}.full", "openstack", routing_key=f"{topic}.full")
        client = RPCClient(transport, Target(topic, "full"))
        with caplog.at_level(logging.WARNING, logger="steward.rpc.client"):
            with pytest.raises(MessageDeliveryFailure, match="refused"):
                await client.prepare(retry=0).cast(None, "x")
            assert "trying again" not in caplog.text
            with pytest.raises(MessageDeliveryFailure, match="refused"):
                await client.prepare(retry=2).cast(None, "x")
        assert caplog.text.count("trying again") == 2
        assert "(retry 2 of 2)" in caplog.text
    finally:
        await connection.close()
        await transport.close()


@pytest.mark.parametrize(
    "hosts",
    ["guest:guest@127.0.0.1:5672", "guest:guest@127.0.0.1:1,guest:guest@127.0.0.1:5672"],
    ids=["one-host", "first-host-down"],
)
async def test_a_client_takes_an_oslo_rabbit_url(rabbit_url: str, hosts: str) -> None:
    vhost = rabbit_url.rsplit("/", 1)[1]
    server_transport = get_transport(rabbit_url)
    client_transport = get_transport(f"rabbit://{hosts}/{vhost}")
    topic = f"url_{uuid.uuid4().hex[:12]}"
    try:
        assert isinstance(client_transport, RabbitTransport)
        assert "guest:***@127.0.0.1" in client_transport.url
        async with RPCServer(server_transport, Target(topic, "h1"), [Who()]):
            client = RPCClient(client_transport, Target(topic, version="2.5"), timeout=30)
            context = RequestContext(user_id="u1")
            reply = await client.call(context, "whoami")
        assert reply == {"request_id": context.request_id, "user_id": "u1"}
    finally:
        await client_transport.close()
        await server_transport.close()


class AwaySends(MemoryTransport):
    """A memory transport whose sends wait, as a broker transport waits for a broker away."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.attempts = 0

    async def send(
        self,
        target: Target,
        body: bytes,
        *,
        expiration: float | None = None,
        confirm: bool = True,
        call_id: str | None = None,
    ) -> None:
        self.attempts += 1
        await asyncio.Event().wait()


@pytest.mark.looptime  # the attempts' waits pass on the loop's virtual clock
async def test_a_counted_retry_does_not_wait_for_a_broker_that_is_away(memory_url: str) -> None:
    transport = AwaySends(memory_url)
    client = RPCClient(transport, Target("who"), retry=0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(MessageDeliveryFailure, match=r"within 10 s \(is the broker up\?\)"):
        async with asyncio.timeout(60):  # virtual: without the bound, the cast waits for ever
            await client.cast(RequestContext(), "x")
    assert transport.attempts == 1
    assert loop.time() - started == pytest.approx(SEND_ATTEMPT_SECONDS)  # virtual time
    with pytest.raises(MessageDeliveryFailure):
        await client.prepare(retry=2).cast(RequestContext(), "x")
    assert transport.attempts == 4
    await transport.aclose()
