"""The transport conformance suite: every transport passes these tests unchanged.

Each test runs once per transport URL in ``URLS``; a new transport is added to steward by adding
its URL here, never by changing a test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steward.config import Settings, load_settings
from steward.context import RequestContext, get_current
from steward.errors import (
    InvalidArguments,
    InvalidTarget,
    MessageTooLarge,
    MessageUndeliverable,
    MessagingTimeout,
    NoSuchMethod,
    RemoteError,
    UnsupportedVersion,
)
from steward.rpc import RPCClient, RPCServer, Target, get_transport, wire
from steward.rpc.transports.base import Transport

URLS = [
    pytest.param("memory://", id="memory"),
    # The machine's RabbitMQ, in this test session's own vhost (see tests/conftest.py).
    pytest.param(os.environ["RABBIT_TEST_URL"], id="rabbit"),
    # The machine's NATS with JetStream, in this test session's own namespace (tests/conftest.py).
    pytest.param(os.environ["NATS_TEST_URL"], id="nats"),
]

# Generous guard for waits that should end almost at once; never a timing assertion.
GUARD = 20.0


class Unlisted(Exception):
    """An exception whose module is not in allowed_remote_exmods."""


class Echo:
    """The endpoint most tests call."""

    target = Target(version="1.3")

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[str] = []
        self.casts = asyncio.Queue[tuple[str, Any]]()
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.waiting = 0
        self.waiting_changed = asyncio.Condition()
        self.loop = asyncio.get_running_loop()

    async def echo(self, context: RequestContext, value: Any = None) -> dict[str, Any]:
        self.calls.append("echo")
        current = get_current()
        return {
            "server": self.name,
            "value": value,
            "request_id": context.request_id,
            "user_id": context.user_id,
            "roles": context.roles,
            "current_is_context": current is context,
        }

    def blocking_echo(self, context: RequestContext, value: int) -> dict[str, Any]:
        return {
            "value": value,
            "on_loop_thread": threading.current_thread() is threading.main_thread(),
            "current_request_id": getattr(get_current(), "request_id", None),
        }

    def add(self, context: RequestContext, a: int, b: int = 1) -> int:
        return a + b

    async def note(self, context: RequestContext, value: Any = None) -> None:
        await self.casts.put((self.name, value))

    async def wait_for_release(self, context: RequestContext) -> str:
        self.entered.set()
        async with self.waiting_changed:
            self.waiting += 1
            self.waiting_changed.notify_all()
        await self.release.wait()
        return "released"

    def fail_builtin(self, context: RequestContext) -> None:
        raise ValueError("bad value: zzz")

    def fail_unlisted(self, context: RequestContext) -> None:
        raise Unlisted("not for you")

    def _private(self, context: RequestContext) -> str:
        return "secret"


@pytest.fixture(params=URLS)
def url(request: pytest.FixtureRequest) -> str:
    if str(request.param).startswith("amqp"):
        request.getfixturevalue("rabbit_url")  # its vhost exists
    return str(request.param)


@pytest.fixture
def topic() -> str:
    return f"conformance_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def transport(url: str) -> AsyncIterator[Transport]:
    transport = get_transport(url)
    yield transport
    await transport.close()


Serve = Callable[..., Awaitable[tuple[RPCServer, Echo]]]


@pytest.fixture
async def serve(transport: Transport, topic: str) -> AsyncIterator[Serve]:
    servers: list[RPCServer] = []

    async def start(
        name: str = "h1", *, on: Transport | None = None, prefetch: int | None = None
    ) -> tuple[RPCServer, Echo]:
        endpoint = Echo(name)
        server = RPCServer(on or transport, Target(topic, name), [endpoint], prefetch=prefetch)
        await server.start()
        servers.append(server)
        return server, endpoint

    yield start
    for server in servers:
        await server.stop()
        await server.wait(grace_period=1)


@pytest.fixture
def client(transport: Transport, topic: str) -> RPCClient:
    return RPCClient(transport, Target(topic, version="1.2"), timeout=GUARD)


@pytest.fixture
def context() -> RequestContext:
    return RequestContext(user_id="u1", project_id="p1", roles=["member"], auth_token="tok")


async def test_call_returns_the_result_with_the_context_current(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    await serve()
    result = await client.call(context, "echo", value={"a": [1, 2]})
    assert result == {
        "server": "h1",
        "value": {"a": [1, 2]},
        "request_id": context.request_id,
        "user_id": "u1",
        "roles": ["member"],
        "current_is_context": True,
    }


async def test_plain_def_methods_run_off_the_loop_with_the_context(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    await serve()
    result = await client.call(context, "blocking_echo", value=3)
    assert result == {
        "value": 3,
        "on_loop_thread": False,
        "current_request_id": context.request_id,
    }


async def test_call_to_one_server_reaches_only_that_server(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    _, first = await serve("h1")
    _, second = await serve("h2")
    for _ in range(10):
        assert (await client.prepare(server="h2").call(context, "echo"))["server"] == "h2"
    assert first.calls == []
    assert len(second.calls) == 10


async def test_calls_to_a_topic_are_shared_between_its_servers(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    _, first = await serve("h1")
    _, second = await serve("h2")
    await asyncio.gather(*(client.call(context, "echo") for _ in range(40)))
    assert len(first.calls) + len(second.calls) == 40
    assert first.calls
    assert second.calls


async def test_cast_is_handled_once(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    _, first = await serve("h1")
    _, second = await serve("h2")
    await client.cast(context, "note", value=7)
    async with asyncio.timeout(GUARD):
        done, _ = await asyncio.wait(
            [asyncio.ensure_future(first.casts.get()), asyncio.ensure_future(second.casts.get())],
            return_when=asyncio.FIRST_COMPLETED,
        )
    assert [task.result()[1] for task in done] == [7]
    await client.call(context, "echo")  # a round trip later, still only one cast handled
    assert first.casts.qsize() + second.casts.qsize() == 0


async def test_fanout_cast_reaches_every_server(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    endpoints = [(await serve(f"h{i}"))[1] for i in range(3)]
    await client.prepare(fanout=True).cast(context, "note", value="all")
    async with asyncio.timeout(GUARD):
        received = [await endpoint.casts.get() for endpoint in endpoints]
    assert received == [("h0", "all"), ("h1", "all"), ("h2", "all")]


async def test_call_cannot_fan_out(client: RPCClient, context: RequestContext) -> None:
    with pytest.raises(InvalidTarget, match="cannot be fanned out"):
        await client.prepare(fanout=True).call(context, "echo")


async def test_call_and_cast_to_a_topic_nobody_serves_fail_at_once(
    client: RPCClient, context: RequestContext
) -> None:
    # The client's timeout is the guard: without the error, the call would wait it out.
    with pytest.raises(MessageUndeliverable, match="no server listens on"):
        await client.call(context, "echo")
    with pytest.raises(MessageUndeliverable):
        await client.prepare(server="nowhere").call(context, "echo")
    with pytest.raises(MessageUndeliverable):
        await client.cast(context, "note", value=1)
    with pytest.raises(MessageUndeliverable):
        await client.prepare(server="nowhere").cast(context, "note", value=1)
    await client.prepare(fanout=True).cast(context, "note", value=1)  # to no one: not an error


async def test_a_topic_with_a_server_takes_calls_and_casts_after_one_bounced(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    with pytest.raises(MessageUndeliverable):
        await client.call(context, "echo")
    _, endpoint = await serve("h1")
    assert (await client.call(context, "echo", value=2))["value"] == 2
    await client.cast(context, "note", value=3)
    async with asyncio.timeout(GUARD):
        assert await endpoint.casts.get() == ("h1", 3)


async def test_call_times_out_when_the_server_does_not_answer_in_time(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    _, endpoint = await serve("h1")
    with pytest.raises(MessagingTimeout, match="Timed out waiting for a reply to message ID"):
        await client.prepare(timeout=0.2).call(context, "wait_for_release")
    endpoint.release.set()


async def test_late_reply_is_dropped_and_never_reaches_another_call(
    serve: Serve, client: RPCClient, context: RequestContext, caplog: pytest.LogCaptureFixture
) -> None:
    _, endpoint = await serve()
    with pytest.raises(MessagingTimeout):
        await client.prepare(timeout=0.3).call(context, "wait_for_release")
    assert endpoint.entered.is_set()
    with caplog.at_level(logging.INFO, logger="steward.rpc.replies"):
        endpoint.release.set()
        result = await client.call(context, "echo", value="mine")
    assert result["value"] == "mine"
    # The late reply was either consumed before our call or after it; it never replaced ours.
    async with asyncio.timeout(GUARD):
        while "late reply" not in caplog.text:
            await client.call(context, "echo")
    assert "late reply" in caplog.text


async def test_many_concurrent_calls_share_one_reply_address(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    await serve()
    results = await asyncio.gather(*(client.call(context, "add", a=i) for i in range(200)))
    assert results == [i + 1 for i in range(200)]


async def test_builtin_exceptions_come_back_as_themselves(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    await serve()
    with pytest.raises(ValueError, match="bad value: zzz") as caught:
        await client.call(context, "fail_builtin")
    assert "Remote traceback" in caught.value.__notes__[0]


async def test_other_exceptions_need_allowed_remote_exmods(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    await serve()
    with pytest.raises(RemoteError) as caught:
        await client.call(context, "fail_unlisted")
    assert caught.value.exc_type == "Unlisted"
    assert caught.value.value == "not for you"
    allowed = RPCClient(
        client.transport, client.target, allowed_remote_exmods=[Unlisted.__module__]
    )
    with pytest.raises(Unlisted, match="not for you"):
        await allowed.call(context, "fail_unlisted")


async def test_dispatch_errors_reach_the_caller_and_the_server_keeps_serving(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    server, _ = await serve()
    with pytest.raises(NoSuchMethod, match=r"does not support RPC method nope"):
        await client.call(context, "nope")
    with pytest.raises(NoSuchMethod):
        await client.call(context, "_private")
    with pytest.raises(UnsupportedVersion, match=r"version 2\.0"):
        await client.prepare(version="2.0").call(context, "echo")
    with pytest.raises(UnsupportedVersion):
        await client.prepare(version="1.4").call(context, "echo")
    with pytest.raises(UnsupportedVersion):
        await client.prepare(namespace="other").call(context, "echo")
    with pytest.raises(
        InvalidArguments, match=r"add\(\): argument `a` must be int: .*got a string 'one'"
    ):
        await client.call(context, "add", a="one")
    with pytest.raises(InvalidArguments, match="missing required argument `a`"):
        await client.call(context, "add")
    with pytest.raises(InvalidArguments, match="unexpected argument `c`"):
        await client.call(context, "add", a=1, c=2)
    assert await client.call(context, "add", a=2, b=3) == 5
    assert server.failed == 8


@pytest.fixture
async def reply_catcher(url: str) -> AsyncIterator[tuple[str, asyncio.Queue[wire.JSONDict]]]:
    """A second transport's reply address, collecting the replies sent to it."""
    other = get_transport(url)
    replies: asyncio.Queue[wire.JSONDict] = asyncio.Queue()
    listener = await other.listen_replies(lambda body: replies.put_nowait(wire.decode(body)))
    address = listener.address
    yield address, replies
    await other.close()


