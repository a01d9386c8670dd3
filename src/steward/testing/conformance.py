"""The transport conformance suite: what every steward transport does, checked the same way.

steward runs it for ``memory://``, ``amqp://`` and ``nats://`` (``tests/steward/rpc/transports/
test_conformance.py``); a transport of your own proves itself with it the same way. Subclass
:class:`TransportConformance` in a test module (its name starting with ``Test``) and give it a
``transport_factory`` fixture: a :class:`TransportFactory` returning a new, unstarted transport
on the same bus each time it is called. The suite calls it for the transport under test, for a
second transport on the same bus (another process's, say) and for one with other settings::

    import pytest
    from steward.testing.conformance import TransportConformance, TransportFactory

    class TestMyTransport(TransportConformance):
        @pytest.fixture
        def transport_factory(self) -> TransportFactory:
            return lambda *, settings=None: MyTransport("my://bus", settings=settings)

Every check is a method, so a subclass can skip one that does not apply by overriding it. The
checks use servers (:class:`~steward.rpc.RPCServer`) and clients
(:class:`~steward.rpc.RPCClient`) as an application does, plus raw ``send`` and
``listen_replies`` where a peer misbehaves. Two of them wait for a call's timeout (0.2 s and
0.3 s): run a transport that lives in the event loop on a virtual loop clock
(``pytestmark = pytest.mark.looptime`` on the subclass) and those waits take no real time.

This module imports pytest, pytest-asyncio and hypothesis: import it from test modules only. Its
async checks are marked ``asyncio``, so they run in pytest-asyncio's strict mode as in auto mode.
It is one module past 400 lines on purpose: one suite, the checks with the endpoint they call and
the fuzz strategies they send.
"""

# A test module shipped in the package: checks assert, are named for what they check rather than
# documented, take fixtures positionally, and send made-up tokens and any JSON.
# ruff: noqa: S101, D102, PLR0917, ANN401, S106

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol

import orjson
import pytest
import pytest_asyncio
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
from steward.rpc import RPCClient, RPCServer, Target, wire
from steward.rpc.transports.base import Transport

__all__ = ["GUARD", "TransportConformance", "TransportFactory"]

GUARD = 20.0
"""Seconds a check waits for what should happen almost at once: a guard, never a measure."""


class TransportFactory(Protocol):
    """Returns a new, unstarted transport on the bus under test; the suite closes it.

    Every transport it returns reaches the others (same broker, same virtual host or namespace).
    ``settings`` (None: the process's) are the settings the transport takes its options and
    ``max_message_size`` from.
    """

    def __call__(self, *, settings: Settings | None = None) -> Transport: ...


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


# --- what the fuzz checks send ----------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
_requestish = st.fixed_dictionaries(
    {},
    optional={
        "method": st.sampled_from(["echo", "add", "nope", "_private", "note", ""])
        | st.text(min_size=1, max_size=3000)  # any name, of any length, unknown ones mostly
        | _json_values,
        "args": st.dictionaries(st.sampled_from(["a", "b", "value", "x"]), _json_values)
        | _json_values,
        "version": st.sampled_from(["1.0", "1.3", "2.0", "x", ""]) | _json_values,
        "namespace": st.none() | st.text(max_size=4) | _json_values,
        "_unique_id": st.text(max_size=8) | _json_values,
        "_context_request_id": _json_values,
        "_context_roles": _json_values,
        "_context_timestamp": _json_values,
    },
)
_bodies = st.one_of(
    st.binary(max_size=200),
    _json_values.map(orjson.dumps),
    _requestish.map(orjson.dumps),
    _requestish.map(wire.encode),
    st.tuples(st.sampled_from(["1.0", "2.0", "3.0", 2]), _requestish).map(
        lambda pair: orjson.dumps(
            {"oslo.version": pair[0], "oslo.message": orjson.dumps(pair[1]).decode()}
        )
    ),
)


