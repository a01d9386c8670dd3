"""The raw nats-py baseline: the least a Python request/reply on core NATS can do.

One connection per side (``nats.connect``), no framework, no serialization. The server
subscribes to ``<namespace>.<topic>.>`` (queue group ``servers``, as steward's servers are) and
picks the operation from the subject's last token: ``echo`` responds with the request's bytes
(``msg.respond``), ``stats`` and ``reset`` with JSON, ``cast`` is counted. The client calls with
``nc.request`` (nats-py's own request/reply: one wildcard inbox subscription, a future per
request) and casts with ``nc.publish`` (buffered, not flushed: at-most-once, as core NATS is).
The namespace is the URL's path, as for steward's ``nats://`` transport.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import AsyncIterator

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from benchmarks._rpc.measure import AsyncPeer, Counts, RawServer

__all__ = ["RawNatsPeer", "connected", "serving"]

_TIMEOUT = 60.0
_QUEUE = "servers"


def _split(url: str, topic: str) -> tuple[str, str]:
    """Return the server URL without its path, and the subject prefix ``namespace.topic``."""
    parts = urllib.parse.urlsplit(url)
    namespace = parts.path.strip("/") or "steward"
    return f"{parts.scheme}://{parts.netloc}", f"{namespace}.{topic}"


class _Server(RawServer):
    """A :class:`RawServer` on NATS: the operation is the last token of the subject."""

    async def on_message(self, msg: Msg) -> None:
        body = self.answer(msg.subject.rsplit(".", 1)[-1], msg.data)
        if body is not None:
            await msg.respond(body)


@contextlib.asynccontextmanager
async def serving(url: str, topic: str) -> AsyncIterator[None]:
    """Subscribe to the topic's subjects until the block ends."""
    server_url, prefix = _split(url, topic)
    nc: Client = await nats.connect(server_url)
    try:
        await nc.subscribe(f"{prefix}.>", queue=_QUEUE, cb=_Server().on_message)
        await nc.flush()  # the server has the subscription: requests reach it from now on
        yield
    finally:
        await nc.close()


class RawNatsPeer:
    """The baseline's client: ``nc.request`` for calls, ``nc.publish`` for casts."""

    def __init__(self, nc: Client, prefix: str, counts: Counts) -> None:
        self._nc = nc
        self._prefix = prefix
        self._small = b"x" * counts.payload_chars
        self._big = b"y" * counts.big_chars

    async def _request(self, kind: str, body: bytes) -> bytes:
        reply = await self._nc.request(f"{self._prefix}.{kind}", body, timeout=_TIMEOUT)
        return reply.data

    async def call(self, *, big: bool) -> None:
        """Echo a payload; raise if another came back."""
        payload = self._big if big else self._small
        result = await self._request("echo", payload)
        if result != payload:
            raise RuntimeError(f"echo returned {len(result)} bytes, not {len(payload)}")

    async def cast(self) -> None:
        """Publish a ``cast`` message (into nats-py's buffer; its flusher writes it)."""
        await self._nc.publish(f"{self._prefix}.cast", self._small)

    async def stats(self) -> tuple[int, float]:
        """Ask the server for its count of casts."""
        count, last = json.loads(await self._request("stats", b""))
        return int(count), float(last)

    async def reset(self) -> None:
        """Reset the server's count of casts."""
        await self._request("reset", b"")


@contextlib.asynccontextmanager
async def connected(url: str, topic: str, counts: Counts) -> AsyncIterator[AsyncPeer]:
    """Yield a client of ``topic``; close its connection after the block."""
    server_url, prefix = _split(url, topic)
    nc: Client = await nats.connect(server_url)
    try:
        yield RawNatsPeer(nc, prefix, counts)
    finally:
        await nc.close()
