"""oslo.messaging's side of the RPC benchmark: the code steward replaces, unmodified.

As anchor-bench.md configures it: ``get_rpc_transport(cfg.CONF, url="rabbit://...")`` with every
option at its default (publisher confirms on, prefetch 0, non-durable queues),
``get_rpc_server(transport, Target(topic=topic, server="s1"), [endpoint],
executor="threading")``, and ``get_rpc_client(transport, Target(topic=topic))`` shared by all
calling threads. The global ``cfg.CONF`` it is: oslo.messaging 18.x registers its tracing options
only there, and a private ``ConfigOpts`` makes ``call()`` fail (oslo-wire.md §7).
"""

from __future__ import annotations

import contextlib
import threading
import time
import typing
import warnings
from collections.abc import Iterator

from oslo_config import cfg

from benchmarks._rpc.measure import Counts, ThreadedPeer

with warnings.catch_warnings():
    # oslo.messaging imports oslo.service's eventlet backend, which announces deprecations.
    warnings.simplefilter("ignore", DeprecationWarning)
    import oslo_messaging

__all__ = ["BenchEndpoint", "OsloPeer", "connected", "serving"]

SERVER = "s1"
_TIMEOUT = 60


class BenchEndpoint:
    """:class:`benchmarks._rpc.steward_peer.BenchEndpoint` for oslo: run in executor threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.last = 0.0

    def echo(self, ctxt: dict[str, typing.Any], x: str) -> str:
        """Return ``x``: the round trip is the figure."""
        return x

    def note(self, ctxt: dict[str, typing.Any], x: str) -> None:
        """Count a cast and remember when it was handled (monotonic clock)."""
        with self._lock:
            self.count += 1
            self.last = time.monotonic()

    def stats(self, ctxt: dict[str, typing.Any]) -> list[float]:
        """Return ``[count, time of the last cast]``."""
        with self._lock:
            return [self.count, self.last]

    def reset(self, ctxt: dict[str, typing.Any]) -> None:
        """Forget the casts counted so far."""
        with self._lock:
            self.count = 0
            self.last = 0.0


def _transport(url: str) -> typing.Any:  # noqa: ANN401 - oslo.messaging is untyped
    return oslo_messaging.get_rpc_transport(cfg.CONF, url=url.replace("amqp://", "rabbit://", 1))


@contextlib.contextmanager
def serving(url: str, topic: str) -> Iterator[None]:
    """Serve :class:`BenchEndpoint` on ``topic`` (threading executor) until the block ends."""
    transport = _transport(url)
    target = oslo_messaging.Target(topic=topic, server=SERVER)
    server = oslo_messaging.get_rpc_server(
        transport, target, [BenchEndpoint()], executor="threading"
    )
    try:
        server.start()
        yield
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


class OsloPeer:
    """The benchmark's client: one oslo ``RPCClient`` of ``topic``, shared by every thread."""

    def __init__(self, client: typing.Any, counts: Counts) -> None:  # noqa: ANN401 - untyped
        self._client = client
        self._context: dict[str, typing.Any] = {}
        self._small = "x" * counts.payload_chars
        self._big = "y" * counts.big_chars

    def call(self, *, big: bool) -> None:
        """Echo a payload; raise if another came back."""
        payload = self._big if big else self._small
        result = self._client.call(self._context, "echo", x=payload)
        if result != payload:
            raise RuntimeError(f"echo returned {len(result)} characters, not {len(payload)}")

    def cast(self) -> None:
        """Cast ``note`` (returns once the broker confirmed it: oslo's default)."""
        self._client.cast(self._context, "note", x=self._small)

    def stats(self) -> tuple[int, float]:
        """Ask the server for its count of casts."""
        count, last = self._client.call(self._context, "stats")
        return int(count), float(last)

    def reset(self) -> None:
        """Reset the server's count of casts."""
        self._client.call(self._context, "reset")


@contextlib.contextmanager
def connected(url: str, topic: str, counts: Counts) -> Iterator[ThreadedPeer]:
    """Yield a client of ``topic``; clean its transport up after the block."""
    transport = _transport(url)
    try:
        client = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic=topic), timeout=_TIMEOUT
        )
        yield OsloPeer(client, counts)
    finally:
        transport.cleanup()
