"""The amqp:// transport on the machine's RabbitMQ: oslo's topology and properties, delivery,
confirms, sizes, reconnection. What every transport must do is in test_conformance.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import aiormq
import orjson
import pytest
from aiormq.abc import DeliveredMessage

from steward.config import Settings, load_settings
from steward.context import RequestContext
from steward.errors import (
    MessageDeliveryFailure,
    MessageTooLarge,
    MessageUndeliverable,
    MessagingTimeout,
    TransportClosed,
)
from steward.rpc import RPCClient, RPCServer, Target, wire
from steward.rpc.transports import get_transport
from steward.rpc.transports._rabbit_connection import backoff, broker_urls
from steward.rpc.transports.base import IncomingMessage
from steward.rpc.transports.rabbit import RabbitTransport

GUARD = 30.0  # generous bound on waits that should end at once; never a timing assertion
HEX32 = r"[0-9a-f]{32}"
RabbitCtl = Callable[..., str]


# --- helpers ----------------------------------------------------------------------------------


def vhost_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def listed(rabbitmqctl: RabbitCtl, what: str, vhost: str, *columns: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = orjson.loads(
        rabbitmqctl(what, "-p", vhost, *columns, "--formatter", "json")
    )
    return rows


def properties_of(message: DeliveredMessage) -> dict[str, object]:
    """Every AMQP basic property of a delivered message (None: absent)."""
    props = message.header.properties
    names = (
        "content_type",
        "content_encoding",
        "headers",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "message_type",
        "user_id",
        "app_id",
    )  # and cluster_id, deprecated: pamqp reads it as "" whether sent or not
    return {name: getattr(props, name) for name in names}


def oslo_properties(**changes: object) -> dict[str, object]:
    """The properties oslo.messaging 18 sends (oslo-wire.md §7), no expiration."""
    absent = ("correlation_id", "reply_to", "expiration", "message_id", "timestamp")
    expected: dict[str, object] = dict.fromkeys((*absent, "message_type", "user_id", "app_id"))
    expected.update(
        content_type="application/json",
        content_encoding="utf-8",
        headers={},
        delivery_mode=2,
        priority=0,
    )
    expected.update(changes)
    return expected


def unwrap(body: bytes) -> dict[str, Any]:
    """The inner dict of an oslo 2.0 envelope, checking the envelope's exact shape."""
    outer = orjson.loads(body)
    assert list(outer) == ["oslo.version", "oslo.message"]
    assert outer["oslo.version"] == "2.0"
    assert isinstance(outer["oslo.message"], str)  # double-encoded, as oslo's
    inner: dict[str, Any] = orjson.loads(outer["oslo.message"])
    return inner


class Raw:
    """A plain AMQP client on the test vhost: what any other program on the broker sees."""

    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self.channel = channel

    async def tap(
        self, exchange: str, routing_key: str, *, exchange_type: str = "topic"
    ) -> asyncio.Queue[DeliveredMessage]:
        """Bind a queue of our own to ``exchange`` and collect what arrives (acked at once)."""
        auto_delete = exchange_type == "fanout"  # oslo's flags, so the declarations agree
        await self.channel.exchange_declare(
            exchange, exchange_type=exchange_type, auto_delete=auto_delete
        )
        declared = await self.channel.queue_declare("", exclusive=True)
        assert declared.queue is not None
        await self.channel.queue_bind(declared.queue, exchange, routing_key=routing_key)
        return await self.collect(declared.queue)

    async def reply_queue(self) -> tuple[str, asyncio.Queue[DeliveredMessage]]:
        declared = await self.channel.queue_declare("", exclusive=True)
        assert declared.queue is not None
        return declared.queue, await self.collect(declared.queue)

    async def collect(self, queue: str) -> asyncio.Queue[DeliveredMessage]:
        messages: asyncio.Queue[DeliveredMessage] = asyncio.Queue()

        async def on_message(message: DeliveredMessage) -> None:
            messages.put_nowait(message)

        await self.channel.basic_consume(queue, on_message, no_ack=True)
        return messages

    async def ready_count(self, queue: str) -> int:
        """Messages ready in ``queue`` (delivered-but-unacknowledged ones are not counted)."""
        declared = await self.channel.queue_declare(queue, passive=True)
        return int(declared.message_count or 0)


async def next_message(messages: asyncio.Queue[DeliveredMessage]) -> DeliveredMessage:
    async with asyncio.timeout(GUARD):
        return await messages.get()


