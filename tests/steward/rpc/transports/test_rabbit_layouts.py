"""Every queue layout an oslo.messaging deployment declares, joined by steward, both ways.

oslo.messaging runs unmodified with its [oslo_messaging_rabbit] options set through oslo.config
(overrides on the global ``cfg.CONF``, cleared after each test: oslo 18.x registers its tracing
options only there), and a steward transport gets the same options under the same (flat) names.
Each test has a vhost of its own. The layouts come from running oslo with each option and
listing what it declared (``rabbitmqctl list_queues/list_exchanges/list_bindings``):

* ``rabbit_quorum_queue`` (+ ``rabbit_quorum_delivery_limit``, ``..._max_memory_length``,
  ``..._max_memory_bytes``): topic queues quorum, durable, with the non-zero limits;
* ``rabbit_transient_quorum_queue``: reply and fanout queues durable quorum queues (with the
  same limits and ``x-expires``), the fanout exchange durable;
* ``rabbit_stream_fanout`` (needs the above and, in oslo, ``rabbit_qos_prefetch_count``): one
  stream queue ``<topic>_fanout``, ``x-max-age: "<ttl>s"`` and no other argument;
* ``rabbit_ha_queues``: ``x-ha-policy: all`` on every queue; ``rabbit_transient_queues_ttl``
  the ``x-expires`` (0: none); ``amqp_durable_queues``/``amqp_auto_delete`` the topic flags.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import re
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiormq
import orjson
import pytest
from oslo_config import cfg

from steward.config import Settings, load_settings
from steward.context import RequestContext
from steward.errors import ConfigError
from steward.rpc import RPCClient, RPCServer, Target, get_transport
from steward.rpc.transports.base import IncomingMessage
from steward.rpc.transports.rabbit import RabbitTransport

with warnings.catch_warnings():
    # oslo.messaging imports oslo.service's eventlet backend, which announces deprecations.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import oslo_messaging
    from oslo_messaging import opts as oslo_opts

GUARD = 30.0  # bound on waits that should end at once; never a timing assertion
GROUP = "oslo_messaging_rabbit"
RabbitCtl = Callable[..., str]
JOINED = "exists on the broker with another"  # steward's warning when it joins what differs

STREAM: dict[str, object] = {
    "rabbit_transient_quorum_queue": True,
    "rabbit_stream_fanout": True,
    "rabbit_qos_prefetch_count": 10,  # oslo refuses a stream without it
}
QUORUM_LIMITS: dict[str, object] = {
    "rabbit_quorum_queue": True,
    "rabbit_quorum_delivery_limit": 5,
    "rabbit_quorum_max_memory_length": 100,
    "rabbit_quorum_max_memory_bytes": 1048576,
}
LAYOUTS = [
    pytest.param({}, id="default"),
    pytest.param({"amqp_durable_queues": True}, id="durable"),
    pytest.param({"amqp_auto_delete": True}, id="auto-delete"),
    pytest.param(QUORUM_LIMITS, id="quorum-limits"),
    pytest.param(
        {"rabbit_transient_quorum_queue": True, "rabbit_quorum_delivery_limit": 3},
        id="transient-quorum",
    ),
    pytest.param(STREAM, id="stream-fanout"),
    pytest.param({**STREAM, **QUORUM_LIMITS, "rabbit_transient_queues_ttl": 60}, id="all-quorum"),
    pytest.param({"rabbit_ha_queues": True, "rabbit_transient_queues_ttl": 60}, id="ha-ttl"),
    pytest.param({"rabbit_transient_queues_ttl": 0}, id="no-ttl"),
]


# --- oslo and steward services ------------------------------------------------------------------


class OsloEndpoint:
    """An oslo.messaging endpoint: runs in oslo's executor threads."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.notes: queue.Queue[object] = queue.Queue()

    def whoami(self, ctxt: dict[str, Any]) -> str:
        return self.name

    def note(self, ctxt: dict[str, Any], value: object = None) -> None:
        self.notes.put(value)

    async def next_note(self) -> object:
        return await asyncio.to_thread(self.notes.get, timeout=GUARD)