async def test_malformed_request_naming_a_reply_address_gets_an_error_reply(
    serve: Serve,
    transport: Transport,
    topic: str,
    reply_catcher: tuple[str, asyncio.Queue[wire.JSONDict]],
    client: RPCClient,
    context: RequestContext,
) -> None:
    await serve()
    address, replies = reply_catcher
    bad = {"method": "echo", "args": ["not", "a", "dict"], "_msg_id": "m1", "_reply_q": address}
    await transport.send(Target(topic), wire.encode(bad))
    async with asyncio.timeout(GUARD):
        reply = wire.parse_reply(await replies.get())
    assert reply.msg_id == "m1"
    assert reply.failure is not None
    failure = orjson.loads(reply.failure)
    assert failure["class"] == "MalformedMessage"
    assert "'args' of 'echo' must be a JSON object" in failure["message"]
    assert (await client.call(context, "echo", value=1))["value"] == 1


async def test_oversized_messages_are_refused_on_both_sides(
    url: str,
    serve: Serve,
    topic: str,
    reply_catcher: tuple[str, asyncio.Queue[wire.JSONDict]],
    client: RPCClient,
    context: RequestContext,
) -> None:
    small: Settings = load_settings(overrides={"max_message_size": 4096})
    small_transport = get_transport(url, settings=small)
    try:
        await serve(on=small_transport)
        with pytest.raises(MessageTooLarge, match="larger than max_message_size"):
            await RPCClient(small_transport, Target(topic)).call(context, "echo", value="x" * 5000)
        # A bigger message from a peer with a larger limit gets a precise error back.
        address, replies = reply_catcher
        big = wire.request("echo", {"value": "x" * 5000}, {}, msg_id="m2", reply_q=address)
        await client.transport.send(Target(topic), wire.encode(big))
        async with asyncio.timeout(GUARD):
            reply = wire.parse_reply(await replies.get())
        assert reply.failure is not None
        assert orjson.loads(reply.failure)["class"] == "MessageTooLarge"
        assert (await client.call(context, "echo", value="small"))["value"] == "small"
    finally:
        await small_transport.close()