class Collector:
    """A listener's handler that keeps each delivery unsettled until the test settles it."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[IncomingMessage] = asyncio.Queue()

    async def __call__(self, message: IncomingMessage) -> None:
        self.messages.put_nowait(message)

    async def next(self) -> IncomingMessage:
        async with asyncio.timeout(GUARD):
            return await self.messages.get()


class Notes:
    """An endpoint whose casts and calls the tests wait on."""

    def __init__(self) -> None:
        self.notes: asyncio.Queue[object] = asyncio.Queue()

    async def note(self, context: RequestContext, value: object = None) -> None:
        self.notes.put_nowait(value)

    async def echo(self, context: RequestContext, value: object = None) -> object:
        return value

    async def next(self) -> object:
        async with asyncio.timeout(GUARD):
            return await self.notes.get()


def settings(**overrides: object) -> Settings:
    return load_settings(overrides=overrides)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def topic() -> str:
    return f"rabbit_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_transport(rabbit_url: str) -> AsyncIterator[Callable[..., RabbitTransport]]:
    made: list[RabbitTransport] = []

    def make(url: str | None = None, **overrides: object) -> RabbitTransport:
        transport = get_transport(url or rabbit_url, settings=settings(**overrides))
        assert isinstance(transport, RabbitTransport)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.close()


@pytest.fixture
async def transport(make_transport: Callable[..., RabbitTransport]) -> RabbitTransport:
    return make_transport()


@pytest.fixture
async def raw(rabbit_url: str) -> AsyncIterator[Raw]:
    connection = await aiormq.connect(rabbit_url)
    try:
        yield Raw(await connection.channel())
    finally:
        await connection.close()


Serve = Callable[..., Awaitable[tuple[RPCServer, Notes]]]


@pytest.fixture
async def serve(transport: RabbitTransport, topic: str) -> AsyncIterator[Serve]:
    servers: list[RPCServer] = []

    async def start(
        name: str = "h1", *, on: RabbitTransport | None = None
    ) -> tuple[RPCServer, Notes]:
        endpoint = Notes()
        server = RPCServer(on or transport, Target(topic, name), [endpoint])
        await server.start()
        servers.append(server)
        return server, endpoint

    yield start
    for server in servers:
        await server.stop()
        await server.wait(grace_period=5)


@pytest.fixture
def context() -> RequestContext:
    return RequestContext(
        user_id="u1", project_id="p1", roles=["admin"], is_admin=True, auth_token="tok"
    )


# --- URLs and settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "amqp://guest:guest@127.0.0.1:5672/",
            ["amqp://guest:guest@127.0.0.1:5672/?heartbeat=60"],
            id="default-vhost",
        ),
        pytest.param("rabbit://", ["amqp://localhost:5672/?heartbeat=60"], id="oslo-default"),
        pytest.param(
            "amqp://u:p%40ss@h1:5673,v:q@h2/nova%2Fcells",
            [
                "amqp://u:p%40ss@h1:5673/nova/cells?heartbeat=60",
                "amqp://v:q@h2:5672/nova/cells?heartbeat=60",
            ],
            id="several-hosts-in-order",
        ),
        pytest.param(
            "amqps://u:p@h1/%2F", ["amqps://u:p@h1:5671/?heartbeat=60"], id="tls-root-vhost"
        ),
        pytest.param(
            "rabbit://u:p@h1:5671/v?ssl=1", ["amqps://u:p@h1:5671/v?heartbeat=60"], id="oslo-ssl"
        ),
    ],
)
def test_broker_urls_follow_oslo_transport_urls(url: str, expected: list[str]) -> None:
    assert [str(each) for each in broker_urls(url, heartbeat=60)] == expected


def test_broker_url_path_is_the_url_decoded_vhost() -> None:
    # aiormq takes the vhost from the path after its first "/", and "/" alone for "/".
    (url,) = broker_urls("amqp://h/nova%2Fcells%20one", heartbeat=0)
    assert url.path == "/nova/cells one"
    (root,) = broker_urls("amqp://h/%2F", heartbeat=0)
    assert root.path == "/"


def test_reconnection_backoff_is_olsos_linear_step_with_a_cap() -> None:
    delays = [backoff(n, interval=1.0, step=2.0, maximum=30.0) for n in range(18)]
    assert delays[:5] == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert delays[-1] == 30.0


def test_url_masks_the_password(make_transport: Callable[..., RabbitTransport]) -> None:
    transport = make_transport("amqp://alice:s3cret@h1:5672,bob:hunter2@h2/")
    assert transport.url == "amqp://alice:***@h1:5672,bob:***@h2/"
    assert "s3cret" not in repr(transport)


def test_settings_have_oslo_rabbit_options_and_defaults() -> None:
    defaults = Settings()
    assert (
        defaults.rabbit.durable_queues,
        defaults.rabbit.auto_delete,
        defaults.rabbit.quorum_queue,
        defaults.rabbit.transient_queues_ttl,
        defaults.rabbit.qos_prefetch_count,
        defaults.rabbit.heartbeat_timeout_threshold,
        defaults.rabbit.retry_interval,
        defaults.rabbit.retry_backoff,
        defaults.rabbit.interval_max,
    ) == (False, False, False, 1800, 0, 60, 1.0, 2.0, 30.0)


# --- topology ---------------------------------------------------------------------------------


async def test_server_and_reply_topology_match_oslo(
    transport: RabbitTransport, topic: str, rabbit_url: str, rabbitmqctl: RabbitCtl
) -> None:
    listener = await transport.listen(Target(topic, "host1"), Collector(), prefetch=4)
    reply_queue = (await transport.listen_replies(lambda body: None)).address
    vhost = vhost_of(rabbit_url)
    columns = ("name", "durable", "auto_delete", "exclusive", "arguments", "consumers")
    queues = {
        row.pop("name"): row
        for row in listed(rabbitmqctl, "list_queues", vhost, *columns)
        if row["name"].startswith(topic) or row["name"] == reply_queue
    }
    fanout = next(name for name in queues if name.startswith(f"{topic}_fanout_"))
    assert re.fullmatch(f"{topic}_fanout_{HEX32}", fanout)
    assert re.fullmatch(f"reply_{HEX32}", reply_queue)
    plain = {"durable": False, "auto_delete": False, "exclusive": False, "consumers": 1}
    expires = [["x-expires", "signedint", 1800000]]
    assert queues == {
        topic: {**plain, "arguments": []},
        f"{topic}.host1": {**plain, "arguments": []},
        fanout: {**plain, "arguments": expires},
        reply_queue: {**plain, "arguments": expires},
    }
    exchanges = {
        row.pop("name"): row
        for row in listed(
            rabbitmqctl, "list_exchanges", vhost, "name", "type", "durable", "auto_delete"
        )
        if row["name"] in {"openstack", f"{topic}_fanout"}
    }
    assert exchanges == {
        "openstack": {"type": "topic", "durable": False, "auto_delete": False},
        f"{topic}_fanout": {"type": "fanout", "durable": False, "auto_delete": True},
    }
    bindings = {
        (row["source_name"], row["destination_name"], row["routing_key"])
        for row in listed(
            rabbitmqctl, "list_bindings", vhost, "source_name", "destination_name", "routing_key"
        )
        if row["destination_name"] in queues
    }
    implicit = {("", name, name) for name in queues}  # the default exchange binds every queue
    assert bindings - implicit == {
        ("openstack", topic, topic),
        ("openstack", f"{topic}.host1", f"{topic}.host1"),
        (f"{topic}_fanout", fanout, topic),
    }
    await listener.stop()


@pytest.mark.parametrize(
    ("overrides", "queue", "exchange"),
    [
        pytest.param(
            {"amqp_durable_queues": True},
            {"durable": True, "auto_delete": False, "arguments": []},
            {"durable": True, "auto_delete": False},
            id="durable",
        ),
        pytest.param(
            {"amqp_auto_delete": True},
            {"durable": False, "auto_delete": True, "arguments": []},
            {"durable": False, "auto_delete": True},
            id="auto-delete",
        ),
        pytest.param(
            {"rabbit_quorum_queue": True},
            {
                "durable": True,
                "auto_delete": False,
                "arguments": [["x-queue-type", "longstr", "quorum"]],
            },
            {"durable": True, "auto_delete": False},
            id="quorum",
        ),
    ],
)
async def test_topic_queue_flags_follow_the_oslo_options(
    make_transport: Callable[..., RabbitTransport],
    topic: str,
    rabbit_url: str,
    rabbitmqctl: RabbitCtl,
    overrides: dict[str, object],
    queue: dict[str, object],
    exchange: dict[str, object],
) -> None:
    transport = make_transport(rabbit_transient_queues_ttl=0, **overrides)
    target = Target(topic, "h1", exchange=f"{topic}_exchange")  # a fresh exchange: no mismatch
    listener = await transport.listen(target, Collector(), prefetch=1)
    vhost = vhost_of(rabbit_url)
    rows = listed(rabbitmqctl, "list_queues", vhost, "name", "durable", "auto_delete", "arguments")
    queues = {row.pop("name"): row for row in rows if row["name"].startswith(topic)}
    fanout = next(name for name in queues if "_fanout_" in name)
    assert queues.pop(fanout) == {"durable": False, "auto_delete": False, "arguments": []}  # ttl 0
    assert queues == {topic: queue, f"{topic}.h1": queue}
    rows = listed(rabbitmqctl, "list_exchanges", vhost, "name", "type", "durable", "auto_delete")
    (declared,) = [row for row in rows if row["name"] == target.exchange]
    assert declared == {"name": target.exchange, "type": "topic", **exchange}
    await listener.stop()


async def test_durable_mismatch_falls_back_to_non_durable_as_oslo(
    make_transport: Callable[..., RabbitTransport],
    topic: str,
    rabbit_url: str,
    rabbitmqctl: RabbitCtl,
    caplog: pytest.LogCaptureFixture,
    context: RequestContext,
) -> None:
    shared = f"{topic}_shared"
    # A non-durable service declared the shared control exchange first...
    first = make_transport(control_exchange=shared)
    await first.listen(Target(f"{topic}_a", "h1"), Collector(), prefetch=1)
    # ...then a durable one serves and calls on it: declarations fall back, nothing fails.
    durable = make_transport(control_exchange=shared, amqp_durable_queues=True)
    endpoint = Notes()
    server = RPCServer(durable, Target(topic, "h1"), [endpoint])
    with caplog.at_level(logging.WARNING):
        await server.start()
        assert (
            await RPCClient(durable, Target(topic), timeout=GUARD).call(context, "echo", value=1)
            == 1
        )
    assert "declaring it non-durable" in caplog.text
    rows = listed(rabbitmqctl, "list_queues", vhost_of(rabbit_url), "name", "durable")
    assert {row["name"]: row["durable"] for row in rows if row["name"].startswith(f"{topic}.")} == {
        f"{topic}.h1": False
    }
    await server.stop()
    await server.wait()


# --- wire format --------------------------------------------------------------------------------


async def test_call_request_and_reply_match_the_golden_capture(
    transport: RabbitTransport, raw: Raw, topic: str, context: RequestContext
) -> None:
    requests = await raw.tap("openstack", f"{topic}.host1")
    client = RPCClient(transport, Target(topic, version="1.2"), timeout=30)
    call = asyncio.create_task(client.prepare(server="host1").call(context, "echo", x=1, y="two"))
    request = await next_message(requests)
    assert (request.exchange, request.routing_key) == ("openstack", f"{topic}.host1")
    assert properties_of(request) == oslo_properties(expiration="30000")
    inner = unwrap(request.body)
    oslo_context_keys = [
        "user", "project_id", "system_scope", "project", "domain", "user_domain",
        "project_domain", "is_admin", "read_only", "show_deleted", "auth_token", "request_id",
        "global_request_id", "resource_uuid", "roles", "user_identity", "is_admin_project",
    ]  # fmt: skip
    keys = ["method", "args", "version", "_msg_id", "_reply_q", "_timeout", "_unique_id"]
    assert list(inner)[: len(keys) + len(oslo_context_keys)] == keys + [
        f"_context_{key}" for key in oslo_context_keys
    ]
    assert inner["method"] == "echo"
    assert inner["args"] == {"x": 1, "y": "two"}
    assert inner["version"] == "1.2"
    assert inner["_timeout"] is None
    assert re.fullmatch(HEX32, inner["_msg_id"])
    assert re.fullmatch(HEX32, inner["_unique_id"])
    assert re.fullmatch(f"reply_{HEX32}", inner["_reply_q"])
    assert inner["_context_user"] == "u1"
    assert inner["_context_roles"] == ["admin"]
    assert inner["_context_auth_token"] == "tok"
    assert inner["_context_request_id"] == context.request_id
    # Answer as a plain AMQP peer would (no _unique_id, as oslo-wire §7's pika server).
    reply = {"result": "pong", "failure": None, "ending": True, "_msg_id": inner["_msg_id"]}
    await raw.channel.basic_publish(
        wire.encode(reply),
        routing_key=inner["_reply_q"],
        properties=aiormq.spec.Basic.Properties(content_type="application/json"),
    )
    async with asyncio.timeout(GUARD):
        assert await call == "pong"


async def test_cast_and_fanout_carry_no_expiration(
    transport: RabbitTransport, raw: Raw, topic: str, context: RequestContext
) -> None:
    casts = await raw.tap("openstack", topic)
    fanouts = await raw.tap(f"{topic}_fanout", "", exchange_type="fanout")
    client = RPCClient(transport, Target(topic, version="1.2"))
    await client.cast(context, "ping")
    await client.prepare(fanout=True).cast(context, "ping")
    for messages, exchange, routing_key in (
        (casts, "openstack", topic),
        (fanouts, f"{topic}_fanout", ""),
    ):
        message = await next_message(messages)
        assert (message.exchange, message.routing_key) == (exchange, routing_key)
        assert properties_of(message) == oslo_properties()
        inner = unwrap(message.body)
        assert list(inner)[:4] == ["method", "args", "version", "_unique_id"]
        assert "_msg_id" not in inner
        assert "_reply_q" not in inner


async def test_replies_go_to_the_default_exchange_as_oslo_sends_them(
    serve: Serve, transport: RabbitTransport, raw: Raw, topic: str
) -> None:
    await serve()
    reply_to, replies = await raw.reply_queue()
    request = wire.request("echo", {"value": 7}, {}, msg_id="m1", reply_q=reply_to)
    await transport.send(Target(topic), wire.encode(request))
    reply = await next_message(replies)
    assert (reply.exchange, reply.routing_key) == ("", reply_to)
    assert properties_of(reply) == oslo_properties()
    inner = unwrap(reply.body)
    assert list(inner) == ["result", "failure", "ending", "_msg_id", "_unique_id"]
    assert inner["result"] == 7
    assert inner["failure"] is None
    assert inner["ending"] is True
    assert inner["_msg_id"] == "m1"


async def test_messages_from_foreign_senders_without_content_type_are_delivered(
    serve: Serve, rabbit_url: str, topic: str
) -> None:
    _, endpoint = await serve()
    body = wire.encode(wire.request("note", {"value": "bare"}, {}))
    connection = await aio_pika.connect(rabbit_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange("openstack")
        message = aio_pika.Message(body)
        assert message.content_type is None
        await exchange.publish(message, routing_key=topic)
    finally:
        await connection.close()
    assert await endpoint.next() == "bare"


async def test_notifications_follow_oslos_notifier_and_listener_pools(
    transport: RabbitTransport, raw: Raw, topic: str, rabbit_url: str, rabbitmqctl: RabbitCtl
) -> None:
    pools = {name: Collector() for name in (f"{topic}_pool_a", f"{topic}_pool_b")}
    for name, collector in pools.items():
        await transport.listen_notifications(
            [(Target(topic), "info"), (Target(topic), "error")], collector, pool=name, prefetch=4
        )
    await transport.send_notification(Target(topic), "info", b'{"n": 1}')
    # The publisher declared <topic>.info, bound by that key, and the message waits there.
    vhost = vhost_of(rabbit_url)
    rows = listed(rabbitmqctl, "list_queues", vhost, "name", "durable", "auto_delete", "arguments")
    queues = {row.pop("name"): row for row in rows if row["name"].startswith(topic)}
    plain = {"durable": False, "auto_delete": False, "arguments": []}
    assert queues == {f"{topic}.info": plain, **dict.fromkeys(pools, plain)}
    bindings = {
        (row["source_name"], row["destination_name"], row["routing_key"])
        for row in listed(
            rabbitmqctl, "list_bindings", vhost, "source_name", "destination_name", "routing_key"
        )
        if row["source_name"] == "openstack" and row["destination_name"] in queues
    }
    assert bindings == {
        ("openstack", f"{topic}.info", f"{topic}.info"),
        *(("openstack", pool, f"{topic}.{p}") for pool in pools for p in ("info", "error")),
    }
    stored = await next_message(await raw.collect(f"{topic}.info"))
    assert (stored.exchange, stored.routing_key) == ("openstack", f"{topic}.info")
    assert properties_of(stored) == oslo_properties()
    # Each pool gets every notification, once.
    await transport.send_notification(Target(topic), "error", b'{"n": 2}')
    for collector in pools.values():
        received = [await collector.next() for _ in range(2)]
        assert [message.body for message in received] == [b'{"n": 1}', b'{"n": 2}']
        for message in received:
            await message.ack()
        assert collector.messages.empty()


# --- delivery -----------------------------------------------------------------------------------


async def test_unsettled_message_is_redelivered_after_stop_and_close(
    make_transport: Callable[..., RabbitTransport], topic: str
) -> None:
    first = make_transport()
    held = Collector()
    listener = await first.listen(Target(topic, "h1"), held, prefetch=4)
    await first.send(Target(topic), b"accepted")
    message = await held.next()
    assert (message.body, message.redelivered) == (b"accepted", False)
    await listener.stop()  # never settled: the handler may still settle it...
    await first.close()  # ...until the connection goes; then the broker takes it back.
    second = make_transport()
    again = Collector()
    await second.listen(Target(topic, "h2"), again, prefetch=4)
    redelivered = await again.next()
    assert (redelivered.body, redelivered.redelivered) == (b"accepted", True)
    await redelivered.ack()


async def test_ack_requeue_and_reject_map_to_the_broker(
    transport: RabbitTransport, raw: Raw, topic: str
) -> None:
    held = Collector()
    listener = await transport.listen(Target(topic, "h1"), held, prefetch=10)
    for body in (b"requeue-me", b"reject-me", b"ack-me"):
        await transport.send(Target(topic, "h1"), body)
    first, second, third = [await held.next() for _ in range(3)]
    await first.requeue()
    again = await held.next()
    assert (again.body, again.redelivered) == (b"requeue-me", True)
    await second.reject()
    await third.ack()
    await again.ack()
    await transport.send(Target(topic, "h1"), b"last")
    last = await held.next()
    assert last.body == b"last"  # the rejected one never came back
    await last.ack()
    await listener.stop()
    assert await raw.ready_count(f"{topic}.h1") == 0


@pytest.mark.parametrize(
    ("prefetch", "overrides", "bound"),
    [
        pytest.param(2, {}, 2, id="listen-argument"),
        pytest.param(100, {"rabbit_qos_prefetch_count": 1}, 1, id="rabbit_qos_prefetch_count"),
    ],
)
async def test_prefetch_bounds_unsettled_deliveries(
    make_transport: Callable[..., RabbitTransport],
    raw: Raw,
    topic: str,
    prefetch: int,
    overrides: dict[str, object],
    bound: int,
) -> None:
    transport = make_transport(**overrides)
    held = Collector()
    listener = await transport.listen(Target(topic, "h1"), held, prefetch=prefetch)
    for n in range(5):
        await transport.send(Target(topic, "h1"), b"%d" % n)  # confirmed: in the queue now
    delivered = [await held.next() for _ in range(bound)]
    # The broker holds the rest back until one is settled.
    assert await raw.ready_count(f"{topic}.h1") == 5 - bound
    assert held.messages.empty()
    await delivered[0].ack()
    following = await held.next()
    assert following.body == b"%d" % bound
    for message in [*delivered[1:], following]:
        await message.ack()
    await listener.stop()


async def test_cast_waits_for_the_confirm_and_a_call_request_does_not(
    transport: RabbitTransport, raw: Raw, topic: str
) -> None:
    # A queue that refuses every message: the broker nacks what is routed to it.
    await raw.channel.exchange_declare("openstack", exchange_type="topic")
    await raw.channel.queue_declare(
        f"{topic}.full",
        exclusive=True,
        arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
    )
    await raw.channel.queue_bind(f"{topic}.full", "openstack", routing_key=f"{topic}.full")
    target = Target(topic, "full")
    with pytest.raises(MessageDeliveryFailure, match="refused"):
        await transport.send(target, b"cast", confirm=True)
    await transport.send(target, b"call", expiration=5, confirm=False)  # does not wait: no error
    # A confirmed message is in its queue when send returns.
    await raw.channel.queue_declare(f"{topic}.ok", exclusive=True)
    await raw.channel.queue_bind(f"{topic}.ok", "openstack", routing_key=f"{topic}.ok")
    await transport.send(Target(topic, "ok"), b"cast", confirm=True)
    assert await raw.ready_count(f"{topic}.ok") == 1


async def test_max_message_size_is_enforced_on_send_and_not_on_receive(
    make_transport: Callable[..., RabbitTransport], topic: str
) -> None:
    small = make_transport(max_message_size=1024)
    large = make_transport()
    with pytest.raises(MessageTooLarge, match="larger than max_message_size"):
        await small.send(Target(topic), b"x" * 1025)
    with pytest.raises(MessageTooLarge):
        await small.send_reply("reply_x", b"x" * 1025)
    held = Collector()
    await small.listen(Target(topic, "h1"), held, prefetch=1)
    await large.send(Target(topic), b"y" * 200_000)  # several AMQP frames
    message = await held.next()  # delivered: the server answers "too large", not silence
    assert message.body == b"y" * 200_000
    await message.ack()


class _Records(logging.Handler):
    """Keeps warnings (those containing ``text``) and says when the first arrived."""

    def __init__(self, text: str = "") -> None:
        super().__init__(level=logging.WARNING)
        self.text = text
        self.arrived = asyncio.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.messages.append(record.getMessage())
            self.arrived.set()


async def test_unroutable_reply_is_logged_and_dropped(transport: RabbitTransport, raw: Raw) -> None:
    records = _Records()
    logger = logging.getLogger("steward.rpc.transports.rabbit")
    logger.addHandler(records)
    try:
        await transport.send_reply("reply_nobody_listens", wire.encode(wire.reply("m1")))
        async with asyncio.timeout(GUARD):
            await records.arrived.wait()
    finally:
        logger.removeHandler(records)
    assert records.messages == [
        "Reply to 'reply_nobody_listens' could not be delivered (312 NO_ROUTE): "
        "its caller is gone; dropped"
    ]
    reply_to, replies = await raw.reply_queue()  # the channel still works
    await transport.send_reply(reply_to, b"{}")
    assert (await next_message(replies)).body == b"{}"


async def test_many_concurrent_calls_each_get_their_own_reply(
    make_transport: Callable[..., RabbitTransport], topic: str, context: RequestContext
) -> None:
    servers = []
    for name in ("h1", "h2"):
        server = RPCServer(make_transport(), Target(topic, name), [Notes()])
        await server.start()
        servers.append(server)
    client = RPCClient(make_transport(), Target(topic), timeout=GUARD)
    values = [f"v{n}" for n in range(200)]
    results = await asyncio.gather(*(client.call(context, "echo", value=v) for v in values))
    assert results == values
    for server in servers:
        await server.stop()
        await server.wait()
    assert sum(server.handled for server in servers) == 200


# --- failures -----------------------------------------------------------------------------------


def connection_of(rabbitmqctl: RabbitCtl, name: str) -> dict[str, Any]:
    """rabbitmqctl's view of the connection named ``name`` (the AMQP connection_name)."""
    rows = orjson.loads(
        rabbitmqctl("list_connections", "timeout", "client_properties", "--formatter", "json")
    )
    for row in rows:
        properties = {key: value for key, _, value in row["client_properties"]}
        if properties.get("connection_name") == name:
            return dict(row)
    raise LookupError(name)


