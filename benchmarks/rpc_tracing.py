"""Tracing on an RPC call: what spans cost a ``memory://`` call, against the same call without them.

A call to an ``async def echo`` over ``memory://`` (:func:`benchmarks._rpc.memory.steward_pair`),
100 characters each way, in five variants, µs per call:

* **plain call** - the baseline: the endpoint is a plain class, and the RPC client's and server's
  tracing hooks (``span`` and ``inject_trace_context`` in :mod:`steward.rpc.client` and
  :mod:`steward.rpc.server`) are swapped for do-nothing stand-ins around its rounds. A
  benchmark-only swap: it is the call with no tracing code at all, which steward itself cannot be;
* **tracing off** - the default: the endpoint is a :class:`steward.Manager` (its methods carry
  the tracing wrapper) and the hooks are steward's own, tracing off;
* **on, no-op provider** - ``set_tracing_enabled(True)`` with no tracer provider installed (the
  OpenTelemetry API's default): three non-recording spans per call (client, server, method);
* **on, SDK (in-memory)** - the SDK's ``TracerProvider`` given to steward alone
  (:func:`steward.tracing.set_tracer_provider`, not the OpenTelemetry global) with a
  ``SimpleSpanProcessor`` exporting to an ``InMemorySpanExporter``, cleared before each round:
  three recorded and exported spans per call, the trace context carried in the message;
* **on, SDK, batched** - the same with a ``BatchSpanProcessor`` (what
  :func:`steward.tracing.configure_tracing` installs for a real exporter): spans are exported
  from the processor's thread, off the call's path.

The variants' rounds are interleaved (round 1 of each, then round 2 of each...), all with the
same number of calls, so that a drift of the machine's speed moves every variant alike: the
goals are a few percent. Issue 6's goals, as figures: tracing off at most 2 % over the plain
call, tracing on at most 20 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import statistics
from collections.abc import AsyncIterator, Callable, Iterator

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import steward
from benchmarks._report import Column, Row, Table
from benchmarks._rpc.memory import EchoEndpoint, call_batch, steward_pair
from benchmarks._timing import FULL, QUICK, AsyncBatch, Budget, acalibrate
from steward.context import RequestContext
from steward.rpc import client as rpc_client
from steward.rpc import server as rpc_server
from steward.tracing import is_tracing_enabled, set_tracer_provider, set_tracing_enabled

__all__ = ["DESCRIPTION", "NAME", "EchoManager", "run"]

NAME = "rpc-tracing"
DESCRIPTION = (
    "Tracing on a memory:// RPC call: µs per call with tracing off, on with the no-op provider, "
    "on with the SDK, against the call without tracing code"
)

OFF_GOAL = 0.02
"""Tracing off: at most this much over the plain call (issue 6)."""
ON_GOAL = 0.20
"""Tracing on: at most this much over the plain call (issue 6)."""


class EchoManager(steward.Manager):
    """The traced endpoint: a manager whose ``echo`` carries steward's tracing wrapper."""

    async def echo(self, context: RequestContext, x: str) -> str:
        """Return ``x``: the call is the figure."""
        return x


# --- The variants ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _no_span(name: str, **options: object) -> Iterator[None]:
    yield None


def _no_injection(carrier: object) -> None:
    return None


# The RPC client's and server's tracing hooks, as the modules that call them name them.
_HOOKS = (
    (rpc_client, "span", _no_span),
    (rpc_client, "inject_trace_context", _no_injection),
    (rpc_server, "span", _no_span),
)


@contextlib.contextmanager
def _hooks_removed() -> Iterator[None]:
    """Swap the RPC client's and server's tracing hooks for do-nothing stand-ins (benchmark only).

    Both modules look the names up at each call, so the swap holds for exactly the block.
    """
    saved = [getattr(module, name) for module, name, _ in _HOOKS]
    for module, name, stand_in in _HOOKS:
        setattr(module, name, stand_in)
    try:
        yield
    finally:
        for (module, name, _), original in zip(_HOOKS, saved, strict=True):
            setattr(module, name, original)


@contextlib.contextmanager
def _tracing(*, enabled: bool, provider: TracerProvider | None = None) -> Iterator[None]:
    previous = is_tracing_enabled()
    set_tracing_enabled(enabled)
    set_tracer_provider(provider)
    try:
        yield
    finally:
        set_tracer_provider(None)
        set_tracing_enabled(previous)


