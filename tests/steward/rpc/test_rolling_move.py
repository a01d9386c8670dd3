"""A rolling move of one topic from oslo.messaging servers to steward servers and back, under load.

Three servers serve one topic on the real RabbitMQ (a vhost of the test's own). They start as
unmodified oslo.messaging servers; one at a time, each is stopped gracefully and a steward server
of the same host name takes its place (the move), then the other way round (the rollback), while
clients of one kind (oslo in one test, steward in the other) keep casting and calling the topic.
Every cast and call carries an id, and the test accounts for each one.

What a graceful stop guarantees, on each side, is what the test asserts:

- **steward** cancels its consumers when it stops (``RPCServer.stop()``), returns to the queue
  what was delivered but not started, lets what runs finish (``wait()``), and acknowledges each
  request after handling it. A steward server loses nothing it was sent.
- **oslo.messaging** (18.x, rabbit driver) acknowledges a request on arrival, in its consumer
  callback. ``server.stop()`` ends its polling but does not cancel the consumers
  (``stop_consuming`` sets a flag), so the broker goes on delivering to the stopping server; when
  ``server.wait()`` closes the connection, the deliveries read while it closes go through the
  callback, are acknowledged, and are never handled: dropped. (The requests it had taken before
  ``stop()`` are finished, replies included.) The test sees each drop, unmodified oslo's own
  record of it: the acknowledged messages left in the stopped listener's ``incoming`` list.

So: every cast is processed at least once, or was dropped by an oslo server as it stopped; every
call is answered, or was dropped that way (its caller would time out: the test answers it in
oslo's place, marked as dropped, when it reads the drop); nothing is lost anywhere else, in
particular never by a steward server; no server runs one request twice (each recognises a
redelivered ``_unique_id``). Each replacement stops its server
in the middle of a call held open until the stop has begun: the call is answered by that server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

import pytest
from oslo_config import cfg
from oslo_context import context as oslo_context

from steward.context import RequestContext
from steward.rpc import RPCClient, RPCServer, Target, get_transport
from steward.rpc.transports.base import Transport

with warnings.catch_warnings():
    # oslo.messaging imports oslo.service's eventlet backend, which announces deprecations.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import oslo_messaging

T = TypeVar("T")

# Bounds on waits for the broker and the servers: generous, for a loaded 2-core machine. They
# only turn a hang into a failure; nothing asserts on elapsed time.
GUARD = 60.0
SLOTS = 3
CASTS = 300
CALLERS = 3
# The fleet's history: which slot is replaced, by which kind of server. The move, then the
# rollback in the reverse order.
MOVES = [(0, "steward"), (1, "steward"), (2, "steward"), (2, "oslo"), (1, "oslo"), (0, "oslo")]


class Ledger:
    """What the fleet did with each request id, recorded from any thread.

    ``processed[id]`` lists the server instances (``"oslo:host0#1"``) that ran request ``id``;
    ``dropped[id]`` names the oslo server that acknowledged it as it stopped and never ran it.
    Coroutines on the test's loop wait for a condition on it with :meth:`wait_until`.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._changed = asyncio.Event()
        self.processed: dict[str, list[str]] = collections.defaultdict(list)
        self.dropped: dict[str, str] = {}

    def record(self, request_id: str, server: str) -> None:
        with self._lock:
            self.processed[request_id].append(server)
        self._loop.call_soon_threadsafe(self._changed.set)

    def drop(self, request_id: str, server: str) -> None:
        with self._lock:
            self.dropped[request_id] = server
        self._loop.call_soon_threadsafe(self._changed.set)

    def snapshot(self) -> tuple[dict[str, list[str]], dict[str, str]]:
        with self._lock:
            return {k: list(v) for k, v in self.processed.items()}, dict(self.dropped)

    def unaccounted(self, ids: Iterable[str]) -> list[str]:
        """The ids of ``ids`` neither processed nor dropped."""
        processed, dropped = self.snapshot()
        return [key for key in ids if key not in processed and key not in dropped]

    async def wait_until(self, condition: Callable[[], bool], what: Callable[[], str]) -> None:
        try:
            async with asyncio.timeout(GUARD):
                while True:
                    self._changed.clear()
                    if condition():
                        return
                    await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"gave up waiting ({GUARD} s) until {what()}")