def close_connection(rabbitmqctl: RabbitCtl, name: str) -> None:
    """Make the broker close the connection named ``name``, as a network failure would."""
    # The JSON form shows pids in a syntax close_connection does not take; the table form does.
    for line in rabbitmqctl("list_connections", "pid", "client_properties").splitlines():
        if f'{{"connection_name","{name}"}}' in line:
            rabbitmqctl("close_connection", line.split("\t", 1)[0], "test: connection lost")
            return
    raise LookupError(name)


async def test_connection_name_and_heartbeat_as_oslo(
    make_transport: Callable[..., RabbitTransport], topic: str, rabbitmqctl: RabbitCtl
) -> None:
    transport = make_transport(heartbeat_timeout_threshold=17)
    await transport.send(Target(topic, fanout=True), b"connect")
    name = transport.connector.name
    assert re.fullmatch(r"[^:]+:\d+:[0-9a-f-]{36}", name)
    assert connection_of(rabbitmqctl, name)["timeout"] == 17


async def test_hosts_are_tried_in_order(
    make_transport: Callable[..., RabbitTransport],
    rabbit_url: str,
    caplog: pytest.LogCaptureFixture,
    serve: Serve,
    topic: str,
    context: RequestContext,
) -> None:
    vhost = vhost_of(rabbit_url)
    url = f"amqp://guest:guest@127.0.0.1:1,guest:guest@127.0.0.1:5672/{vhost}"
    await serve()
    with caplog.at_level(logging.INFO, logger="steward.rpc.transports._rabbit_connection"):
        client = RPCClient(make_transport(url), Target(topic), timeout=GUARD)
        assert await client.call(context, "echo", value="second host") == "second host"
    assert "AMQP server on 127.0.0.1:1 is unreachable" in caplog.text
    assert "Connected to AMQP server on 127.0.0.1:5672" in caplog.text


