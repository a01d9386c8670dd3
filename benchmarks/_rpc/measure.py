"""The four RPC measurements, run the same way against every system (anchor-bench.md's method).

* **sequential calls** - ``warmup`` calls, then ``calls`` calls one after another, each echoing a
  ``payload_chars``-character string; calls/s = ``calls`` / wall time, p50 and p99 from each
  call's own :func:`time.perf_counter` interval;
* **concurrent calls** - ``callers`` callers sharing one client, each making ``caller_warmup``
  calls, then waiting at a barrier, then ``caller_calls`` timed calls; calls/s = timed calls /
  (last caller done - barrier released);
* **casts** - the server's counter is reset with a call, the client sends ``casts`` one-way
  messages in a loop, then asks the server (a ``stats`` call, every 20 ms) until it has counted
  them all; processed/s = ``casts`` / (server's time of the last message - client's start), both
  read from :func:`time.monotonic`, which is the host's one ``CLOCK_MONOTONIC`` on Linux, so
  the two processes' readings compare. The client's own send rate is reported too: when the two
  are close, the single sender is the bottleneck, not the server;
* **concurrent casts** - the same with ``callers`` senders sharing the client (tasks, or
  threads), ``casts // callers`` messages each: what the client can hand over when it need not
  wait for one cast's confirm before sending the next;
* **1 MiB calls** - ``big_warmup`` calls, then ``big_calls`` calls echoing a ``big_chars``
  string; the median round trip (skipped when ``big_calls`` is 0: NATS's ``max_payload`` is
  1 MiB, headers included, by default).

A system's client is an :class:`AsyncPeer` (on an event loop) or a :class:`ThreadedPeer`
(oslo.messaging: blocking calls; the concurrent callers are threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import statistics
import threading
import time
import typing

__all__ = [
    "FULL_COUNTS",
    "QUICK_COUNTS",
    "AsyncPeer",
    "Counts",
    "Figures",
    "RawServer",
    "ThreadedPeer",
    "measure_async",
    "measure_threaded",
]

Figures = dict[str, float]
"""One run of one system: metric key -> number (rates per second, latencies in milliseconds)."""

# How often the cast measurement asks the server whether it has counted every message.
_POLL_SECONDS = 0.02
# A cast measurement gives up when the server has not counted every message by then.
_CAST_PATIENCE = 120.0


@dataclasses.dataclass(frozen=True, slots=True)
class Counts:
    """How many calls and casts each measurement makes; see the module docstring."""

    warmup: int
    calls: int
    callers: int
    caller_warmup: int
    caller_calls: int
    casts: int
    big_warmup: int
    big_calls: int
    payload_chars: int = 100
    big_chars: int = 1 << 20

    def to_json(self) -> dict[str, int]:
        """Return the counts as a JSON object (to hand to a client process)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: typing.Mapping[str, int]) -> Counts:
        """Read counts written by :meth:`to_json`."""
        return cls(**data)


FULL_COUNTS = Counts(
    warmup=200,
    calls=2000,
    callers=32,
    caller_warmup=10,
    caller_calls=125,
    casts=20_000,
    big_warmup=3,
    big_calls=20,
)
"""anchor-bench.md's counts."""

QUICK_COUNTS = Counts(
    warmup=5,
    calls=30,
    callers=4,
    caller_warmup=1,
    caller_calls=5,
    casts=200,
    big_warmup=1,
    big_calls=2,
    big_chars=64 << 10,
)
"""A smoke run's: every code path, figures that mean little."""


class RawServer:
    """What the raw peers' servers do with a message, whatever carries it.

    ``echo`` returns its body, ``stats`` the count of casts and the monotonic time of the last
    one (JSON), ``reset`` zeroes them; a ``cast`` is counted and gets no answer.
    """

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0

    def answer(self, kind: str, body: bytes) -> bytes | None:
        """Return the reply to a ``kind`` message carrying ``body`` (None for a cast)."""
        if kind == "cast":
            self.count += 1
            self.last = time.monotonic()
            return None
        if kind == "echo":
            return body
        if kind == "stats":
            return json.dumps([self.count, self.last]).encode()
        if kind == "reset":
            self.count, self.last = 0, 0.0
            return b""
        raise ValueError(f"unknown operation {kind!r}")