async def test_duplicate_messages_are_handled_once(
    serve: Serve, transport: Transport, topic: str, client: RPCClient, context: RequestContext
) -> None:
    _, endpoint = await serve()
    body = wire.encode(wire.request("note", {"value": "once"}, {}))
    await transport.send(Target(topic), body)
    await transport.send(Target(topic), body)
    await client.call(context, "echo")  # the server has seen both by now (one queue, in order)
    async with asyncio.timeout(GUARD):
        assert await endpoint.casts.get() == ("h1", "once")
    await client.call(context, "echo")
    assert endpoint.casts.empty()


async def test_a_copy_of_a_request_still_running_is_held_until_the_original_ends(
    serve: Serve, transport: Transport, topic: str, client: RPCClient, context: RequestContext
) -> None:
    # A broker gives a request back after a lost connection while this server still runs it.
    # Acknowledging the copy at once would lose the request if a stop then cut the original off.
    server, endpoint = await serve()
    body = wire.encode(wire.request("wait_for_release", {}, {}))
    await transport.send(Target(topic), body)
    async with asyncio.timeout(GUARD):
        await endpoint.entered.wait()
    await transport.send(Target(topic), body)
    async with asyncio.timeout(GUARD):
        while server.in_flight < 2:  # noqa: ASYNC110 - the copy arrives through the broker
            await asyncio.sleep(0.01)
    assert endpoint.waiting == 1  # held, not run
    endpoint.release.set()
    async with asyncio.timeout(GUARD):
        while server.in_flight:  # noqa: ASYNC110 - both settle once the original ends
            await asyncio.sleep(0.01)
    await client.call(context, "echo")
    assert endpoint.waiting == 1  # run once


