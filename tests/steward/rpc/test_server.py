"""RPCServer against hostile input: names of any length, malformed requests with a reply address."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

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
    reply_q = await transport.listen_replies(replies)
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
