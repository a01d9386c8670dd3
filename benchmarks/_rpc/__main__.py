"""One peer process of the RPC benchmark: a system's server, or its client.

``python -m benchmarks._rpc server SYSTEM URL TOPIC`` serves the benchmark's methods on TOPIC,
writes ``ready`` on a line of its own once it consumes, and stops when its standard input is
closed: the benchmark closes it when it is done, and the operating system does when the
benchmark dies, so no server outlives its run. SYSTEM is a key of
:data:`benchmarks._rpc.SYSTEMS`: ``oslo``, ``raw``, ``raw_uvloop``, ``steward``,
``steward_uvloop``.

``python -m benchmarks._rpc client SYSTEM URL TOPIC COUNTS`` runs the measurements
(:mod:`benchmarks._rpc.measure`, COUNTS a JSON object of
:class:`~benchmarks._rpc.measure.Counts`) and writes their figures as a JSON object on the last
line.

A system marked ``uvloop`` runs on uvloop's event loop; oslo.messaging runs in threads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import sys
import typing
from collections.abc import Callable, Sequence

from benchmarks._rpc import System, system
from benchmarks._rpc.measure import (
    AsyncPeer,
    Counts,
    Figures,
    ThreadedPeer,
    measure_async,
    measure_threaded,
)

READY = "ready"
"""What a server writes once it consumes."""


class _AsyncPeerModule(typing.Protocol):
    def serving(self, url: str, topic: str) -> contextlib.AbstractAsyncContextManager[None]: ...

    def connected(
        self, url: str, topic: str, counts: Counts
    ) -> contextlib.AbstractAsyncContextManager[AsyncPeer]: ...


class _ThreadedPeerModule(typing.Protocol):
    def serving(self, url: str, topic: str) -> contextlib.AbstractContextManager[None]: ...

    def connected(
        self, url: str, topic: str, counts: Counts
    ) -> contextlib.AbstractContextManager[ThreadedPeer]: ...


def _wait_for_end_of_input() -> None:
    sys.stdin.buffer.read()


def _say_ready() -> None:
    sys.stdout.write(f"{READY}\n")
    sys.stdout.flush()


def _loop_factory(chosen: System) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not chosen.uvloop:
        return None
    import uvloop

    return uvloop.new_event_loop


async def _serve_async(module: _AsyncPeerModule, url: str, topic: str) -> None:
    async with module.serving(url, topic):
        _say_ready()
        await asyncio.to_thread(_wait_for_end_of_input)


async def _measure_async(module: _AsyncPeerModule, url: str, topic: str, counts: Counts) -> Figures:
    async with module.connected(url, topic, counts) as peer:
        return await measure_async(peer, counts)


def _serve(chosen: System, module: object, url: str, topic: str) -> None:
    if chosen.peer == "oslo_peer":
        with typing.cast("_ThreadedPeerModule", module).serving(url, topic):
            _say_ready()
            _wait_for_end_of_input()
        return
    with asyncio.Runner(loop_factory=_loop_factory(chosen)) as runner:
        runner.run(_serve_async(typing.cast("_AsyncPeerModule", module), url, topic))


def _measure(chosen: System, module: object, url: str, topic: str, counts: Counts) -> Figures:
    if chosen.peer == "oslo_peer":
        with typing.cast("_ThreadedPeerModule", module).connected(url, topic, counts) as peer:
            return measure_threaded(peer, counts)
    with asyncio.Runner(loop_factory=_loop_factory(chosen)) as runner:
        return runner.run(
            _measure_async(typing.cast("_AsyncPeerModule", module), url, topic, counts)
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run a server or a client as the command line says; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks._rpc")
    parser.add_argument("role", choices=("server", "client"))
    parser.add_argument("system", help="a key of benchmarks._rpc.SYSTEMS")
    parser.add_argument("url", help="amqp://user:password@host:port/vhost")
    parser.add_argument("topic")
    parser.add_argument("counts", nargs="?", default=None, help="client: Counts as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    chosen = system(args.system)
    module = importlib.import_module(f"benchmarks._rpc.{chosen.peer}")
    if args.role == "server":
        _serve(chosen, module, args.url, args.topic)
        return 0
    if args.counts is None:
        parser.error("a client needs COUNTS")
    figures = _measure(
        chosen, module, args.url, args.topic, Counts.from_json(json.loads(args.counts))
    )
    sys.stdout.write(json.dumps(figures) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