async def test_lost_connection_redelivers_unsettled_messages_and_consumes_again(
    make_transport: Callable[..., RabbitTransport], topic: str, rabbitmqctl: RabbitCtl
) -> None:
    transport = make_transport(rabbit_retry_interval=0.1)
    held = Collector()
    await transport.listen(Target(topic, "h1"), held, prefetch=4)
    await transport.send(Target(topic), b"in flight")
    before = await held.next()
    close_connection(rabbitmqctl, transport.connector.name)
    after = await held.next()  # consumed again on a new connection; the broker gave it back
    assert (after.body, after.redelivered) == (b"in flight", True)
    await before.ack()  # on the lost channel: nothing to do
    await after.ack()
    await transport.send(Target(topic), b"next")
    assert (await held.next()).body == b"next"


async def test_lost_channel_redelivers_unsettled_messages_and_consumes_again(
    transport: RabbitTransport, topic: str
) -> None:
    held = Collector()
    await transport.listen(Target(topic, "h1"), held, prefetch=4)
    await transport.send(Target(topic), b"in flight")
    before = await held.next()
    channel = before._message.channel  # type: ignore[attr-defined]
    await channel.basic_ack(999_999)  # an unknown delivery tag: the broker closes the channel
    after = await held.next()
    assert (after.body, after.redelivered) == (b"in flight", True)
    await after.ack()


