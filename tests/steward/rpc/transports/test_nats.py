"""The nats:// transport on the machine's NATS: names, queue groups, core and JetStream delivery,
reconnection after a server restart, sizes, credentials. What every transport must do is in
test_conformance.py (which runs NATS with JetStream on).

One module past ~400 lines on purpose: it is one transport's integration suite, in the order of
its module docstring, sharing one set of fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, RetentionPolicy
from nats.js.errors import NotFoundError

from steward.config import Settings, load_settings
from steward.context import RequestContext
from steward.errors import (
    InvalidTransportURL,
    MessageDeliveryFailure,
    MessageTooLarge,
    MessageUndeliverable,
    MessagingTimeout,
    TransportClosed,
)
from steward.rpc import RPCClient, RPCServer, Target, get_transport, wire
from steward.rpc.transports._nats_connection import Subjects, parse_url, token
from steward.rpc.transports.base import IncomingMessage
from steward.rpc.transports.nats import HEADER_ROOM, NatsTransport

GUARD = 30.0  # generous bound on waits that should end at once; never a timing assertion
NATS = "nats://127.0.0.1:4222"
NATS_SERVER = "/usr/sbin/nats-server"
NATS_START = (
    "start-stop-daemon", "--start", "--oknodo", "--background", "--exec", NATS_SERVER, "--",
    "-a", "127.0.0.1", "-p", "4222", "-js", "-sd", "/var/lib/nats-server",
    "-l", "/var/log/nats-server.log",
)  # fmt: skip
NATS_STOP = ("start-stop-daemon", "--stop", "--oknodo", "--exec", NATS_SERVER)
NATS_STATUS = ("start-stop-daemon", "--status", "--exec", NATS_SERVER)


# --- helpers ----------------------------------------------------------------------------------


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
        self.calls: list[object] = []
        self.release = asyncio.Event()
        self.holding = asyncio.Event()

    async def note(self, context: RequestContext, value: object = None) -> None:
        self.notes.put_nowait(value)

    async def echo(self, context: RequestContext, value: object = None) -> object:
        self.calls.append(value)
        return value

    async def hold(self, context: RequestContext) -> str:
        self.holding.set()
        await self.release.wait()
        return "released"

    async def next(self) -> object:
        async with asyncio.timeout(GUARD):
            return await self.notes.get()


def request(method: str, **args: object) -> bytes:
    return wire.encode(wire.request(method, args, {}))


async def until(check: Callable[[], object], *, what: str) -> None:
    """Poll ``check`` (a plain or a coroutine function) until it is true, for at most GUARD s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"still waiting after {GUARD} s: {what}")
        await asyncio.sleep(0.02)


async def port_open(port: int = 4222) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def run(*command: str) -> int:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await process.wait()


