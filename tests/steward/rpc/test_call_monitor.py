"""Call-monitor heartbeats (oslo's ``call_monitor_timeout``) between steward peers on memory://.

Every wait here is a loop timer, so the tests run on looptime's virtual clock and assert exact
virtual times; the oslo.messaging side of the story is in ``test_oslo_monitor.py``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from steward.context import RequestContext
from steward.errors import MessagingTimeout
from steward.rpc import RPCClient, RPCServer, Target, wire
from steward.rpc.replies import PendingCall
from steward.rpc.transports.base import IncomingMessage
from steward.rpc.transports.memory import MemoryTransport

pytestmark = pytest.mark.looptime


class RecordingTransport(MemoryTransport):
    """A memory transport that keeps each reply it sends, with the loop time it was sent at."""

    def __init__(self, url: str, *, fail_heartbeats: int = 0) -> None:
        super().__init__(url)
        self.sent: list[tuple[float, wire.Reply]] = []
        self.fail_heartbeats = fail_heartbeats

    async def send_reply(self, reply_to: str, body: bytes) -> None:
        reply = wire.parse_reply(wire.decode(body))
        if not reply.ending and self.fail_heartbeats:
            self.fail_heartbeats -= 1
            raise ConnectionError("the broker went away")
        self.sent.append((asyncio.get_running_loop().time(), reply))
        await super().send_reply(reply_to, body)

    def heartbeats(self) -> list[float]:
        return [at for at, reply in self.sent if not reply.ending]


def now() -> float:
    """The loop's clock: looptime's virtual seconds."""
    return asyncio.get_running_loop().time()


class Slow:
    """Takes as long as asked, on the loop's clock."""

    def __init__(self) -> None:
        self.finished = asyncio.Event()

    async def work(self, context: RequestContext, seconds: float) -> str:
        await asyncio.sleep(seconds)
        self.finished.set()
        return f"worked {seconds:g} s"


@pytest.fixture
def url() -> str:
    return f"memory://monitor-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def server_transport(url: str) -> AsyncIterator[RecordingTransport]:
    transport = RecordingTransport(url)
    yield transport
    await transport.close()


@pytest.fixture
async def client_transport(url: str) -> AsyncIterator[MemoryTransport]:
    transport = MemoryTransport(url)
    yield transport
    await transport.close()


@pytest.fixture
async def slow(server_transport: RecordingTransport) -> AsyncIterator[Slow]:
    endpoint = Slow()
    async with RPCServer(server_transport, Target("slow", "h1"), [endpoint]):
        yield endpoint


async def test_a_call_longer_than_the_monitor_succeeds_on_heartbeats(
    client_transport: MemoryTransport,
    server_transport: RecordingTransport,
    slow: Slow,
) -> None:
    client = RPCClient(client_transport, Target("slow"), timeout=60, call_monitor_timeout=2)
    start = now()
    assert await client.call(RequestContext(), "work", seconds=5.5) == "worked 5.5 s"
    assert now() - start == 5.5
    # Every T/2 = 1 s while the method runs (oslo's interval), then the one final reply.
    assert [at - start for at in server_transport.heartbeats()] == [1, 2, 3, 4, 5]
    assert [reply.ending for _, reply in server_transport.sent] == [False] * 5 + [True]


async def test_heartbeats_stop_the_moment_the_method_returns(
    client_transport: MemoryTransport,
    server_transport: RecordingTransport,
    slow: Slow,
) -> None:
    client = RPCClient(client_transport, Target("slow"), call_monitor_timeout=4)
    start = now()
    await client.call(RequestContext(), "work", seconds=4.5)
    await asyncio.sleep(30)  # virtual: a heartbeat timer left running would send in here
    # T = 4: every 2 s; the method returned at 4.5 s, so nothing after that.
    assert [at - start for at in server_transport.heartbeats()] == [2, 4]
    assert server_transport.sent[-1][1].ending
    assert server_transport.sent[-1][0] - start == 4.5


async def test_no_heartbeats_without_a_monitor_or_below_oslos_minimum(
    client_transport: MemoryTransport,
    server_transport: RecordingTransport,
    slow: Slow,
) -> None:
    await RPCClient(client_transport, Target("slow"), timeout=60).call(None, "work", seconds=5)
    # oslo takes int(T) / 2 and sends nothing when that is under a second.
    await RPCClient(client_transport, Target("slow"), call_monitor_timeout=1.9).call(
        None, "work", seconds=1.5
    )
    assert server_transport.heartbeats() == []
    assert len(server_transport.sent) == 2


async def test_a_call_to_a_server_that_swallows_it_fails_after_the_monitor(
    client_transport: MemoryTransport,
) -> None:
    async def swallow(message: IncomingMessage) -> None:
        """Take the request and never answer (a server that died with it)."""

    await client_transport.listen(Target("void", "h1"), swallow, prefetch=1)
    client = RPCClient(client_transport, Target("void"), timeout=60, call_monitor_timeout=2)
    start = now()
    with pytest.raises(MessagingTimeout, match=r"call_monitor_timeout=2 s \(0 heartbeats"):
        await client.call(RequestContext(), "work", seconds=1)
    assert now() - start == 2
    assert client_transport.replies.waiting == 0