# JSON edge values as an oslo peer writes them (stdlib json): NaN, Infinity, integers beyond 64
# bits, lone surrogates, deep nesting, in arguments, context flags and envelope fields.
_edge_json_values = st.recursive(
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
_edge_requests = st.fixed_dictionaries(
    {"method": st.sampled_from(["echo", "add", "note", "blocking_echo"]) | _edge_json_values},
    optional={
        "args": st.dictionaries(st.sampled_from(["a", "b", "value"]), _edge_json_values)
        | _edge_json_values,
        "version": st.sampled_from(["1.0", "2.0"]) | _edge_json_values,
        "_timeout": _edge_json_values,
        "_context_is_admin": _edge_json_values,
        "_context_read_only": _edge_json_values,
        "_context_roles": _edge_json_values,
        "_context_timestamp": _edge_json_values,
    },
)
_edge_bodies = st.one_of(
    _edge_requests.map(lambda inner: json.dumps(inner).encode()),  # oslo's legacy 1.0 format
    _edge_requests.map(
        lambda inner: json.dumps(
            {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}
        ).encode()
    ),
    _edge_json_values.map(lambda value: json.dumps(value).encode()),
    st.text(max_size=3).map(
        lambda junk: b'{"method": "echo", "args": {"value": NaN' + junk.encode()
    ),
)


class _LogWatch(logging.Handler):
    """Lets a check wait until a logger has written a line matching a pattern."""

    def __init__(self, pattern: str) -> None:
        super().__init__(level=logging.DEBUG)
        self.regex = re.compile(pattern)
        self.seen = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        if self.regex.search(record.getMessage()):
            self.loop.call_soon_threadsafe(self.seen.set)


@contextlib.contextmanager
def _watch_log(logger_name: str, pattern: str) -> Iterator[_LogWatch]:
    logger = logging.getLogger(logger_name)
    watch = _LogWatch(pattern)
    level = logger.level
    logger.setLevel(min(level or logging.INFO, logging.INFO))
    logger.addHandler(watch)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(level)


class _ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def _fuzz(transport_factory: TransportFactory, payloads: list[bytes]) -> Any:
    transport = transport_factory()
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


Serve = Callable[..., Awaitable[tuple[RPCServer, Echo]]]
ReplyCatcher = tuple[str, "asyncio.Queue[wire.JSONDict]"]


class TransportConformance:
    """The checks every transport passes; subclass it and provide ``transport_factory``.

    See the module docstring. The fixtures below (``transport``, ``serve``, ``client``, ...) are
    the suite's own; a subclass may override them, though it rarely needs to.
    """

    # --- fixtures ------------------------------------------------------------------------------

    @pytest.fixture
    def topic(self) -> str:
        """Return a topic of the check's own."""
        return f"conformance_{uuid.uuid4().hex[:12]}"

    @pytest_asyncio.fixture
    async def transport(self, transport_factory: TransportFactory) -> AsyncIterator[Transport]:
        """Yield the transport under test; close it after the check."""
        transport = transport_factory()
        yield transport
        await transport.close()

    @pytest_asyncio.fixture
    async def serve(self, transport: Transport, topic: str) -> AsyncIterator[Serve]:
        """Start an :class:`Echo` server on ``topic``; the servers are stopped after the check."""
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
    def client(self, transport: Transport, topic: str) -> RPCClient:
        """Return a client of ``topic`` at version 1.2, its timeout the guard."""
        return RPCClient(transport, Target(topic, version="1.2"), timeout=GUARD)

    @pytest.fixture
    def context(self) -> RequestContext:
        """Return the request context the checks send."""
        return RequestContext(user_id="u1", project_id="p1", roles=["member"], auth_token="tok")

    @pytest_asyncio.fixture
    async def reply_catcher(
        self, transport_factory: TransportFactory
    ) -> AsyncIterator[ReplyCatcher]:
        """Yield a second transport's reply address and the queue of replies sent to it."""
        other = transport_factory()
        replies: asyncio.Queue[wire.JSONDict] = asyncio.Queue()
        listener = await other.listen_replies(lambda body: replies.put_nowait(wire.decode(body)))
        yield listener.address, replies
        await other.close()

    @pytest.fixture
    def error_log(self) -> Iterator[_ErrorCounter]:
        """Yield a handler counting the errors steward logs during the check."""
        handler = _ErrorCounter()
        logger = logging.getLogger("steward")
        logger.addHandler(handler)
        yield handler
        logger.removeHandler(handler)

    # --- checks --------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_call_returns_the_result_with_the_context_current(
        self, serve: Serve, client: RPCClient, context: RequestContext
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

    @pytest.mark.asyncio
    async def test_plain_def_methods_run_off_the_loop_with_the_context(
        self, serve: Serve, client: RPCClient, context: RequestContext
    ) -> None:
        await serve()
        result = await client.call(context, "blocking_echo", value=3)
        assert result == {
            "value": 3,
            "on_loop_thread": False,
            "current_request_id": context.request_id,
        }

    @pytest.mark.asyncio
    async def test_call_to_one_server_reaches_only_that_server(
        self, serve: Serve, client: RPCClient, context: RequestContext
    ) -> None:
        _, first = await serve("h1")
        _, second = await serve("h2")
        for _ in range(10):
            assert (await client.prepare(server="h2").call(context, "echo"))["server"] == "h2"
        assert first.calls == []
        assert len(second.calls) == 10

    @pytest.mark.asyncio
    async def test_calls_to_a_topic_are_shared_between_its_servers(
        self, serve: Serve, client: RPCClient, context: RequestContext
    ) -> None:
        _, first = await serve("h1")
        _, second = await serve("h2")
        await asyncio.gather(*(client.call(context, "echo") for _ in range(40)))
        assert len(first.calls) + len(second.calls) == 40
        assert first.calls
        assert second.calls

    @pytest.mark.asyncio
    async def test_cast_is_handled_once(
        self, serve: Serve, client: RPCClient, context: RequestContext
    ) -> None:
        _, first = await serve("h1")
        _, second = await serve("h2")
        await client.cast(context, "note", value=7)
        async with asyncio.timeout(GUARD), asyncio.TaskGroup() as waiting:
            gets = [waiting.create_task(first.casts.get()), waiting.create_task(second.casts.get())]
            done, pending = await asyncio.wait(gets, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:  # the other server's: nothing comes
                task.cancel()
        assert [task.result()[1] for task in done] == [7]
        await client.call(context, "echo")  # a round trip later, still only one cast handled
        assert first.casts.qsize() + second.casts.qsize() == 0

    @pytest.mark.asyncio
    async def test_fanout_cast_reaches_every_server(
        self, serve: Serve, client: RPCClient, context: RequestContext
    ) -> None:
        endpoints = [(await serve(f"h{i}"))[1] for i in range(3)]
        await client.prepare(fanout=True).cast(context, "note", value="all")
        async with asyncio.timeout(GUARD):
            received = [await endpoint.casts.get() for endpoint in endpoints]
        assert received == [("h0", "all"), ("h1", "all"), ("h2", "all")]

    @pytest.mark.asyncio
    async def test_call_cannot_fan_out(self, client: RPCClient, context: RequestContext) -> None:
        with pytest.raises(InvalidTarget, match="cannot be fanned out"):
            await client.prepare(fanout=True).call(context, "echo")

    @pytest.mark.asyncio
    async def test_call_and_cast_to_a_topic_nobody_serves_fail_at_once(
        self, client: RPCClient, context: RequestContext
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

    @pytest.mark.asyncio
    async def test_a_topic_with_a_server_takes_calls_and_casts_after_one_bounced(
        self, serve: Serve, client: RPCClient, context: RequestContext
    ) -> None:
        with pytest.raises(MessageUndeliverable):
            await client.call(context, "echo")
        _, endpoint = await serve("h1")
        assert (await client.call(context, "echo", value=2))["value"] == 2
        await client.cast(context, "note", value=3)
        async with asyncio.timeout(GUARD):
            assert await endpoint.casts.get() == ("h1", 3)

    @pytest.mark.asyncio
    async def test_call_times_out_when_the_server_does_not_answer_in_time(
        self, serve: Serve, client: RPCClient, context: RequestContext
    ) -> None:
        _, endpoint = await serve("h1")
        with pytest.raises(MessagingTimeout, match="Timed out waiting for a reply to message ID"):
            await client.prepare(timeout=0.2).call(context, "wait_for_release")
        endpoint.release.set()

    @pytest.mark.asyncio
    async def test_late_reply_is_dropped_and_never_reaches_another_call(
        self,
        serve: Serve,
        client: RPCClient,
        context: RequestContext,
    ) -> None:
        _, endpoint = await serve()
        with pytest.raises(MessagingTimeout):
            await client.prepare(timeout=0.3).call(context, "wait_for_release")
        assert endpoint.entered.is_set()
        with _watch_log("steward.rpc", r"\(late reply\); dropped") as late:
            endpoint.release.set()
            result = await client.call(context, "echo", value="mine")
            # The late reply was consumed before our call or after it; it never replaced ours.
            assert result["value"] == "mine"
            async with asyncio.timeout(GUARD):
                await late.seen.wait()

    @pytest.mark.asyncio
    async def test_many_concurrent_calls_share_one_reply_address(
        self, serve: Serve, client: RPCClient, context: RequestContext
    ) -> None:
        await serve()
        results = await asyncio.gather(*(client.call(context, "add", a=i) for i in range(200)))
        assert results == [i + 1 for i in range(200)]

    @pytest.mark.asyncio
    async def test_builtin_exceptions_come_back_as_themselves(
        self, serve: Serve, client: RPCClient, context: RequestContext
    ) -> None:
        await serve()
        with pytest.raises(ValueError, match="bad value: zzz") as caught:
            await client.call(context, "fail_builtin")
        assert "Remote traceback" in caught.value.__notes__[0]

    @pytest.mark.asyncio
    async def test_other_exceptions_need_allowed_remote_exmods(
        self, serve: Serve, client: RPCClient, context: RequestContext
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

    @pytest.mark.asyncio
    async def test_dispatch_errors_reach_the_caller_and_the_server_keeps_serving(
        self, serve: Serve, client: RPCClient, context: RequestContext
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

    @pytest.mark.asyncio
    async def test_malformed_request_naming_a_reply_address_gets_an_error_reply(
        self,
        serve: Serve,
        transport: Transport,
        topic: str,
        reply_catcher: ReplyCatcher,
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

    @pytest.mark.asyncio
    async def test_oversized_messages_are_refused_on_both_sides(
        self,
        transport_factory: TransportFactory,
        serve: Serve,
        topic: str,
        reply_catcher: ReplyCatcher,
        client: RPCClient,
        context: RequestContext,
    ) -> None:
        small: Settings = load_settings(overrides={"max_message_size": 4096})
        small_transport = transport_factory(settings=small)
        try:
            await serve(on=small_transport)
            with pytest.raises(MessageTooLarge, match="larger than max_message_size"):
                await RPCClient(small_transport, Target(topic)).call(
                    context, "echo", value="x" * 5000
                )
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

    @pytest.mark.asyncio
    async def test_duplicate_messages_are_handled_once(
        self,
        serve: Serve,
        transport: Transport,
        topic: str,
        client: RPCClient,
        context: RequestContext,
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

    @pytest.mark.asyncio
    async def test_a_copy_of_a_request_still_running_is_held_until_the_original_ends(
        self,
        serve: Serve,
        transport: Transport,
        topic: str,
        client: RPCClient,
        context: RequestContext,
    ) -> None:
        # A broker gives a request back after a lost connection while this server still runs it.
        # Acknowledging the copy at once would lose the request if a stop then cut the original off.
        server, endpoint = await serve()
        body = wire.encode(wire.request("wait_for_release", {}, {}))
        await transport.send(Target(topic), body)
        async with asyncio.timeout(GUARD):
            await endpoint.entered.wait()
        with _watch_log("steward.rpc", "is being handled; holding its copy") as held:
            await transport.send(Target(topic), body)
            async with asyncio.timeout(GUARD):
                await held.seen.wait()  # the copy came back through the broker
        assert server.in_flight == 2
        assert endpoint.waiting == 1  # held, not run
        endpoint.release.set()
        async with asyncio.timeout(GUARD):
            await server.wait()  # both settle once the original ends
        assert server.in_flight == 0
        await client.call(context, "echo")
        assert endpoint.waiting == 1  # run once

    @pytest.mark.asyncio
    async def test_unfinished_requests_return_to_the_queue_when_a_server_stops(
        self, serve: Serve, client: RPCClient, context: RequestContext
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

    @pytest.mark.asyncio
    async def test_a_cut_off_request_runs_again_when_it_comes_back_to_the_same_server(
        self, serve: Serve, client: RPCClient, context: RequestContext
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

    @pytest.mark.asyncio
    async def test_prefetch_bounds_requests_in_progress(
        self, serve: Serve, client: RPCClient, context: RequestContext
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

    # --- bad input fuzz ------------------------------------------------------------------------

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(payloads=st.lists(_bodies, min_size=1, max_size=40))
    def test_server_survives_arbitrary_bodies_and_still_answers(
        self, transport_factory: TransportFactory, error_log: _ErrorCounter, payloads: list[bytes]
    ) -> None:
        assert asyncio.run(_fuzz(transport_factory, payloads)) == 42
        assert [record.getMessage() for record in error_log.records] == []

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(payloads=st.lists(_edge_bodies, min_size=1, max_size=30))
    def test_server_survives_json_edge_values_and_still_answers(
        self, transport_factory: TransportFactory, error_log: _ErrorCounter, payloads: list[bytes]
    ) -> None:
        assert asyncio.run(_fuzz(transport_factory, payloads)) == 42
        assert [record.getMessage() for record in error_log.records] == []