class AsyncPeer(typing.Protocol):
    """A client on an event loop, its payloads made for it (see :class:`Counts`)."""

    async def call(self, *, big: bool) -> None:
        """Echo the small payload (or the big one) and check what came back."""
        ...

    async def cast(self) -> None:
        """Send one ``note`` cast with the small payload."""
        ...

    async def stats(self) -> tuple[int, float]:
        """Return the server's count of casts and the monotonic time of the last one."""
        ...

    async def reset(self) -> None:
        """Set the server's count of casts to zero."""
        ...


class ThreadedPeer(typing.Protocol):
    """:class:`AsyncPeer` for a blocking client that threads may share."""

    def call(self, *, big: bool) -> None:
        """Echo the small payload (or the big one) and check what came back."""
        ...

    def cast(self) -> None:
        """Send one ``note`` cast with the small payload."""
        ...

    def stats(self) -> tuple[int, float]:
        """Return the server's count of casts and the monotonic time of the last one."""
        ...

    def reset(self) -> None:
        """Set the server's count of casts to zero."""
        ...


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``sorted_values`` lie (nearest rank)."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def _latencies(seconds: list[float], prefix: str) -> Figures:
    ordered = sorted(seconds)
    return {
        f"{prefix}_p50_ms": statistics.median(ordered) * 1e3,
        f"{prefix}_p99_ms": _percentile(ordered, 0.99) * 1e3,
    }


# --- On an event loop -----------------------------------------------------------------------------


async def measure_async(peer: AsyncPeer, counts: Counts) -> Figures:
    """Run the four measurements in order with ``peer``; return their figures."""
    figures: Figures = {}
    figures.update(await _sequential(peer, counts))
    figures.update(await _concurrent(peer, counts))
    figures.update(await _casts(peer, counts, senders=1))
    figures.update(await _casts(peer, counts, senders=counts.callers))
    if counts.big_calls:
        figures.update(await _big(peer, counts))
    return figures


async def _sequential(peer: AsyncPeer, counts: Counts) -> Figures:
    for _ in range(counts.warmup):
        await peer.call(big=False)
    seconds = []
    started = time.perf_counter()
    for _ in range(counts.calls):
        before = time.perf_counter()
        await peer.call(big=False)
        seconds.append(time.perf_counter() - before)
    wall = time.perf_counter() - started
    return {"call_rate": counts.calls / wall} | _latencies(seconds, "call")


async def _concurrent(peer: AsyncPeer, counts: Counts) -> Figures:
    barrier = asyncio.Barrier(counts.callers + 1)

    async def caller() -> None:
        for _ in range(counts.caller_warmup):
            await peer.call(big=False)
        await barrier.wait()
        for _ in range(counts.caller_calls):
            await peer.call(big=False)

    async with asyncio.TaskGroup() as group:
        for _ in range(counts.callers):
            group.create_task(caller())
        await barrier.wait()
        started = time.perf_counter()
    wall = time.perf_counter() - started
    return {"concurrent_rate": counts.callers * counts.caller_calls / wall}


async def _casts(peer: AsyncPeer, counts: Counts, *, senders: int) -> Figures:
    each = counts.casts // senders

    async def send() -> None:
        for _ in range(each):
            await peer.cast()

    await peer.reset()
    started = time.monotonic()
    if senders == 1:
        await send()
    else:
        async with asyncio.TaskGroup() as group:
            for _ in range(senders):
                group.create_task(send())
    sent = time.monotonic()
    async with asyncio.timeout(_CAST_PATIENCE):
        while True:
            count, last = await peer.stats()
            if count >= each * senders:
                break
            await asyncio.sleep(_POLL_SECONDS)
    return _cast_figures(each * senders, senders, started, sent, last)