async def wait_for_port(*, open_: bool, port: int = 4222) -> None:
    async def answers() -> bool:
        return await port_open(port) == open_

    await until(answers, what=f"port {port} {'open' if open_ else 'closed'}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def delete_stream(name: str) -> None:
    client = await nats.connect(NATS, allow_reconnect=False)
    try:
        await client.jetstream().delete_stream(name)
    except NotFoundError:
        pass
    finally:
        await client.close()


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    """A namespace (subjects and JetStream stream) of the test's own, its stream deleted after."""
    name = f"steward-nats-{uuid.uuid4().hex[:12]}"
    yield name
    await delete_stream(name)


@pytest.fixture
def topic() -> str:
    return f"nats_{uuid.uuid4().hex[:12]}"


MakeTransport = Callable[..., NatsTransport]


@pytest.fixture
async def make_transport(namespace: str) -> AsyncIterator[MakeTransport]:
    made: list[NatsTransport] = []

    def make(*, jetstream: bool = False, url: str | None = None, **overrides: Any) -> NatsTransport:
        url = url or f"{NATS}/{namespace}?jetstream={str(jetstream).lower()}"
        transport = get_transport(url, settings=load_settings(overrides=overrides))
        assert isinstance(transport, NatsTransport)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.close()


@pytest.fixture
async def raw() -> AsyncIterator[Client]:
    """A plain nats-py client: what any other program on the server sees."""
    client = await nats.connect(NATS)
    yield client
    await client.close()


async def tap(raw: Client, subject: str, queue: str = "") -> asyncio.Queue[Msg]:
    messages: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_message(msg: Msg) -> None:
        messages.put_nowait(msg)

    await raw.subscribe(subject, queue=queue, cb=on_message)
    await raw.flush()
    return messages


async def next_msg(messages: asyncio.Queue[Msg]) -> Msg:
    async with asyncio.timeout(GUARD):
        return await messages.get()


# --- URL, names, settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "servers", "namespace", "jetstream"),
    [
        ("nats://", ("nats://127.0.0.1:4222",), "steward", None),
        ("nats://h1:4222", ("nats://h1:4222",), "steward", None),
        (
            "nats://u:p@h1:4222,t0ken@h2/prod?jetstream=true",
            ("nats://u:p@h1:4222", "nats://t0ken@h2"),
            "prod",
            True,
        ),
        ("nats://h1/?jetstream=off", ("nats://h1",), "steward", False),
    ],
    ids=["default", "one-host", "hosts-credentials-namespace", "jetstream-off"],
)
def test_url_gives_servers_namespace_and_jetstream(
    url: str, servers: tuple[str, ...], namespace: str, jetstream: bool | None
) -> None:
    parsed = parse_url(url)
    assert (parsed.servers, parsed.namespace, parsed.jetstream) == (servers, namespace, jetstream)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nats://h1/a.b", "the path names the namespace"),
        ("nats://h1?prefetch=3", "unknown option 'prefetch'; known: jetstream, ca_file"),
        ("nats://h1?jetstream=maybe", "jetstream= takes true or false, got 'maybe'"),
        ("nats://h1:port", "Port could not be cast"),
        ("nats://h1,,h2", "each comma-separated server needs a host"),
        ("nats://h1?ca_file=/nonexistent/ca.pem", "No such file"),
    ],
    ids=["namespace", "unknown-option", "jetstream-value", "port", "empty-host", "tls-file"],
)
def test_bad_urls_raise_invalid_transport_url(url: str, message: str) -> None:
    with pytest.raises(InvalidTransportURL, match=message):
        get_transport(url)


def test_url_masks_every_password() -> None:
    transport = NatsTransport("nats://u:secret@h1:4222,v:other@h2:4222/ns")
    assert transport.url == "nats://u:***@h1:4222,v:***@h2:4222/ns"
    assert "secret" not in repr(transport)


def test_each_name_part_is_exactly_one_subject_token() -> None:
    assert token("compute") == "compute"
    assert token("host-1_a") == "host-1_a"
    assert token("host1.example.com") == "host1%2Eexample%2Ecom"
    assert token("a*b>c d%é") == "a%2Ab%3Ec%20d%25%C3%A9"
    subjects = Subjects("ns", "openstack")
    target = Target("compute", "host1.example.com")
    assert subjects.destination("call", target) == "ns.call.openstack.compute.host1%2Eexample%2Ecom"
    assert subjects.destination("cast", target.replace(server=None)) == "ns.cast.openstack.compute"
    assert (
        subjects.destination("cast", target.replace(fanout=True)) == "ns.fanout.openstack.compute"
    )
    assert subjects.notification(Target("notifications", exchange="nova"), "info") == (
        "ns.notify.nova.notifications.info"
    )
    # A dot inside a topic cannot make it look like another topic's server subject.
    assert subjects.destination("call", Target("a.b")) != subjects.destination(
        "call", Target("a", "b")
    )
    assert subjects.consumer("ns.cast.openstack.compute.h%2E1") == "cast:openstack:compute:h%2E1"
    assert subjects.consumer("ns.notify.x.t.info", pool="p.1") == "pool:p%2E1:notify:x:t:info"
    assert subjects.is_reply(subjects.reply())
    for foreign in ("$JS.API.STREAM.DELETE.ns", "ns.reply.a.b", "other.reply.abc", "ns.reply.*"):
        assert not subjects.is_reply(foreign)