async def test_a_server_that_stops_heartbeating_mid_call_is_noticed_a_monitor_later(
    client_transport: MemoryTransport, url: str
) -> None:
    server = MemoryTransport(url)
    beats = 3

    async def beat_then_die(message: IncomingMessage) -> None:
        """Heartbeat every second, three times, then go silent (the server died mid-call)."""
        request = wire.parse_request(wire.decode(message.body))
        assert request.msg_id is not None
        assert request.reply_q is not None
        assert request.call_monitor_timeout == 2
        for _ in range(beats):
            await asyncio.sleep(1)
            body = wire.encode(wire.reply(request.msg_id, ending=False))
            await server.send_reply(request.reply_q, body)

    try:
        await server.listen(Target("dying", "h1"), beat_then_die, prefetch=1)
        client = RPCClient(client_transport, Target("dying"), timeout=60, call_monitor_timeout=2)
        start = now()
        with pytest.raises(MessagingTimeout, match=r"call_monitor_timeout=2 s \(3 heartbeats"):
            await client.call(RequestContext(), "work", seconds=1)
        assert now() - start == beats + 2  # the last heartbeat, then a whole monitor period
    finally:
        await server.close()


async def test_the_calls_timeout_still_bounds_a_call_that_heartbeats(
    client_transport: MemoryTransport, slow: Slow
) -> None:
    client = RPCClient(client_transport, Target("slow"), timeout=7, call_monitor_timeout=2)
    start = now()
    with pytest.raises(MessagingTimeout, match=r"after 7 s: the call's timeout") as raised:
        await client.call(RequestContext(), "work", seconds=100)
    assert now() - start == 7
    assert "call_monitor_timeout" not in str(raised.value)


async def test_a_failed_heartbeat_is_logged_and_the_call_goes_on(
    client_transport: MemoryTransport,
    url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server_transport = RecordingTransport(url, fail_heartbeats=1)
    server = RPCServer(server_transport, Target("slow", "h1"), [Slow()])
    try:
        await server.start()
        client = RPCClient(client_transport, Target("slow"), call_monitor_timeout=4)
        # The first heartbeat (at 2 s) fails; as oslo, the server sends no more, and the method,
        # done before the caller's monitor runs out, still answers.
        with caplog.at_level(logging.WARNING, logger="steward.rpc.server"):
            assert await client.call(RequestContext(), "work", seconds=3.5) == "worked 3.5 s"
        assert server_transport.heartbeats() == []
        assert server.failure is None
        assert "Could not send a call-monitor heartbeat for work" in caplog.text
        assert "sending no more" in caplog.text
    finally:
        await server.aclose()
        await server_transport.close()


async def test_prepare_sets_the_monitor_and_the_request_carries_it(
    client_transport: MemoryTransport,
) -> None:
    requests: asyncio.Queue[wire.Request] = asyncio.Queue()

    async def note(message: IncomingMessage) -> None:
        requests.put_nowait(wire.parse_request(wire.decode(message.body)))

    await client_transport.listen(Target("note", "h1"), note, prefetch=0)
    client = RPCClient(client_transport, Target("note"), timeout=1)
    with pytest.raises(MessagingTimeout):
        await client.call(None, "x")
    with pytest.raises(MessagingTimeout):
        await client.prepare(call_monitor_timeout=3).call(None, "x")
    # oslo sends "_timeout": null without a monitor, the number with one.
    assert (await requests.get()).call_monitor_timeout is None
    assert (await requests.get()).call_monitor_timeout == 3
    assert client.prepare(call_monitor_timeout=3).prepare().call_monitor_timeout == 3
    assert (
        client.prepare(call_monitor_timeout=3)
        .prepare(call_monitor_timeout=None)
        .call_monitor_timeout
        is None
    )


async def test_a_pending_call_counts_heartbeats_and_resolves_on_the_final_reply(
    client_transport: MemoryTransport,
) -> None:
    router = client_transport.replies
    address = await router.address()
    call = router.expect("m1")
    assert isinstance(call, PendingCall)
    for _ in range(2):
        await client_transport.send_reply(address, wire.encode(wire.reply("m1", ending=False)))
    assert call.heartbeats == 2
    assert call.heartbeat.is_set()
    assert not call.done
    await client_transport.send_reply(address, wire.encode(wire.reply("m1", result=7)))
    reply = await call.wait(call_monitor_timeout=1)
    assert reply.result == 7
    router.forget("m1")
    assert router.waiting == 0


def test_a_bad_monitor_is_refused() -> None:
    with pytest.raises(ValueError, match="`call_monitor_timeout` must be a number of seconds > 0"):
        RPCClient(MemoryTransport(), Target("x"), call_monitor_timeout=0)