async def _big(peer: AsyncPeer, counts: Counts) -> Figures:
    for _ in range(counts.big_warmup):
        await peer.call(big=True)
    seconds = []
    for _ in range(counts.big_calls):
        before = time.perf_counter()
        await peer.call(big=True)
        seconds.append(time.perf_counter() - before)
    return {"big_p50_ms": statistics.median(seconds) * 1e3}


def _cast_figures(total: int, senders: int, started: float, sent: float, last: float) -> Figures:
    prefix = "cast" if senders == 1 else "concurrent_cast"
    return {
        f"{prefix}_rate": total / (last - started),
        f"{prefix}_send_rate": total / (sent - started),
    }


# --- In threads -----------------------------------------------------------------------------------


def measure_threaded(peer: ThreadedPeer, counts: Counts) -> Figures:
    """:func:`measure_async` for a blocking client; concurrent callers are threads."""
    figures: Figures = {}
    figures.update(_sequential_threaded(peer, counts))
    figures.update(_concurrent_threaded(peer, counts))
    figures.update(_casts_threaded(peer, counts, senders=1))
    figures.update(_casts_threaded(peer, counts, senders=counts.callers))
    if counts.big_calls:
        figures.update(_big_threaded(peer, counts))
    return figures


def _sequential_threaded(peer: ThreadedPeer, counts: Counts) -> Figures:
    for _ in range(counts.warmup):
        peer.call(big=False)
    seconds = []
    started = time.perf_counter()
    for _ in range(counts.calls):
        before = time.perf_counter()
        peer.call(big=False)
        seconds.append(time.perf_counter() - before)
    wall = time.perf_counter() - started
    return {"call_rate": counts.calls / wall} | _latencies(seconds, "call")


def _concurrent_threaded(peer: ThreadedPeer, counts: Counts) -> Figures:
    barrier = threading.Barrier(counts.callers + 1)
    failures: list[Exception] = []

    def caller() -> None:
        try:
            for _ in range(counts.caller_warmup):
                peer.call(big=False)
            barrier.wait()
            for _ in range(counts.caller_calls):
                peer.call(big=False)
        except Exception as exc:  # noqa: BLE001 - raised again by the main thread
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=caller, name=f"caller-{i}") for i in range(counts.callers)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a caller failed: raised below
        barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} concurrent callers failed") from failures[0]
    return {"concurrent_rate": counts.callers * counts.caller_calls / wall}


def _casts_threaded(peer: ThreadedPeer, counts: Counts, *, senders: int) -> Figures:
    each = counts.casts // senders
    failures: list[Exception] = []

    def send() -> None:
        try:
            for _ in range(each):
                peer.cast()
        except Exception as exc:  # noqa: BLE001 - raised again by the main thread
            failures.append(exc)

    peer.reset()
    started = time.monotonic()
    if senders == 1:
        send()
    else:
        threads = [threading.Thread(target=send, name=f"sender-{i}") for i in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    sent = time.monotonic()
    if failures:
        raise RuntimeError(f"{len(failures)} cast senders failed") from failures[0]
    deadline = sent + _CAST_PATIENCE
    while True:
        count, last = peer.stats()
        if count >= each * senders:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server counted {count} of {each * senders} casts")
        time.sleep(_POLL_SECONDS)
    return _cast_figures(each * senders, senders, started, sent, last)


def _big_threaded(peer: ThreadedPeer, counts: Counts) -> Figures:
    for _ in range(counts.big_warmup):
        peer.call(big=True)
    seconds = []
    for _ in range(counts.big_calls):
        before = time.perf_counter()
        peer.call(big=True)
        seconds.append(time.perf_counter() - before)
    return {"big_p50_ms": statistics.median(seconds) * 1e3}
