"""In-process request/reply: a steward call on ``memory://``, and the bare asyncio floor under it.

* :func:`bare_pair` - the least an asyncio request/reply can be: a request queue that a server
  task reads, a reply queue that a reply task reads, and a future per request, resolved by
  request id (the shape of any RPC: request path, reply path, correlation);
* :func:`steward_pair` - an :class:`RPCServer` and an :class:`RPCClient` on a ``memory://``
  transport of their own in this loop; the call encodes, routes, dispatches (arguments validated)
  and decodes as on a broker.

Both yield an ``echo`` coroutine function; :func:`call_batch` makes it a timing batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable

from benchmarks._timing import AsyncBatch
from steward.context import RequestContext
from steward.rpc import RPCClient, RPCServer, Target, get_transport

__all__ = ["PAYLOAD", "Echo", "EchoEndpoint", "bare_pair", "call_batch", "steward_pair"]

PAYLOAD = "x" * 100
"""What every call echoes: 100 characters, as on RabbitMQ."""

Echo = Callable[[str], Awaitable[str]]
"""Sends a payload, returns what came back."""

_requests = itertools.count()


class EchoEndpoint:
    """A plain endpoint: ``echo`` returns its argument (nothing wraps it)."""

    async def echo(self, context: RequestContext, x: str) -> str:
        """Return ``x``: the call is the figure."""
        return x


@contextlib.asynccontextmanager
async def bare_pair() -> AsyncIterator[Echo]:
    """Yield ``echo`` over two asyncio queues, a server task and a reply task (see the module)."""
    loop = asyncio.get_running_loop()
    requests: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    replies: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    pending: dict[int, asyncio.Future[str]] = {}

    async def serve() -> None:
        while True:
            request_id, payload = await requests.get()
            replies.put_nowait((request_id, payload))

    async def receive() -> None:
        while True:
            request_id, payload = await replies.get()
            future = pending.pop(request_id, None)
            if future is not None:
                future.set_result(payload)

    async def echo(payload: str) -> str:
        request_id = next(_requests)
        future: asyncio.Future[str] = loop.create_future()
        pending[request_id] = future
        requests.put_nowait((request_id, payload))
        return await future

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(serve()), group.create_task(receive())]
        try:
            yield echo
        finally:
            for task in tasks:
                task.cancel()


@contextlib.asynccontextmanager
async def steward_pair(
    endpoint: object | None = None, *, url: str = "memory://bench"
) -> AsyncIterator[Echo]:
    """Yield ``echo`` as a steward call to ``endpoint`` (default :class:`EchoEndpoint`) on ``url``.

    The endpoint needs an ``async def echo(self, context, x: str) -> str``.
    """
    transport = get_transport(url)
    server = RPCServer(transport, Target("bench", "s1"), [endpoint or EchoEndpoint()])
    client = RPCClient(transport, Target("bench"), timeout=30)
    context = RequestContext()

    async def echo(payload: str) -> str:
        return typing.cast("str", await client.call(context, "echo", x=payload))

    await server.start()
    try:
        if await echo(PAYLOAD) != PAYLOAD:
            raise RuntimeError("the memory:// echo returned something else")
        yield echo
    finally:
        await server.stop()
        await server.wait(grace_period=5)
        await transport.close()


def call_batch(echo: Echo, *, before_round: Callable[[], None] | None = None) -> AsyncBatch:
    """Return a timing batch of ``number`` sequential ``echo(PAYLOAD)`` calls."""

    async def batch(number: int) -> float:
        if before_round is not None:
            before_round()
        started = time.perf_counter()
        for _ in itertools.repeat(None, number):
            await echo(PAYLOAD)
        return time.perf_counter() - started

    return batch