async def test_a_deleted_queue_is_declared_and_consumed_again(
    transport: RabbitTransport, raw: Raw, topic: str
) -> None:
    held = Collector()
    cancelled = _Records("cancelled a consumer")
    logger = logging.getLogger("steward.rpc.transports.rabbit")
    logger.addHandler(cancelled)
    try:
        await transport.listen(Target(topic, "h1"), held, prefetch=4)
        await raw.channel.queue_delete(f"{topic}.h1")  # the broker cancels our consumer
        async with asyncio.timeout(GUARD):
            await cancelled.arrived.wait()
    finally:
        logger.removeHandler(cancelled)
    # A message sent before the queue is back is returned as unroutable: send until one lands.
    async with asyncio.timeout(GUARD):
        while True:
            with contextlib.suppress(MessageUndeliverable):
                await transport.send(Target(topic, "h1"), b"back")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    message = await held.messages.get()
                    break
    assert message.body == b"back"
    await message.ack()


async def test_calls_work_again_after_a_broker_restart(
    make_transport: Callable[..., RabbitTransport],
    topic: str,
    rabbitmqctl: RabbitCtl,
    context: RequestContext,
) -> None:
    fast = {"rabbit_retry_interval": 0.2, "rabbit_retry_backoff": 0.2, "rabbit_interval_max": 1}
    server_transport = make_transport(**fast)
    endpoint = Notes()
    server = RPCServer(server_transport, Target(topic, "h1"), [endpoint])
    await server.start()
    client = RPCClient(make_transport(**fast), Target(topic), timeout=5)
    assert await client.call(context, "echo", value="before") == "before"
    refused = _Records("is unreachable")
    logger = logging.getLogger("steward.rpc.transports._rabbit_connection")
    logger.addHandler(refused)
    try:
        # In a thread, so that the transports see the broker go and try to reconnect meanwhile.
        await asyncio.to_thread(rabbitmqctl, "stop_app")
        async with asyncio.timeout(GUARD):
            await refused.arrived.wait()
    finally:
        logger.removeHandler(refused)
        await asyncio.to_thread(rabbitmqctl, "start_app")
        await asyncio.to_thread(rabbitmqctl, "await_startup")
    # Queues, bindings, exchanges and consumers are declared again by the transports; a request
    # sent before the server's queues are back is returned by the broker (MessageUndeliverable),
    # or lost with a connection that is not up yet (a timeout), so try until one lands.
    async with asyncio.timeout(120):
        while True:
            with contextlib.suppress(MessagingTimeout, MessageUndeliverable):
                assert await client.call(context, "echo", value="after") == "after"
                break
    await client.prepare(fanout=True).cast(context, "note", value="fanout after")
    assert await endpoint.next() == "fanout after"
    await server.stop()
    await server.wait()


async def test_returned_casts_are_not_kept_once_their_publish_ends(
    transport: RabbitTransport, topic: str
) -> None:
    publisher = transport._confirmed
    with pytest.raises(MessageUndeliverable):
        await transport.send(Target(topic), b"to nobody")
    assert publisher._returns == {}
    # A return for a publish nobody waits for any more (it was cancelled) is not kept either.
    publisher._record_return(
        aiormq.spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE"), b"late"
    )
    assert publisher._returns == {}


async def test_closed_transport_refuses_work(transport: RabbitTransport, topic: str) -> None:
    await transport.send(Target(topic, fanout=True), b"warm up")
    await transport.close()
    assert not transport.connector.connected
    with pytest.raises(TransportClosed):
        await transport.send(Target(topic), b"too late")
    with pytest.raises(TransportClosed):
        await transport.listen(Target(topic, "h1"), Collector(), prefetch=1)