class Holds:
    """Calls held open by their server until the test releases them (threading.Events by id)."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = collections.defaultdict(threading.Event)
        self._lock = threading.Lock()

    def _event(self, request_id: str) -> threading.Event:
        with self._lock:
            return self._events[request_id]

    def wait(self, request_id: str) -> None:
        if not self._event(request_id).wait(GUARD):
            raise RuntimeError(f"call {request_id} was never released")

    def release(self, request_id: str) -> None:
        self._event(request_id).set()


# --- the servers: the same three methods on each side ---------------------------------------------


class OsloMember:
    """An oslo.messaging endpoint (oslo's executor threads; the context comes as a dict)."""

    def __init__(self, name: str, ledger: Ledger, holds: Holds) -> None:
        self.name, self.ledger, self.holds = name, ledger, holds

    def note(self, ctxt: dict[str, Any], id: str) -> None:
        self.ledger.record(id, self.name)

    def echo(self, ctxt: dict[str, Any], id: str) -> dict[str, str]:
        self.ledger.record(id, self.name)
        return {"id": id, "server": self.name}

    def hold(self, ctxt: dict[str, Any], id: str) -> dict[str, str]:
        self.ledger.record(id, self.name)
        self.holds.wait(id)
        return {"id": id, "server": self.name}


class StewardMember:
    """The same endpoint for steward: plain ``def`` methods, run in the server's thread pool."""

    def __init__(self, name: str, ledger: Ledger, holds: Holds) -> None:
        self.name, self.ledger, self.holds = name, ledger, holds

    def note(self, context: RequestContext, id: str) -> None:
        self.ledger.record(id, self.name)

    def echo(self, context: RequestContext, id: str) -> dict[str, str]:
        self.ledger.record(id, self.name)
        return {"id": id, "server": self.name}

    def hold(self, context: RequestContext, id: str) -> dict[str, str]:
        self.ledger.record(id, self.name)
        self.holds.wait(id)
        return {"id": id, "server": self.name}


class Server(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self, *, then: Callable[[], None]) -> None:
        """Stop consuming, call ``then``, wait for the requests in flight, release everything."""


class OsloServer:
    """An unmodified oslo.messaging RPC server with a transport of its own, as in its process."""

    def __init__(self, url: str, topic: str, host: str, member: OsloMember) -> None:
        self.url, self.topic, self.host, self.member = url, topic, host, member
        self.name = member.name
        self.transport: Any = None
        self.server: Any = None

    async def start(self) -> None:
        self.transport = await asyncio.to_thread(
            oslo_messaging.get_rpc_transport, cfg.CONF, url=self.url.replace("amqp", "rabbit", 1)
        )
        target = oslo_messaging.Target(topic=self.topic, server=self.host)
        self.server = oslo_messaging.get_rpc_server(self.transport, target, [self.member])
        await asyncio.to_thread(self.server.start)

    async def stop(self, *, then: Callable[[], None]) -> None:
        await asyncio.to_thread(self.server.stop)
        then()
        await asyncio.to_thread(self.server.wait)
        # What the listener acknowledged and never handed to the executor (module docstring).
        for message in self.server.listener._poll_style_listener.incoming:
            request_id = message.message["args"]["id"]
            self.member.ledger.drop(request_id, self.name)
            if message.orig_msg_id:
                # A call: its caller would wait out its timeout. Answer it in oslo's place, with
                # no server, so that nothing (no thread, no connection) waits past the test.
                reply = {"id": request_id, "server": None}
                await asyncio.to_thread(message.reply, reply)
        await asyncio.to_thread(self.transport.cleanup)


class StewardServer:
    """A steward RPC server with a transport of its own."""

    def __init__(self, url: str, topic: str, host: str, member: StewardMember) -> None:
        self.url, self.topic, self.host, self.member = url, topic, host, member
        self.name = member.name
        self.transport = get_transport(url)
        self.server = RPCServer(self.transport, Target(topic, host), [member])

    async def start(self) -> None:
        await self.server.start()

    async def stop(self, *, then: Callable[[], None]) -> None:
        await self.server.stop()
        then()
        await self.server.wait(grace_period=GUARD)
        await self.server.aclose()
        await self.transport.aclose()


class Fleet:
    """The topic's servers, one per slot (host ``host<slot>``), each oslo or steward."""

    def __init__(self, url: str, topic: str, ledger: Ledger, holds: Holds) -> None:
        self.url, self.topic, self.ledger, self.holds = url, topic, ledger, holds
        self.slots: dict[int, Server] = {}
        self.history: list[str] = []

    async def start(self, slot: int, kind: str) -> None:
        host = f"host{slot}"
        name = f"{kind}:{host}#{len(self.history)}"
        server: Server
        if kind == "oslo":
            server = OsloServer(
                self.url, self.topic, host, OsloMember(name, self.ledger, self.holds)
            )
        else:
            member = StewardMember(name, self.ledger, self.holds)
            server = StewardServer(self.url, self.topic, host, member)
        await server.start()
        self.slots[slot] = server
        self.history.append(name)

    async def stop(self, slot: int, *, then: Callable[[], None] = lambda: None) -> str:
        server = self.slots.pop(slot)
        await server.stop(then=then)
        return server.name

    async def aclose(self) -> None:
        for slot in list(self.slots):
            await self.stop(slot)


# --- the clients: calls and casts of one kind -----------------------------------------------------


class Clients(Protocol):
    def cast(self, request_id: str) -> asyncio.Future[None]: ...

    def call(
        self, method: str, request_id: str, *, server: str | None = None
    ) -> asyncio.Future[Any]: ...


class StewardClients:
    def __init__(self, transport: Transport, topic: str) -> None:
        self.client = RPCClient(transport, Target(topic), timeout=GUARD)
        self.context = RequestContext(user_id="u1", project_id="p1")

    def cast(self, request_id: str) -> asyncio.Future[None]:
        return asyncio.ensure_future(self.client.cast(self.context, "note", id=request_id))

    def call(
        self, method: str, request_id: str, *, server: str | None = None
    ) -> asyncio.Future[Any]:
        client = self.client.prepare(server=server) if server else self.client
        return asyncio.ensure_future(client.call(self.context, method, id=request_id))


def in_daemon_thread(function: Callable[[], T]) -> asyncio.Future[T]:
    """Run blocking ``function`` in a thread of its own; its outcome settles the future.

    A thread of its own rather than one of a bounded pool, so that held calls and blocked calls
    never wait for a free thread; a daemon, so that a call left waiting by a failed test never
    holds up the interpreter's exit.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = function()
        except Exception as exc:  # noqa: BLE001 - handed to the future's awaiter
            error = exc
            outcome = lambda: future.set_exception(error)  # noqa: E731
        else:
            outcome = lambda: future.set_result(result)  # noqa: E731
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=run, daemon=True, name="oslo-client").start()
    return future


class OsloClients:
    """oslo.messaging's RPC client; each blocking call or cast in a thread of its own."""

    def __init__(self, transport: Any, topic: str) -> None:
        target = oslo_messaging.Target(topic=topic)
        self.client = oslo_messaging.get_rpc_client(transport, target, timeout=GUARD)
        self.context = oslo_context.RequestContext(user_id="u2", project_id="p2")

    def cast(self, request_id: str) -> asyncio.Future[None]:
        client, context = self.client, self.context
        return in_daemon_thread(lambda: client.cast(context, "note", id=request_id))

    def call(
        self, method: str, request_id: str, *, server: str | None = None
    ) -> asyncio.Future[Any]:
        client = self.client.prepare(server=server) if server else self.client
        context = self.context
        return in_daemon_thread(lambda: client.call(context, method, id=request_id))


# --- the move -------------------------------------------------------------------------------------


def phases(total: int, count: int) -> list[range]:
    """``range(total)`` cut into ``count`` consecutive, nearly equal parts."""
    bounds = [total * part // count for part in range(count + 1)]
    return [range(start, stop) for start, stop in itertools.pairwise(bounds)]


async def roll(url: str, topic: str, clients: Clients) -> None:  # noqa: PLR0915
    """Run the move and the rollback under ``clients``' load; account for every request."""
    ledger, holds = Ledger(), Holds()
    fleet = Fleet(url, topic, ledger, holds)
    cast_ids = [f"cast-{n}" for n in range(CASTS)]
    answers: dict[str, Any] = {}  # call id -> its answer (server None: dropped by oslo)
    held: dict[str, tuple[str, Any]] = {}  # hold id -> (the server stopped, its answer)
    sent_phase = [asyncio.Event() for _ in range(len(MOVES) + 1)]
    moving = [asyncio.Event() for _ in MOVES]
    moved = asyncio.Event()

    async def send_casts() -> None:
        for phase, ids in enumerate(phases(CASTS, len(MOVES) + 1)):
            if phase:
                await moving[phase - 1].wait()  # each phase is sent while a server is replaced
            for n in ids:
                await clients.cast(cast_ids[n])
            sent_phase[phase].set()

    async def answer(request_id: str) -> None:
        answers[request_id] = await clients.call("echo", request_id)

    async def call_until_moved(caller: int) -> None:
        for n in itertools.count():
            if moved.is_set():
                return
            await answer(f"call-{caller}-{n}")

    async def replace(step: int, slot: int, kind: str) -> None:
        """Stop the server of ``slot`` in the middle of a call to it; start one of ``kind``."""
        hold_id, host = f"hold-{step}", f"host{slot}"
        holding = clients.call("hold", hold_id, server=host)
        try:
            await ledger.wait_until(
                lambda: hold_id in ledger.snapshot()[0], lambda: f"{host} holds {hold_id}"
            )
            stopped = await fleet.stop(slot, then=lambda: holds.release(hold_id))
            async with asyncio.timeout(GUARD):
                held[hold_id] = (stopped, await holding)
        finally:
            holds.release(hold_id)
            holding.cancel()
        await fleet.start(slot, kind)

    async def move() -> None:
        for step, (slot, kind) in enumerate(MOVES):
            await sent_phase[step].wait()
            moving[step].set()
            await replace(step, slot, kind)
        moved.set()

    try:
        for slot in range(SLOTS):
            await fleet.start(slot, "oslo")
        async with asyncio.TaskGroup() as group:
            group.create_task(send_casts())
            group.create_task(move())
            for caller in range(CALLERS):
                group.create_task(call_until_moved(caller))
        await ledger.wait_until(
            lambda: not ledger.unaccounted(cast_ids),
            lambda: f"every cast is processed or dropped; not: {ledger.unaccounted(cast_ids)}",
        )
    finally:
        await fleet.aclose()

    processed, dropped = ledger.snapshot()
    # Nothing is lost but what oslo servers dropped as they stopped; nothing dropped also ran.
    assert ledger.unaccounted(cast_ids) == []
    assert set(processed) & set(dropped) == set()
    assert {server.split(":")[0] for server in dropped.values()} <= {"oslo"}
    # Every call came back with its own answer, from a server that ran it, unless dropped so.
    assert all(answer["id"] == key for key, answer in answers.items())
    served = {key: answer["server"] for key, answer in answers.items() if answer["server"]}
    assert served, "no call was answered during the move"
    assert all(server in processed[key] for key, server in served.items())
    assert set(answers) - set(served) == {key for key in dropped if key.startswith("call-")}
    # Each held call was finished and answered by the server stopped in its middle.
    assert len(held) == len(MOVES)
    assert all(answer["server"] == stopped for stopped, answer in held.values())
    # At least once, and never twice on one server (its _unique_id check).
    assert {key: names for key, names in processed.items() if len(set(names)) != len(names)} == {}
    # The fleet was oslo, mixed, steward, mixed, and oslo again; both kinds served requests.
    assert [name.split(":")[0] for name in fleet.history] == ["oslo"] * SLOTS + [
        kind for _, kind in MOVES
    ]
    assert {name.split(":")[0] for names in processed.values() for name in names} == {
        "oslo",
        "steward",
    }


@pytest.fixture
def topic() -> str:
    return f"rolling_{uuid.uuid4().hex[:12]}"


async def test_oslo_clients_lose_nothing_to_steward_while_a_topic_moves_to_it_and_back(
    fresh_rabbit_url: str, topic: str
) -> None:
    transport = await asyncio.to_thread(
        oslo_messaging.get_rpc_transport,
        cfg.CONF,
        url=fresh_rabbit_url.replace("amqp", "rabbit", 1),
    )
    try:
        await roll(fresh_rabbit_url, topic, OsloClients(transport, topic))
    finally:
        await asyncio.to_thread(transport.cleanup)


async def test_steward_clients_lose_nothing_to_steward_while_a_topic_moves_to_it_and_back(
    fresh_rabbit_url: str, topic: str
) -> None:
    async with get_transport(fresh_rabbit_url) as transport:
        await roll(fresh_rabbit_url, topic, StewardClients(transport, topic))