async def test_unfinished_requests_return_to_the_queue_when_a_server_stops(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    first_server, first = await serve("h1")
    await client.cast(context, "wait_for_release")
    async with asyncio.timeout(GUARD):
        await first.entered.wait()
    await first_server.stop()
    await first_server.wait(grace_period=0.1)  # cancels the request, requeues its message
    _, second = await serve("h2")
    second.release.set()
    async with asyncio.timeout(GUARD):
        await second.entered.wait()


async def test_a_cut_off_request_runs_again_when_it_comes_back_to_the_same_server(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    server, endpoint = await serve("h1")
    await client.cast(context, "wait_for_release")
    async with asyncio.timeout(GUARD):
        await endpoint.entered.wait()
    endpoint.entered.clear()
    await server.wait(grace_period=0)  # cancels the request, requeues it; still consuming
    # Its _unique_id was seen, but it never finished: not a duplicate to drop.
    async with asyncio.timeout(GUARD):
        await endpoint.entered.wait()
    endpoint.release.set()
    async with asyncio.timeout(GUARD), endpoint.waiting_changed:
        await endpoint.waiting_changed.wait_for(lambda: endpoint.waiting == 2)


async def test_prefetch_bounds_requests_in_progress(
    serve: Serve, client: RPCClient, context: RequestContext
) -> None:
    server, endpoint = await serve(prefetch=2)
    for _ in range(5):
        await client.prepare(server="h1").cast(context, "wait_for_release")
    async with asyncio.timeout(GUARD), endpoint.waiting_changed:
        await endpoint.waiting_changed.wait_for(lambda: endpoint.waiting >= 2)
    # Give the transport every chance to over-deliver before checking it did not.
    for _ in range(50):
        await asyncio.sleep(0)
    assert endpoint.waiting == 2
    assert server.in_flight == 2
    endpoint.release.set()


# --- bad input fuzz --------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
requestish = st.fixed_dictionaries(
    {},
    optional={
        "method": st.sampled_from(["echo", "add", "nope", "_private", "note", ""])
        | st.text(min_size=1, max_size=3000)  # any name, of any length, unknown ones mostly
        | json_values,
        "args": st.dictionaries(st.sampled_from(["a", "b", "value", "x"]), json_values)
        | json_values,
        "version": st.sampled_from(["1.0", "1.3", "2.0", "x", ""]) | json_values,
        "namespace": st.none() | st.text(max_size=4) | json_values,
        "_unique_id": st.text(max_size=8) | json_values,
        "_context_request_id": json_values,
        "_context_roles": json_values,
        "_context_timestamp": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(orjson.dumps),
    requestish.map(orjson.dumps),
    requestish.map(wire.encode),
    st.tuples(st.sampled_from(["1.0", "2.0", "3.0", 2]), requestish).map(
        lambda pair: orjson.dumps(
            {"oslo.version": pair[0], "oslo.message": orjson.dumps(pair[1]).decode()}
        )
    ),
)


class _ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def error_log() -> Iterator[_ErrorCounter]:
    handler = _ErrorCounter()
    logger = logging.getLogger("steward")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


async def _fuzz(url: str, payloads: list[bytes]) -> Any:
    transport = get_transport(url)
    topic = f"fuzz_{uuid.uuid4().hex[:12]}"
    server = RPCServer(transport, Target(topic, "h1"), [Echo("h1")])
    await server.start()
    try:
        for body in payloads:
            await transport.send(Target(topic), body)
            await transport.send(Target(topic, "h1"), body)
        client = RPCClient(transport, Target(topic), timeout=GUARD)
        return await client.call(RequestContext(), "add", a=40, b=2)
    finally:
        await server.stop()
        await server.wait(grace_period=5)
        await transport.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payloads=st.lists(bodies, min_size=1, max_size=40))
def test_server_survives_arbitrary_bodies_and_still_answers(
    url: str, error_log: _ErrorCounter, payloads: list[bytes]
) -> None:
    assert asyncio.run(_fuzz(url, payloads)) == 42
    assert [record.getMessage() for record in error_log.records] == []


# JSON edge values as an oslo peer writes them (stdlib json): NaN, Infinity, integers beyond 64
# bits, lone surrogates, deep nesting, in arguments, context flags and envelope fields.
edge_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(2**64) - 2, 2**64 + 2)
    | st.integers()
    | st.text(st.characters(exclude_categories=()), max_size=8)
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=10,
)
edge_requests = st.fixed_dictionaries(
    {"method": st.sampled_from(["echo", "add", "note", "blocking_echo"]) | edge_json_values},
    optional={
        "args": st.dictionaries(st.sampled_from(["a", "b", "value"]), edge_json_values)
        | edge_json_values,
        "version": st.sampled_from(["1.0", "2.0"]) | edge_json_values,
        "_timeout": edge_json_values,
        "_context_is_admin": edge_json_values,
        "_context_read_only": edge_json_values,
        "_context_roles": edge_json_values,
        "_context_timestamp": edge_json_values,
    },
)
edge_bodies = st.one_of(
    edge_requests.map(lambda inner: json.dumps(inner).encode()),  # oslo's legacy 1.0 format
    edge_requests.map(
        lambda inner: json.dumps(
            {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}
        ).encode()
    ),
    edge_json_values.map(lambda value: json.dumps(value).encode()),
    st.text(max_size=3).map(
        lambda junk: b'{"method": "echo", "args": {"value": NaN' + junk.encode()
    ),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payloads=st.lists(edge_bodies, min_size=1, max_size=30))
def test_server_survives_json_edge_values_and_still_answers(
    url: str, error_log: _ErrorCounter, payloads: list[bytes]
) -> None:
    assert asyncio.run(_fuzz(url, payloads)) == 42
    assert [record.getMessage() for record in error_log.records] == []
