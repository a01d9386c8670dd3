"""The raw aio-pika baseline: the least a Python request/reply on this broker can do.

As anchor-bench.md describes it: one connection and one channel per side, no publisher
confirms, non-persistent messages. The server consumes one named queue with ``no_ack``, picks
the operation from the AMQP ``type`` property and echoes the body's bytes (no serialization);
replies go through the default exchange to ``reply_to`` with the request's ``correlation_id``.
The client consumes one exclusive reply queue with ``no_ack`` and resolves a future per
``correlation_id``. No framework: the ceiling a framework's figures are read against.

With ``guarantees`` (:mod:`benchmarks._rpc.raw_acked_peer`) it keeps steward's promises on the
wire instead, still without a framework: messages persistent (``delivery_mode`` 2, as oslo's),
the server acknowledging each message after handling it (prefetch 64) and publishing replies
``mandatory``, the client waiting for the broker's confirm of each cast (on a channel of its
own; calls stay unconfirmed, their reply confirms them). The ceiling for steward's figures with
its delivery guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from benchmarks._rpc.measure import AsyncPeer, Counts, RawServer

__all__ = ["RawPeer", "connected", "serving"]

_TIMEOUT = 60.0


_PREFETCH = 64  # steward's default (executor_thread_pool_size)


class _Server(RawServer):
    """Answers ``echo``, ``stats`` and ``reset``; counts ``cast``; acknowledges if asked."""

    def __init__(self, channel: AbstractChannel, *, guarantees: bool) -> None:
        super().__init__()
        self._exchange = channel.default_exchange
        self._guarantees = guarantees

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        await self._handle(message)
        if self._guarantees:
            await message.ack()

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        body = self.answer(message.type or "", message.body)
        if body is not None and message.reply_to:
            reply = aio_pika.Message(
                body, correlation_id=message.correlation_id, delivery_mode=_mode(self._guarantees)
            )
            await self._exchange.publish(
                reply, routing_key=message.reply_to, mandatory=self._guarantees
            )


def _mode(guarantees: bool) -> aio_pika.DeliveryMode | None:
    return aio_pika.DeliveryMode.PERSISTENT if guarantees else None


@contextlib.asynccontextmanager
async def serving(url: str, topic: str, *, guarantees: bool = False) -> AsyncIterator[None]:
    """Consume queue ``topic`` (auto-deleted) until the block ends."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=False)
        if guarantees:
            await channel.set_qos(prefetch_count=_PREFETCH)
        queue = await channel.declare_queue(topic, auto_delete=True)
        server = _Server(channel, guarantees=guarantees)
        await queue.consume(server.on_message, no_ack=not guarantees)
        yield
    finally:
        await connection.close()


class RawPeer:
    """The baseline's client: publishes to queue ``topic``, replies matched by correlation id."""

    def __init__(
        self,
        channel: AbstractChannel,
        topic: str,
        counts: Counts,
        *,
        cast_channel: AbstractChannel | None = None,
    ) -> None:
        self._channel = channel
        self._exchange = channel.default_exchange
        # With guarantees, casts go through a channel with publisher confirms.
        self._cast_exchange = (cast_channel or channel).default_exchange
        self._mode = _mode(cast_channel is not None)
        self._topic = topic
        self._reply_to = ""
        self._ids = itertools.count()
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._small = b"x" * counts.payload_chars
        self._big = b"y" * counts.big_chars

    async def start(self) -> None:
        """Declare and consume the reply queue."""
        queue = await self._channel.declare_queue(exclusive=True)
        self._reply_to = queue.name
        await queue.consume(self._on_reply, no_ack=True)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def _request(self, kind: str, body: bytes) -> bytes:
        correlation_id = str(next(self._ids))
        future = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        message = aio_pika.Message(
            body,
            type=kind,
            correlation_id=correlation_id,
            reply_to=self._reply_to,
            delivery_mode=self._mode,
        )
        try:
            async with asyncio.timeout(_TIMEOUT):
                await self._exchange.publish(message, routing_key=self._topic)
                reply: bytes = await future
                return reply
        finally:
            self._pending.pop(correlation_id, None)

    async def call(self, *, big: bool) -> None:
        """Echo a payload; raise if another came back."""
        payload = self._big if big else self._small
        result = await self._request("echo", payload)
        if result != payload:
            raise RuntimeError(f"echo returned {len(result)} bytes, not {len(payload)}")

    async def cast(self) -> None:
        """Publish a ``cast`` message; returns once written, or confirmed with guarantees."""
        message = aio_pika.Message(self._small, type="cast", delivery_mode=self._mode)
        await self._cast_exchange.publish(message, routing_key=self._topic)

    async def stats(self) -> tuple[int, float]:
        """Ask the server for its count of casts."""
        count, last = json.loads(await self._request("stats", b""))
        return int(count), float(last)

    async def reset(self) -> None:
        """Reset the server's count of casts."""
        await self._request("reset", b"")


@contextlib.asynccontextmanager
async def connected(
    url: str, topic: str, counts: Counts, *, guarantees: bool = False
) -> AsyncIterator[AsyncPeer]:
    """Yield a client of queue ``topic``; close its connection after the block."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=False)
        cast_channel = await connection.channel(publisher_confirms=True) if guarantees else None
        peer = RawPeer(channel, topic, counts, cast_channel=cast_channel)
        await peer.start()
        yield peer
    finally:
        await connection.close()