def test_nats_scheme_selects_the_nats_transport() -> None:
    assert isinstance(get_transport("nats://127.0.0.1:4222"), NatsTransport)


def test_settings_have_the_nats_options_and_defaults() -> None:
    defaults = Settings()
    assert defaults.nats.jetstream is False
    assert defaults.nats.stream_storage == "file"
    assert defaults.nats.stream_replicas == 1
    assert defaults.nats.stream_max_age == 0
    assert defaults.nats.ack_wait == 30
    assert defaults.nats.reconnect_wait == 2
    transport = NatsTransport("nats://h1", settings=load_settings(overrides={"nats_jetstream": 1}))
    assert transport.jetstream is True
    transport = NatsTransport(
        "nats://h1?jetstream=false", settings=load_settings(overrides={"nats_jetstream": 1})
    )
    assert transport.jetstream is False


# --- core NATS --------------------------------------------------------------------------------


async def test_subjects_and_queue_groups_on_the_wire(
    make_transport: MakeTransport, raw: Client, namespace: str, topic: str
) -> None:
    transport = make_transport()
    seen = await tap(raw, f"{namespace}.>")
    notes = Notes()
    server = RPCServer(transport, Target(topic, "h1"), [notes])
    await server.start()
    # A foreign member of queue group "servers" shares the topic's casts with the server.
    member = await tap(raw, f"{namespace}.cast.openstack.{topic}", queue="servers")
    client = RPCClient(transport, Target(topic), timeout=GUARD)
    ctx = RequestContext()
    assert await client.prepare(server="h1").call(ctx, "echo", value=1) == 1
    request_msg, reply_msg = await next_msg(seen), await next_msg(seen)
    assert request_msg.subject == f"{namespace}.call.openstack.{topic}.h1"
    # The reply address is steward's own, in the body; the NATS reply subject only gets the
    # server's no-responders status, and no server can be made to answer there.
    assert wire.decode(request_msg.data)["_reply_q"] == reply_msg.subject
    assert request_msg.reply.startswith(f"{namespace}.reply.")
    assert request_msg.reply != reply_msg.subject
    assert not transport.subjects.is_reply(request_msg.reply)
    assert transport.subjects.is_reply(reply_msg.subject)
    assert float(request_msg.headers["Steward-Expires"]) > 0  # type: ignore[index]
    await client.prepare(fanout=True).cast(ctx, "note", value="all")
    assert (await next_msg(seen)).subject == f"{namespace}.fanout.openstack.{topic}"
    assert await notes.next() == "all"
    for i in range(40):
        await client.cast(ctx, "note", value=i)
    await until(lambda: notes.notes.qsize() + member.qsize() == 40, what="40 casts shared")
    assert notes.notes.qsize() > 0
    assert member.qsize() > 0
    assert notes.notes.qsize() + member.qsize() == 40
    await server.stop()
    await server.wait()


async def test_core_prefetch_bounds_the_handler_and_the_rest_waits_in_the_process(
    make_transport: MakeTransport, topic: str
) -> None:
    transport = make_transport()
    collector = Collector()
    listener = await transport.listen(Target(topic, "h1"), collector, prefetch=2)
    for i in range(5):
        await transport.send(Target(topic, "h1"), request("note", value=i))
    held = [await collector.next(), await collector.next()]
    await transport.send(Target(topic, "h1"), request("note", value="probe"))
    for _ in range(50):
        await asyncio.sleep(0)
    assert collector.messages.empty()
    await held[0].ack()
    third = await collector.next()
    assert collector.messages.empty()
    for message in (held[1], third):
        await message.ack()
    rest = []
    for _ in range(3):
        message = await collector.next()
        rest.append(wire.decode(message.body)["args"]["value"])
        await message.ack()
    assert rest == [3, 4, "probe"]
    await listener.stop()


async def test_core_requeue_publishes_the_message_again_for_the_group(
    make_transport: MakeTransport, topic: str
) -> None:
    transport = make_transport()
    first, second = Collector(), Collector()
    one = await transport.listen(Target(topic, "h1"), first, prefetch=1)
    await transport.send(Target(topic, "h1"), request("note", value="again"))
    message = await first.next()
    assert not message.redelivered
    await one.stop()  # the message stays the handler's to settle
    two = await transport.listen(Target(topic, "h1"), second, prefetch=1)
    await message.requeue()
    again = await second.next()
    assert again.body == message.body
    assert again.redelivered
    await again.ack()
    await two.stop()


