"""RPCServer against hostile input: names of any length, malformed requests with a reply address."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steward.context import RequestContext
from steward.errors import InvalidArguments, MalformedMessage, NoSuchMethod, UnsupportedVersion
from steward.rpc import RPCClient, RPCServer, Target, get_transport, wire
from steward.rpc.server import UNKNOWN_METHOD
from steward.rpc.transports.base import Transport

HUGE = 1024 * 1024


class Echo:
    target = Target(version="1.3")

    def echo(self, context: RequestContext, value: int) -> int:
        return value


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    transport = get_transport("memory://")
    yield transport
    await transport.close()


@pytest.fixture
async def server(transport: Transport) -> AsyncIterator[RPCServer]:
    server = RPCServer(transport, Target("echo", "h1"), [Echo()])
    await server.start()
    yield server
    await server.stop()
    await server.wait()


async def test_unknown_method_names_share_one_series_and_stay_short_everywhere(
    transport: Transport, server: RPCServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = RPCClient(transport, Target("echo"), timeout=30)
    caplog.set_level(logging.DEBUG)
    for letter in "abcdefgh":
        with pytest.raises(NoSuchMethod) as raised:
            await client.call(None, letter * HUGE)
        assert len(str(raised.value)) < 300
    with pytest.raises(UnsupportedVersion) as unsupported:
        await client.prepare(version="1.9").call(None, "z" * HUGE)
    assert len(str(unsupported.value)) < 300
    assert await client.call(None, "echo", value=3) == 3
    assert set(server.method_stats) == {UNKNOWN_METHOD, "echo"}
    assert server.method_stats[UNKNOWN_METHOD].calls == 9
    assert server.method_stats[UNKNOWN_METHOD].failures == 9
    longest = max(len(record.getMessage()) for record in caplog.records)
    assert longest < 1000


async def test_an_unexpected_argument_counts_under_its_method(
    transport: Transport, server: RPCServer
) -> None:
    client = RPCClient(transport, Target("echo"), timeout=30)
    with pytest.raises(InvalidArguments):
        await client.call(None, "echo", value=1, other=2)
    assert set(server.method_stats) == {"echo"}
    assert server.method_stats["echo"].failures == 1


class Replies:
    """A reply address of the test's own on the transport, and what arrives there."""

    def __init__(self) -> None:
        self.arrived: asyncio.Queue[wire.Reply] = asyncio.Queue()

    def __call__(self, body: bytes) -> None:
        self.arrived.put_nowait(wire.parse_reply(wire.decode(body)))


def request_body(reply_q: str, **changes: Any) -> bytes:
    inner: dict[str, Any] = {
        "method": "echo",
        "args": {"value": 1},
        "version": "1.0",
        "_msg_id": "m1",
        "_reply_q": reply_q,
        "_unique_id": "u1",
    }
    inner.update(changes)
    return orjson.dumps({"oslo.version": "2.0", "oslo.message": orjson.dumps(inner).decode()})


@pytest.mark.parametrize(
    ("changes", "envelope_version"),
    [
        ({}, "3.0"),
        ({}, "x" * HUGE),
        ({"args": ["not", "an", "object"]}, "2.0"),
        ({"version": 2}, "2.0"),
        ({"version": "1." + "9" * 5000}, "2.0"),
        ({"namespace": 5}, "2.0"),
        ({"method": None}, "2.0"),
        ({"method": ["echo"]}, "2.0"),
    ],
    ids=[
        "envelope-3.0",
        "envelope-huge",
        "args-list",
        "version-int",
        "version-huge",
        "namespace-int",
        "no-method",
        "method-list",
    ],
)
async def test_a_malformed_request_with_a_reply_address_is_answered_at_once(
    transport: Transport,
    server: RPCServer,
    changes: dict[str, Any],
    envelope_version: str,
) -> None:
    replies = Replies()
    reply_q = (await transport.listen_replies(replies)).address
    body = request_body(reply_q, **changes)
    outer = orjson.loads(body)
    outer["oslo.version"] = envelope_version
    await transport.send(Target("echo"), orjson.dumps(outer), confirm=False)
    async with asyncio.timeout(30):  # a guard: the reply comes at once, or never without the fix
        reply = await replies.arrived.get()
    assert reply.msg_id == "m1"
    assert reply.failure is not None
    error = wire.deserialize_failure(reply.failure)
    assert isinstance(error, MalformedMessage)
    assert len(str(error)) < 300


async def test_a_body_that_is_not_json_is_rejected_and_the_server_goes_on(
    transport: Transport, server: RPCServer
) -> None:
    await transport.send(Target("echo"), b"\xff{not json", confirm=False)
    client = RPCClient(transport, Target("echo"), timeout=30)
    assert await client.call(None, "echo", value=7) == 7


method_names = st.one_of(
    st.text(min_size=1, max_size=300),
    st.builds(lambda char, length: char * length, st.characters(), st.integers(1, 200_000)),
).filter(lambda name: name != "echo")


async def _call_unknown(names: list[str]) -> tuple[list[str], dict[str, int], int]:
    transport = get_transport("memory://")
    server = RPCServer(transport, Target("echo", "h1"), [Echo()])
    await server.start()
    handler = _LongestMessage()
    logging.getLogger("steward").addHandler(handler)
    try:
        client = RPCClient(transport, Target("echo"), timeout=30)
        errors = []
        for name in names:
            with pytest.raises((NoSuchMethod, InvalidArguments, UnsupportedVersion)) as raised:
                await client.call(None, name)
            errors.append(str(raised.value))
        assert await client.call(None, "echo", value=5) == 5
        return errors, {key: s.calls for key, s in server.method_stats.items()}, handler.longest
    finally:
        logging.getLogger("steward").removeHandler(handler)
        await server.stop()
        await server.wait()
        await transport.close()


class _LongestMessage(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.longest = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.longest = max(self.longest, len(record.getMessage()))


@settings(max_examples=40, deadline=None)
@given(names=st.lists(method_names, min_size=1, max_size=8))
def test_fuzzed_method_names_are_refused_briefly_and_counted_in_one_series(
    names: list[str],
) -> None:
    errors, stats, longest = asyncio.run(_call_unknown(names))
    assert all(len(error) < 400 for error in errors)
    assert set(stats) <= {UNKNOWN_METHOD, "echo"}
    assert stats.get(UNKNOWN_METHOD) == len(names)
    assert longest < 1000


async def test_thousands_of_bad_arguments_give_a_short_error(
    transport: Transport, server: RPCServer
) -> None:
    client = RPCClient(transport, Target("echo"), timeout=30)
    extra = {f"{'n' * 1000}{index}": index for index in range(2000)}
    with pytest.raises(InvalidArguments) as raised:
        await client.call(None, "echo", value="x", **extra)
    message = str(raised.value)
    assert "and 1996 more problems" in message
    assert len(message) < 2000
