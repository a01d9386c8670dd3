"""steward's side of the RPC benchmark: an :class:`RPCServer` and an :class:`RPCClient`.

On ``amqp://`` (the RabbitMQ table) or on ``nats://`` (the NATS table, core NATS: there a cast
returns once published and flushed, the server having it).

Everything as an application would write it, all settings at their defaults: the server serves
:class:`BenchEndpoint` (``async def`` methods, which run on the loop) on ``Target(topic, "s1")``;
the client calls ``Target(topic)``, so requests go through the topic's shared queue, as
oslo.messaging's do in this benchmark. Casts are confirmed by the broker (steward always
confirms them), calls are not (the reply confirms them).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from benchmarks._rpc.measure import AsyncPeer, Counts
from steward.context import RequestContext
from steward.rpc import RPCClient, RPCServer, Target, get_transport

__all__ = ["BenchEndpoint", "StewardPeer", "connected", "serving"]

SERVER = "s1"
# Generous: a 1 MiB call on a loaded 2-core machine takes tens of milliseconds.
_TIMEOUT = 60.0


class BenchEndpoint:
    """The benchmark's methods: ``echo`` for calls, ``note`` for casts, ``stats`` and ``reset``."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0

    async def echo(self, context: RequestContext, x: str) -> str:
        """Return ``x``: the round trip is the figure."""
        return x

    async def note(self, context: RequestContext, x: str) -> None:
        """Count a cast and remember when it was handled (monotonic clock)."""
        self.count += 1
        self.last = time.monotonic()

    async def stats(self, context: RequestContext) -> list[float]:
        """Return ``[count, time of the last cast]``."""
        return [self.count, self.last]

    async def reset(self, context: RequestContext) -> None:
        """Forget the casts counted so far."""
        self.count = 0
        self.last = 0.0


@contextlib.asynccontextmanager
async def serving(url: str, topic: str) -> AsyncIterator[None]:
    """Serve :class:`BenchEndpoint` on ``topic`` until the block ends."""
    transport = get_transport(url)
    server = RPCServer(transport, Target(topic, SERVER), [BenchEndpoint()])
    try:
        await server.start()
        yield
    finally:
        await server.stop()
        await server.wait(grace_period=5)
        await transport.close()


class StewardPeer:
    """The benchmark's client: an :class:`RPCClient` of ``topic``, payloads made once."""

    def __init__(self, client: RPCClient, counts: Counts) -> None:
        self._client = client
        self._context = RequestContext()
        self._small = "x" * counts.payload_chars
        self._big = "y" * counts.big_chars

    async def call(self, *, big: bool) -> None:
        """Echo a payload; raise if another came back."""
        payload = self._big if big else self._small
        result = await self._client.call(self._context, "echo", x=payload)
        if result != payload:
            raise RuntimeError(f"echo returned {len(result)} characters, not {len(payload)}")

    async def cast(self) -> None:
        """Cast ``note`` (returns once the broker confirmed it)."""
        await self._client.cast(self._context, "note", x=self._small)

    async def stats(self) -> tuple[int, float]:
        """Ask the server for its count of casts."""
        count, last = await self._client.call(self._context, "stats")
        return int(count), float(last)

    async def reset(self) -> None:
        """Reset the server's count of casts."""
        await self._client.call(self._context, "reset")


@contextlib.asynccontextmanager
async def connected(url: str, topic: str, counts: Counts) -> AsyncIterator[AsyncPeer]:
    """Yield a client of ``topic``; close its transport after the block."""
    transport = get_transport(url)
    try:
        yield StewardPeer(RPCClient(transport, Target(topic), timeout=_TIMEOUT), counts)
    finally:
        await transport.close()