class StewardEndpoint:
    def __init__(self, name: str) -> None:
        self.name = name
        self.notes: asyncio.Queue[object] = asyncio.Queue()

    async def whoami(self, context: RequestContext) -> str:
        return self.name

    async def note(self, context: RequestContext, value: object = None) -> None:
        self.notes.put_nowait(value)

    async def next_note(self) -> object:
        async with asyncio.timeout(GUARD):
            return await self.notes.get()


class Oslo:
    """An unmodified oslo.messaging transport, its server (``o1``) and client on one topic."""

    def __init__(self, url: str, topic: str) -> None:
        self.url = url.replace("amqp://", "rabbit://", 1)
        self.topic = topic
        self.endpoint = OsloEndpoint("o1")
        self.transport: Any = None
        self.server: Any = None
        self.client: Any = None

    async def start(self, *, serve: bool = True) -> None:
        self.transport = await asyncio.to_thread(
            oslo_messaging.get_rpc_transport, cfg.CONF, url=self.url
        )
        target = oslo_messaging.Target(topic=self.topic, server="o1")
        self.client = oslo_messaging.get_rpc_client(self.transport, target)
        if serve:
            self.server = oslo_messaging.get_rpc_server(self.transport, target, [self.endpoint])
            await asyncio.to_thread(self.server.start)

    def call(self, method: str, **prepare: Any) -> Awaitable[Any]:
        return asyncio.to_thread(self.client.prepare(timeout=GUARD, **prepare).call, {}, method)

    def cast(self, value: object, **prepare: Any) -> Awaitable[None]:
        return asyncio.to_thread(self.client.prepare(**prepare).cast, {}, "note", value=value)

    async def stop(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
            await asyncio.to_thread(self.server.wait)
        if self.transport is not None:
            await asyncio.to_thread(self.transport.cleanup)


class Steward:
    """A steward transport, its server (``s1``) and client on one topic."""

    def __init__(self, url: str, topic: str, settings: Settings) -> None:
        transport = get_transport(url, settings=settings)
        assert isinstance(transport, RabbitTransport)
        self.transport = transport
        self.endpoint = StewardEndpoint("s1")
        self.server = RPCServer(transport, Target(topic, "s1"), [self.endpoint])
        self.client = RPCClient(transport, Target(topic), timeout=GUARD)
        self.context = RequestContext(user_id="u1", project_id="p1")

    async def start(self) -> None:
        await self.server.start()

    async def call(self, method: str, **prepare: Any) -> Any:
        return await self.client.prepare(**prepare).call(self.context, method)

    async def cast(self, value: object, **prepare: Any) -> None:
        await self.client.prepare(**prepare).cast(self.context, "note", value=value)

    async def stop(self) -> None:
        await self.server.stop()
        await self.server.wait(grace_period=5)
        await self.transport.close()


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def topic() -> str:
    return f"layout_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def oslo_options() -> Iterator[Callable[[dict[str, object]], None]]:
    """Set [oslo_messaging_rabbit] options on oslo.config's global CONF for this test."""
    for group, options in oslo_opts.list_opts():
        cfg.CONF.register_opts(options, group=group)  # as oslo's driver will: the same options
    names: list[str] = []

    def apply(options: dict[str, object]) -> None:
        for name, value in options.items():
            cfg.CONF.set_override(name, value, group=GROUP)
            names.append(name)

    yield apply
    for name in names:
        cfg.CONF.clear_override(name, group=GROUP)


@pytest.fixture
async def services(
    fresh_rabbit_url: str, topic: str
) -> AsyncIterator[Callable[..., Oslo | Steward]]:
    """Make oslo and steward services on the test's vhost; all are stopped at the end."""
    made: list[Oslo | Steward] = []

    def make(kind: str, options: dict[str, object] | None = None) -> Oslo | Steward:
        service: Oslo | Steward
        if kind == "oslo":
            service = Oslo(fresh_rabbit_url, topic)
        else:
            service = Steward(fresh_rabbit_url, topic, load_settings(overrides=options or {}))
        made.append(service)
        return service

    yield make
    for service in reversed(made):
        await service.stop()


@pytest.fixture
def other_vhost(rabbitmqctl: RabbitCtl) -> Iterator[str]:
    """A second vhost of the test's own, named as conftest's so an orphan is deleted too."""
    vhost = f"steward-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


def vhost_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def listed(rabbitmqctl: RabbitCtl, what: str, url: str, *columns: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = orjson.loads(
        rabbitmqctl(what, "-p", vhost_of(url), *columns, "--formatter", "json")
    )
    return rows


def declared(rabbitmqctl: RabbitCtl, url: str, topic: str) -> dict[str, Any]:
    """What a vhost holds, names generalised: ``T`` the topic, ``<id>`` a uuid4 hex, ``S`` a server.

    Argument types are left out: RabbitMQ compares integers whatever their AMQP type.
    """

    def general(name: str) -> str:
        return (
            re.sub("[0-9a-f]{32}", "<id>", name.replace(topic, "T"))
            .replace("T.o1", "T.S")
            .replace("T.s1", "T.S")
        )

    queues = {
        general(row.pop("name")): {**row, "arguments": {k: v for k, _, v in row["arguments"]}}
        for row in listed(
            rabbitmqctl, "list_queues", url, "name", "type", "durable", "auto_delete", "arguments"
        )
    }
    exchanges = {
        general(row.pop("name")): row
        for row in listed(
            rabbitmqctl, "list_exchanges", url, "name", "type", "durable", "auto_delete"
        )
        if row["name"] and not row["name"].startswith("amq.")
    }
    bindings = {
        (general(row["source_name"]), general(row["destination_name"]), general(row["routing_key"]))
        for row in listed(
            rabbitmqctl, "list_bindings", url, "source_name", "destination_name", "routing_key"
        )
        if row["source_name"]  # the default exchange binds every queue by its name
    }
    return {"queues": queues, "exchanges": exchanges, "bindings": bindings}


# --- what is declared -----------------------------------------------------------------------------


def test_defaults_are_oslos_defaults() -> None:
    defaults = {opt.dest: opt.default for opt in dict(oslo_opts.list_opts())[GROUP]}
    ours = Settings().rabbit
    for name, field in type(ours).model_fields.items():
        flat = (field.json_schema_extra or {}).get("flat")  # type: ignore[union-attr]
        assert flat in defaults, flat
        assert getattr(ours, name) == defaults[flat], flat


@pytest.mark.parametrize(
    ("options", "named"),
    [
        pytest.param({"rabbit_stream_fanout": True}, "rabbit_transient_quorum_queue", id="stream"),
        pytest.param(
            {"rabbit_ha_queues": True, "rabbit_quorum_queue": True}, "rabbit_ha_queues", id="ha"
        ),
        pytest.param(
            {"rabbit_ha_queues": True, "rabbit_transient_quorum_queue": True},
            "rabbit_transient_quorum_queue",
            id="ha-transient",
        ),
    ],
)
def test_combinations_oslo_refuses_are_refused_naming_the_options(
    options: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(overrides=options)


async def serve_together(oslo: Oslo, steward: Steward, tag: str) -> None:
    """Calls, casts and fanout casts, each way, between the two servers of one topic."""
    for caller in (oslo, steward):
        assert await caller.call("whoami", server="o1") == "o1"
        assert await caller.call("whoami", server="s1") == "s1"
        assert await caller.call("whoami") in {"o1", "s1"}
        await caller.cast(f"{tag}-o1", server="o1")
        assert await oslo.endpoint.next_note() == f"{tag}-o1"
        await caller.cast(f"{tag}-s1", server="s1")
        assert await steward.endpoint.next_note() == f"{tag}-s1"
        await caller.cast(f"{tag}-all", fanout=True)
        assert await oslo.endpoint.next_note() == f"{tag}-all"
        assert await steward.endpoint.next_note() == f"{tag}-all"


@pytest.mark.parametrize("options", LAYOUTS)
async def test_steward_declares_what_oslo_declares_and_joins_it_in_either_order(
    options: dict[str, object],
    oslo_options: Callable[[dict[str, object]], None],
    fresh_rabbit_url: str,
    other_vhost: str,
    topic: str,
    rabbitmqctl: RabbitCtl,
    caplog: pytest.LogCaptureFixture,
) -> None:
    oslo_options(options)
    settings = load_settings(overrides=options)
    made: list[Oslo | Steward] = []
    try:
        with caplog.at_level(logging.WARNING):
            # Steward first, alone on one vhost; oslo first, alone on the other: the same.
            steward_first, oslo_first = (
                Steward(fresh_rabbit_url, topic, settings),
                Oslo(other_vhost, topic),
            )
            for service in (steward_first, oslo_first):
                made.append(service)
                await service.start()
                assert await service.call("whoami") in {"o1", "s1"}  # a reply queue too
            assert declared(rabbitmqctl, fresh_rabbit_url, topic) == declared(
                rabbitmqctl, other_vhost, topic
            )
            # Then each is joined by the other kind: no PRECONDITION_FAILED, nothing to fix.
            oslo_second, steward_second = (
                Oslo(fresh_rabbit_url, topic),
                Steward(other_vhost, topic, settings),
            )
            for service in (oslo_second, steward_second):
                made.append(service)
                await service.start()
        assert JOINED not in caplog.text
        assert "non-durable" not in caplog.text
        await serve_together(oslo_second, steward_first, "steward-first")
        await serve_together(oslo_first, steward_second, "oslo-first")
    finally:
        for service in reversed(made):
            await service.stop()


# --- options that differ --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("oslo_has", "steward_has", "named"),
    [
        pytest.param(
            {"rabbit_quorum_queue": True, "rabbit_quorum_delivery_limit": 5},
            {"rabbit_quorum_queue": True},
            "rabbit_quorum_delivery_limit",
            id="delivery-limit-missing",
        ),
        pytest.param(
            QUORUM_LIMITS,
            {"rabbit_quorum_queue": True},
            "rabbit_quorum_max_memory_length",  # RabbitMQ names the first argument that differs
            id="memory-limits-missing",
        ),
        pytest.param({"rabbit_quorum_queue": True}, {}, "rabbit_quorum_queue", id="quorum"),
        pytest.param(
            {"amqp_durable_queues": True}, {}, "amqp_durable_queues", id="durable-missing"
        ),
        pytest.param(STREAM, {}, "rabbit_transient_quorum_queue", id="stream-missing"),
        pytest.param({}, STREAM, "rabbit_transient_quorum_queue", id="stream-extra"),
    ],
)
async def test_steward_joins_what_oslo_declared_with_other_options_and_names_them(
    oslo_has: dict[str, object],
    steward_has: dict[str, object],
    named: str,
    oslo_options: Callable[[dict[str, object]], None],
    services: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    oslo_options(oslo_has)
    oslo, steward = services("oslo"), services("steward", steward_has)
    await oslo.start()
    with caplog.at_level(logging.WARNING):
        await steward.start()
        assert await steward.call("whoami", server="o1") == "o1"
        await steward.cast("from steward", fanout=True)
    # Joined as it is, or (a durable exchange) declared non-durable as oslo falls back: either
    # way the warning names the option to set.
    warnings = [r.getMessage() for r in caplog.records if r.name.endswith("_rabbit_topology")]
    assert any(named in warning for warning in warnings), warnings
    assert await oslo.endpoint.next_note() == "from steward"
    assert await steward.endpoint.next_note() == "from steward"
    assert await oslo.call("whoami", server="s1") == "s1"
    await oslo.cast("from oslo", fanout=True)
    assert await oslo.endpoint.next_note() == "from oslo"
    assert await steward.endpoint.next_note() == "from oslo"


async def test_an_exchange_of_another_type_is_an_error(
    services: Callable[..., Any], fresh_rabbit_url: str, topic: str
) -> None:
    connection = await aiormq.connect(fresh_rabbit_url)
    channel = await connection.channel()
    await channel.exchange_declare(f"{topic}_fanout", exchange_type="topic", auto_delete=True)
    await connection.close()
    steward = services("steward")
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="'type'"):
        await steward.start()


# --- the fanout stream ----------------------------------------------------------------------------


class Held:
    """A transport-level handler that keeps what it is given, unsettled."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[IncomingMessage] = asyncio.Queue()

    async def __call__(self, message: IncomingMessage) -> None:
        self.messages.put_nowait(message)

    async def next(self) -> IncomingMessage:
        async with asyncio.timeout(GUARD):
            return await self.messages.get()


def close_connection(rabbitmqctl: RabbitCtl, name: str) -> None:
    """Make the broker close the connection named ``name``, as a network failure would."""
    for line in rabbitmqctl("list_connections", "pid", "client_properties").splitlines():
        if f'{{"connection_name","{name}"}}' in line:
            rabbitmqctl("close_connection", line.split("\t", 1)[0], "test: connection lost")
            return
    raise LookupError(name)


async def test_a_starting_server_reads_the_stream_from_what_comes_next(
    oslo_options: Callable[[dict[str, object]], None], services: Callable[..., Any]
) -> None:
    oslo_options(STREAM)
    oslo = services("oslo")
    await oslo.start()
    await oslo.cast("before", fanout=True)
    assert await oslo.endpoint.next_note() == "before"  # in the stream now
    steward = services("steward", STREAM)
    await steward.start()
    await oslo.cast("after", fanout=True)
    assert await oslo.endpoint.next_note() == "after"
    assert await steward.endpoint.next_note() == "after"  # not "before": oslo's "last" gives it


async def test_a_stream_listener_goes_on_from_its_offset_after_a_lost_connection(
    fresh_rabbit_url: str, topic: str, rabbitmqctl: RabbitCtl
) -> None:
    settings = load_settings(overrides={**STREAM, "rabbit_retry_interval": 0.1})
    listening = get_transport(fresh_rabbit_url, settings=settings)
    sending = get_transport(fresh_rabbit_url, settings=settings)
    assert isinstance(listening, RabbitTransport)
    gate = asyncio.Event()
    seen: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(message: IncomingMessage) -> None:
        seen.put_nowait(message.body)
        if message.body == b"one":
            await gate.wait()  # holds the handler: what follows waits, never handed to it

    async def next_seen() -> bytes:
        async with asyncio.timeout(GUARD):
            return await seen.get()

    try:
        await listening.listen(Target(topic, "h1"), handle, prefetch=1)
        lost = (await listening.connector.connection()).closing
        for body in (b"one", b"two", b"three"):
            await sending.send(Target(topic, fanout=True), body)
        assert await next_seen() == b"one"
        close_connection(rabbitmqctl, listening.connector.name)
        async with asyncio.timeout(GUARD):
            await asyncio.wait([lost])
        gate.set()  # what the lost channel delivered is dropped, unhandled
        # Consumed again from the offset after "one" (not "next"): nothing unhandled is lost.
        assert [await next_seen(), await next_seen()] == [b"two", b"three"]
    finally:
        await sending.close()
        await listening.close()


async def test_requeue_and_reject_of_a_stream_message_acknowledge_it(
    fresh_rabbit_url: str, topic: str
) -> None:
    # RabbitMQ closes the whole connection on a basic.nack or basic.reject from a stream.
    settings = load_settings(overrides=STREAM)
    transport = get_transport(fresh_rabbit_url, settings=settings)
    held = Held()
    try:
        await transport.listen(Target(topic, "h1"), held, prefetch=2)
        assert isinstance(transport, RabbitTransport)
        connection = await transport.connector.connection()
        for body in (b"one", b"two", b"three"):
            await transport.send(Target(topic, fanout=True), body)
        await (await held.next()).requeue()
        await (await held.next()).reject()
        third = await held.next()
        assert third.body == b"three"  # neither came back
        await third.ack()
        await transport.send(Target(topic), b"topic")  # after the settlements, on the wire
        message = await held.next()
        assert message.body == b"topic"
        await message.ack()
        assert not connection.is_closed  # never NOT_IMPLEMENTED for a nack
    finally:
        await transport.close()