@dataclasses.dataclass(frozen=True, slots=True)
class _Variant:
    key: str
    batch: AsyncBatch
    active: Callable[[], contextlib.AbstractContextManager[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class _Result:
    per_round: tuple[float, ...]
    """Seconds per call of each round."""

    @property
    def median(self) -> float:
        return statistics.median(self.per_round)

    @property
    def spread(self) -> float:
        return (max(self.per_round) - min(self.per_round)) / self.median


async def _interleaved(variants: list[_Variant], budget: Budget) -> dict[str, _Result]:
    """Time every variant ``budget.rounds`` times, round by round, the same calls each time."""
    first = variants[0]
    with first.active():
        number = await acalibrate(first.batch, budget)
    for variant in variants:  # warm each up once, untimed
        with variant.active():
            await variant.batch(number)
    seconds: dict[str, list[float]] = {variant.key: [] for variant in variants}
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(budget.rounds):
            for variant in variants:
                with variant.active():
                    seconds[variant.key].append(await variant.batch(number) / number)
    finally:
        if was_enabled:
            gc.enable()
    return {key: _Result(tuple(values)) for key, values in seconds.items()}


def _provider(processor: type[SimpleSpanProcessor | BatchSpanProcessor]) -> _SDK:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(processor(exporter))
    return _SDK(provider, exporter)


@dataclasses.dataclass(frozen=True, slots=True)
class _SDK:
    provider: TracerProvider
    exporter: InMemorySpanExporter


@contextlib.asynccontextmanager
async def _variants(*, with_noop: bool) -> AsyncIterator[tuple[list[_Variant], list[_SDK]]]:
    simple, batched = _provider(SimpleSpanProcessor), _provider(BatchSpanProcessor)
    manager = EchoManager(host="bench", service_name="bench")
    async with (
        steward_pair(EchoEndpoint(), url="memory://plain") as plain,
        steward_pair(manager, url="memory://traced") as traced,
    ):
        variants = [
            _Variant("plain", call_batch(plain), _hooks_removed),
            _Variant("off", call_batch(traced), lambda: _tracing(enabled=False)),
        ]
        if with_noop:
            variants.append(_Variant("noop", call_batch(traced), lambda: _tracing(enabled=True)))
        variants += [
            _Variant(
                "sdk",
                call_batch(traced, before_round=simple.exporter.clear),
                lambda: _tracing(enabled=True, provider=simple.provider),
            ),
            _Variant(
                "batch",
                call_batch(traced, before_round=batched.exporter.clear),
                lambda: _tracing(enabled=True, provider=batched.provider),
            ),
        ]
        try:
            yield variants, [simple, batched]
        finally:
            for sdk in (simple, batched):
                sdk.provider.shutdown()


async def _measure(budget: Budget, *, with_noop: bool) -> dict[str, _Result]:
    async with _variants(with_noop=with_noop) as (variants, providers):
        results = await _interleaved(variants, budget)
        # The last SDK rounds' spans are there: proof the calls went through the SDK.
        for sdk in providers:
            sdk.provider.force_flush()
            if not sdk.exporter.get_finished_spans():
                raise RuntimeError("an SDK tracer provider received no spans; steward ignores it")
            sdk.exporter.clear()
    return results


# --- The table ------------------------------------------------------------------------------------


_LABELS = {
    "plain": "plain call, no tracing code",
    "off": "tracing off (default), Manager endpoint",
    "noop": "tracing on, no-op provider",
    "sdk": "tracing on, SDK in-memory exporter",
    "batch": "tracing on, SDK, batched export",
}


def _table() -> Table:
    return Table(
        name="rpc_call",
        title="Tracing on a memory:// call (µs per call; overhead vs the plain call and vs off)",
        columns=(
            Column("variant", "variant"),
            Column("key", "key", show=False),
            Column("us", "µs/call", "time", "µs"),
            Column("vs_plain_pct", "vs plain", "delta", "%"),
            Column("vs_off_pct", "vs off", "delta", "%"),
            Column("goal", "goal (vs plain)"),
            Column("met", "met"),
            Column("spread", "spread", "ratio", show=False),
        ),
        notes=[
            "One call: RPCClient.call -> memory:// -> RPCServer -> async def echo, 100 characters "
            "each way. With tracing on, three spans per call (client, server, manager method).",
            "Rounds interleaved across the variants, the same number of calls in each; the "
            "figure is the median round.",
        ],
    )


def _row(key: str, result: _Result | None, plain: _Result, off: _Result) -> Row:
    goal = {"off": OFF_GOAL, "noop": ON_GOAL, "sdk": ON_GOAL, "batch": ON_GOAL}.get(key)
    row: Row = {"variant": _LABELS[key], "key": key}
    if result is None:
        return row | {"us": None, "vs_plain_pct": None, "vs_off_pct": None, "spread": None}
    over_plain = result.median / plain.median - 1
    row |= {
        "us": result.median * 1e6,
        "vs_plain_pct": None if key == "plain" else over_plain * 100,
        "vs_off_pct": None if key == "off" else (result.median / off.median - 1) * 100,
        "spread": result.spread,
        "goal": None if goal is None else f"≤ {goal * 100:g} %",
        "met": None if goal is None else ("yes" if over_plain <= goal else "no"),
    }
    return row


def run(*, quick: bool) -> list[Table]:
    """Measure the variants, interleaved; one table."""
    budget = QUICK if quick else FULL
    with_noop = isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    results = asyncio.run(_measure(budget, with_noop=with_noop))
    table = _table()
    plain, off = results["plain"], results["off"]
    for key in _LABELS:
        table.rows.append(_row(key, results.get(key), plain, off))
    if not with_noop:
        table.notes.append("no-op provider: skipped, this process installed a global provider.")
    return [table]