async def test_expired_call_request_is_dropped_unhandled(
    make_transport: MakeTransport, topic: str
) -> None:
    transport = make_transport()
    notes = Notes()
    server = RPCServer(transport, Target(topic, "h1"), [notes], prefetch=1)
    await server.start()
    client = RPCClient(transport, Target(topic, "h1"), timeout=GUARD)
    ctx = RequestContext()
    blocked = asyncio.create_task(client.call(ctx, "hold"))
    async with asyncio.timeout(GUARD):
        await notes.holding.wait()  # the first call runs
    with pytest.raises(MessagingTimeout):  # waits behind the first, beyond its timeout
        await client.prepare(timeout=0.3).call(ctx, "echo", value="late")
    notes.release.set()
    assert await blocked == "released"
    assert await client.call(ctx, "echo", value="fresh") == "fresh"
    assert notes.calls == ["fresh"]
    await server.stop()
    await server.wait()


async def test_replies_go_only_to_reply_subjects(
    make_transport: MakeTransport,
    raw: Client,
    namespace: str,
    topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = make_transport(jetstream=True)
    server = RPCServer(transport, Target(topic, "h1"), [Notes()])
    await server.start()
    foreign = await tap(raw, "elsewhere.>")
    stream = f"$JS.API.STREAM.DELETE.{namespace}"

    async def ask_for_a_reply_to(address: str) -> None:
        bad = wire.request("echo", {"value": 1}, {}, msg_id="m1", reply_q=address)
        with caplog.at_level(logging.WARNING, logger="steward.rpc.transports.nats"):
            await transport.send(Target(topic), wire.encode(bad))
            await until(lambda: address in caplog.text, what="the refusal is logged")

    await ask_for_a_reply_to("elsewhere.inbox")
    await ask_for_a_reply_to(stream)
    client = RPCClient(transport, Target(topic), timeout=GUARD)
    assert await client.call(RequestContext(), "echo", value=2) == 2
    assert foreign.empty()
    assert (await raw.jetstream().stream_info(namespace)).config.name == namespace
    await server.stop()
    await server.wait()


# --- JetStream --------------------------------------------------------------------------------


async def test_jetstream_stream_and_consumers_as_designed(
    make_transport: MakeTransport, raw: Client, namespace: str, topic: str
) -> None:
    transport = make_transport(jetstream=True, nats_ack_wait=7)
    listener = await transport.listen(Target(topic, "h1"), Collector(), prefetch=4)
    js = raw.jetstream()
    stream = (await js.stream_info(namespace)).config
    assert stream.retention == RetentionPolicy.INTEREST
    assert stream.subjects == [f"{namespace}.cast.>", f"{namespace}.notify.>"]
    for name, subject in [
        (f"cast:openstack:{topic}", f"{namespace}.cast.openstack.{topic}"),
        (f"cast:openstack:{topic}:h1", f"{namespace}.cast.openstack.{topic}.h1"),
    ]:
        config = (await js.consumer_info(namespace, name)).config
        assert config.durable_name == name
        assert config.filter_subject == subject
        assert config.ack_policy == AckPolicy.EXPLICIT
        assert config.ack_wait == 7
    await listener.stop()


async def test_jetstream_ack_requeue_and_reject_are_ack_nak_and_term(
    make_transport: MakeTransport, raw: Client, namespace: str, topic: str
) -> None:
    transport = make_transport(jetstream=True)
    acks = await tap(raw, f"$JS.ACK.{namespace}.>")
    collector = Collector()
    listener = await transport.listen(Target(topic, "h1"), collector, prefetch=1)
    await transport.send(Target(topic), request("note", value="x"))
    message = await collector.next()
    assert not message.redelivered
    await message.requeue()
    assert (await next_msg(acks)).data == b"-NAK"
    again = await collector.next()
    assert again.redelivered
    assert again.body == message.body
    await again.reject()
    assert (await next_msg(acks)).data == b"+TERM"
    await transport.send(Target(topic), request("note", value="y"))
    last = await collector.next()
    assert wire.decode(last.body)["args"]["value"] == "y"  # the rejected one never came back
    await last.ack()
    assert (await next_msg(acks)).data in {b"", b"+ACK"}  # nats-py acks with JetStream's empty ack
    await listener.stop()


_CHILD = """
import asyncio, sys
from steward.config import load_settings
from steward.rpc import Target, get_transport

async def main():
    settings = load_settings(overrides={"nats_ack_wait": 1})
    transport = get_transport(sys.argv[1], settings=settings)
    async def hold(incoming):  # takes the message and never settles it
        print("got", flush=True)
    await transport.listen(Target(sys.argv[2], "child"), hold, prefetch=1)
    print("listening", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_jetstream_redelivers_what_a_consumer_that_died_did_not_acknowledge(
    make_transport: MakeTransport, namespace: str, topic: str
) -> None:
    url = f"{NATS}/{namespace}?jetstream=true"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, url, topic, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        async with asyncio.timeout(GUARD):
            assert await child.stdout.readline() == b"listening\n"
        transport = make_transport(jetstream=True, nats_ack_wait=1)
        await transport.send(Target(topic), request("note", value="survives"))
        async with asyncio.timeout(GUARD):
            assert await child.stdout.readline() == b"got\n"
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGKILL)
        await child.wait()
    collector = Collector()
    listener = await transport.listen(Target(topic, "h2"), collector, prefetch=1)
    message = await collector.next()
    assert wire.decode(message.body)["args"]["value"] == "survives"
    assert message.redelivered
    await message.ack()
    await listener.stop()


async def test_jetstream_keeps_a_slow_handlers_message_in_progress(
    make_transport: MakeTransport, raw: Client, namespace: str, topic: str
) -> None:
    transport = make_transport(jetstream=True, nats_ack_wait=1)
    progress = await tap(raw, f"$JS.ACK.{namespace}.>")
    slow, other = Collector(), Collector()
    first = await transport.listen(Target(topic, "h1"), slow, prefetch=1)
    await transport.send(Target(topic), request("note", value="slow"))
    message = await slow.next()
    second = await transport.listen(Target(topic, "h2"), other, prefetch=1)
    for _ in range(4):  # four reports: more than an ack_wait has passed since delivery
        assert (await next_msg(progress)).data == b"+WPI"
    assert other.messages.empty()
    info = await raw.jetstream().consumer_info(namespace, f"cast:openstack:{topic}")
    assert info.num_redelivered == 0
    await message.ack()
    await first.stop()
    await second.stop()


async def test_jetstream_cast_waits_in_the_stream_while_no_server_runs(
    make_transport: MakeTransport, topic: str
) -> None:
    transport = make_transport(jetstream=True)
    first = RPCServer(transport, Target(topic, "h1"), [Notes()])
    await first.start()
    await first.stop()
    await first.wait()
    await RPCClient(transport, Target(topic)).cast(RequestContext(), "note", value="kept")
    notes = Notes()
    second = RPCServer(transport, Target(topic, "h2"), [notes])
    await second.start()
    assert await notes.next() == "kept"
    await second.stop()
    await second.wait()


async def test_core_nats_refuses_a_call_nobody_subscribes_to_and_drops_such_a_cast(
    make_transport: MakeTransport, topic: str
) -> None:
    transport = make_transport()  # core NATS: no stream keeps anything
    client = RPCClient(transport, Target(topic), timeout=GUARD)
    await client.cast(RequestContext(), "note", value=1)  # at most once: dropped, no error
    with pytest.raises(MessageUndeliverable):
        await client.call(RequestContext(), "echo", value=1)
    notes = Notes()
    server = RPCServer(transport, Target(topic, "h1"), [notes])
    await server.start()
    await client.cast(RequestContext(), "note", value="taken")
    assert await notes.next() == "taken"
    assert await client.call(RequestContext(), "echo", value=2) == 2
    await server.stop()
    await server.wait()


async def test_a_cast_into_a_stream_made_again_without_its_consumer_is_refused_not_lost(
    make_transport: MakeTransport, namespace: str, topic: str
) -> None:
    transport = make_transport(jetstream=True)
    server = RPCServer(transport, Target(topic, "h1"), [Notes()])
    await server.start()
    await server.stop()
    await server.wait()
    client = RPCClient(transport, Target(topic))
    await client.cast(RequestContext(), "note", value="kept")  # the consumer exists: it waits
    await delete_stream(namespace)  # and the consumers with it
    # The stream is made again for the next cast, with no consumer: the cast is refused rather
    # than acknowledged and dropped by a stream nobody is interested in.
    with pytest.raises(MessageUndeliverable):
        await client.cast(RequestContext(), "note", value="lost?")


async def test_a_foreign_stream_of_the_same_name_is_refused_precisely(
    make_transport: MakeTransport, raw: Client, namespace: str, topic: str
) -> None:
    await raw.jetstream().add_stream(name=namespace, subjects=[f"{namespace}.cast.>"])
    transport = make_transport(jetstream=True)
    with pytest.raises(MessageDeliveryFailure, match=r"exists with retention .*delete the stream"):
        await transport.send(Target(topic), b"{}")


@pytest.mark.parametrize("jetstream", [False, True], ids=["core", "jetstream"])
async def test_notifications_are_shared_by_listeners_and_copied_to_pools(
    make_transport: MakeTransport, topic: str, jetstream: bool
) -> None:
    transport = make_transport(jetstream=jetstream)
    target = Target(topic)
    if jetstream:  # sent before anyone listens: it waits, as in oslo's queue
        await transport.send_notification(target, "info", b'{"n": 0}')
    shared: list[int] = []
    pooled: list[int] = []
    kept = asyncio.Condition()

    def keeper(into: list[int]) -> Callable[[IncomingMessage], Awaitable[None]]:
        async def keep(message: IncomingMessage) -> None:
            into.append(orjson.loads(message.body)["n"])
            await message.ack()
            async with kept:
                kept.notify_all()

        return keep

    listeners = [
        await transport.listen_notifications([(target, "info")], keeper(shared), prefetch=4)
        for _ in range(2)
    ]
    listeners.append(
        await transport.listen_notifications(
            [(target, "info")], keeper(pooled), pool="audit", prefetch=4
        )
    )
    for n in range(1, 21):
        await transport.send_notification(target, "info", orjson.dumps({"n": n}))
    first = 0 if jetstream else 1
    async with asyncio.timeout(GUARD), kept:
        await kept.wait_for(lambda: len(shared) == 21 - first and len(pooled) == 20)
    assert sorted(shared) == list(range(first, 21))  # each once, between the two listeners
    assert sorted(pooled) == list(range(1, 21))  # the pool's own copy, from when it started
    for listener in listeners:
        await listener.stop()
    assert len(shared) == 21 - first


# --- connection -------------------------------------------------------------------------------


async def test_calls_and_casts_work_again_after_the_server_restarts(
    make_transport: MakeTransport, topic: str
) -> None:
    transport = make_transport(jetstream=True)
    client_transport = make_transport(jetstream=True)
    notes = Notes()
    server = RPCServer(transport, Target(topic, "h1"), [notes])
    await server.start()
    client = RPCClient(client_transport, Target(topic), timeout=GUARD)
    ctx = RequestContext()
    assert await client.call(ctx, "echo", value="before") == "before"
    try:
        assert await run(*NATS_STOP) == 0

        async def gone() -> bool:  # the old process, not only its port
            return await run(*NATS_STATUS) != 0

        await until(gone, what="the NATS server process exits")
        await wait_for_port(open_=False)
        await until(lambda: not transport.connected and not client_transport.connected,
                    what="both transports see the server gone")  # fmt: skip
    finally:
        assert await run(*NATS_START) == 0
        await wait_for_port(open_=True)
    await until(lambda: transport.connected and client_transport.connected, what="reconnected")
    assert await client.call(ctx, "echo", value="after") == "after"
    await client.cast(ctx, "note", value="cast after")
    assert await notes.next() == "cast after"
    await server.stop()
    await server.wait()


async def test_several_servers_with_credentials(
    make_transport: MakeTransport, namespace: str, topic: str
) -> None:
    port, dead = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "--user", "steward", "--pass", "s3cret",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_for_port(open_=True, port=port)
        url = f"nats://steward:s3cret@127.0.0.1:{dead},steward:s3cret@127.0.0.1:{port}/{namespace}"
        transport = make_transport(url=url)
        assert transport.url == url.replace("s3cret", "***")
        notes = Notes()
        server = RPCServer(transport, Target(topic, "h1"), [notes])
        await server.start()
        client = RPCClient(transport, Target(topic), timeout=GUARD)
        assert await client.call(RequestContext(), "echo", value="authenticated") == "authenticated"
        await server.stop()
        await server.wait()
        await transport.close()
    finally:
        process.terminate()
        await process.wait()


async def test_max_message_size_is_the_setting_or_the_servers_max_payload(
    make_transport: MakeTransport, topic: str
) -> None:
    small = make_transport(max_message_size=1000)
    with pytest.raises(MessageTooLarge, match=r"1001 bytes is larger than max_message_size \(1000"):
        await small.send(Target(topic), b"x" * 1001)
    with pytest.raises(MessageTooLarge):
        await small.send_reply("steward.reply.abc", b"x" * 1001)
    with pytest.raises(MessageTooLarge):
        await small.send_notification(Target(topic), "info", b"x" * 1001)
    everyone = Target(topic, fanout=True)  # to no server: sent, and not an error
    await small.send(everyone, b"x" * 1000)
    big = make_transport(jetstream=True)  # max_message_size 16 MiB; the server's limit is lower
    assert big.max_message_size == 16 * 1024 * 1024  # not connected yet: the setting
    await big.send(everyone, b"{}")
    limit = big.max_message_size
    assert limit == big.connection.max_payload - HEADER_ROOM  # type: ignore[operator]
    with pytest.raises(MessageTooLarge, match=f"larger than max_message_size \\({limit} bytes"):
        await big.send(Target(topic), b"x" * (limit + 1))
    await big.send(everyone, b"x" * limit)


async def test_closed_transport_refuses_work(make_transport: MakeTransport, topic: str) -> None:
    transport = make_transport()
    await transport.send(Target(topic, fanout=True), b"{}")
    await transport.close()
    with pytest.raises(TransportClosed):
        await transport.send(Target(topic), b"{}")
    with pytest.raises(TransportClosed):
        await transport.listen(Target(topic, "h1"), Collector(), prefetch=1)
    with pytest.raises(TransportClosed):
        await transport.listen_replies(lambda body: None)


# --- bad input on core NATS (the conformance suite fuzzes NATS with JetStream) ----------------

small_values = st.none() | st.integers(-(2**31), 2**31) | st.text(max_size=6)
junk = st.one_of(
    st.binary(max_size=200),
    st.dictionaries(st.sampled_from(["method", "args", "version", "_unique_id"]), small_values).map(
        wire.encode
    ),
)


async def _fuzz_core(namespace: str, payloads: list[bytes]) -> object:
    transport = get_transport(f"{NATS}/{namespace}?jetstream=false")
    topic = f"fuzz_{uuid.uuid4().hex[:12]}"
    server = RPCServer(transport, Target(topic, "h1"), [Notes()])
    await server.start()
    try:
        for body in payloads:
            await transport.send(Target(topic), body)
            await transport.send(Target(topic, "h1"), body, confirm=False)
        client = RPCClient(transport, Target(topic), timeout=GUARD)
        return await client.call(RequestContext(), "echo", value=42)
    finally:
        await server.stop()
        await server.wait(grace_period=5)
        await transport.close()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payloads=st.lists(junk, min_size=1, max_size=30))
def test_core_server_survives_arbitrary_bodies_and_still_answers(
    payloads: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="steward"):
        assert asyncio.run(_fuzz_core(f"steward-fuzz-{os.getpid()}", payloads)) == 42
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
