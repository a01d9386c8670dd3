"""Tracing wrapper: what wrapping every public manager method in a span costs per call.

:class:`steward.Manager` wraps each public method of a subclass when the class is defined
(:mod:`steward.tracing`). Measured in tight loops (the way :mod:`timeit` does), against the same
method on a plain class that nothing wraps, for a ``def`` method called and an ``async def``
method awaited (the coroutine never suspends, so the event loop adds nothing):

* **plain class** - the baseline: no wrapper;
* **tracing off** - the default: the wrapper reads one global and calls through;
* **tracing on, no-op provider** - ``set_tracing_enabled(True)`` with no tracer provider
  installed, the OpenTelemetry API's default: spans are non-recording;
* **tracing on, SDK** - the SDK's ``TracerProvider`` with a ``SimpleSpanProcessor`` exporting to
  an ``InMemorySpanExporter`` (cleared before each round): every call records and exports a span.

The SDK provider is given to steward alone (:func:`steward.tracing.set_tracer_provider`), so the
process's global provider is untouched and the no-op row measures the API's default.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
import typing
from collections.abc import Callable, Iterator

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import steward
from benchmarks._report import Column, Row, Table
from benchmarks._timing import FULL, QUICK, AsyncBatch, Batch, Budget, Timing, ameasure, measure
from steward.context import RequestContext
from steward.tracing import is_tracing_enabled, set_tracer_provider, set_tracing_enabled

__all__ = ["DESCRIPTION", "NAME", "PlainVolumes", "VolumeManager", "run"]

NAME = "tracing"
DESCRIPTION = (
    "Tracing wrapper: ns per call of a Manager method against a plain one; tracing off, "
    "on with the no-op provider, on with the SDK"
)


class PlainVolumes:
    """The baseline: the same methods as :class:`VolumeManager`, on a class nothing wraps."""

    host = "bench"
    service_name = "bench"

    def create_volume(self, context: RequestContext) -> int:
        """Return at once: the figure is the call."""
        return 1

    async def delete_volume(self, context: RequestContext) -> int:
        """Return at once: the figure is the call and the await."""
        return 1


class VolumeManager(steward.Manager):
    """The measured class: :class:`PlainVolumes`'s methods, wrapped by ``Manager``."""

    def create_volume(self, context: RequestContext) -> int:
        """Return at once: the figure is the call."""
        return 1

    async def delete_volume(self, context: RequestContext) -> int:
        """Return at once: the figure is the call and the await."""
        return 1


class _Volumes(typing.Protocol):
    def create_volume(self, context: RequestContext) -> int: ...

    async def delete_volume(self, context: RequestContext) -> int: ...


@dataclasses.dataclass(frozen=True, slots=True)
class _SDK:
    provider: TracerProvider
    exporter: InMemorySpanExporter


def _sdk() -> _SDK:
    """An SDK provider exporting to memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return _SDK(provider, exporter)


@contextlib.contextmanager
def _steward_provider(provider: TracerProvider) -> Iterator[None]:
    set_tracer_provider(provider)
    try:
        yield
    finally:
        set_tracer_provider(None)


@contextlib.contextmanager
def _tracing(enabled: bool) -> Iterator[None]:
    previous = is_tracing_enabled()
    set_tracing_enabled(enabled)
    try:
        yield
    finally:
        set_tracing_enabled(previous)


def _do_nothing() -> None:
    return None


def _call_batch(target: _Volumes, before_round: Callable[[], None]) -> Batch:
    context = RequestContext()

    def batch(number: int) -> float:
        before_round()
        started = time.perf_counter()
        for _ in itertools.repeat(None, number):
            target.create_volume(context)
        return time.perf_counter() - started

    return batch


def _await_batch(target: _Volumes, before_round: Callable[[], None]) -> AsyncBatch:
    context = RequestContext()

    async def batch(number: int) -> float:
        before_round()
        started = time.perf_counter()
        for _ in itertools.repeat(None, number):
            await target.delete_volume(context)
        return time.perf_counter() - started

    return batch


@dataclasses.dataclass(frozen=True, slots=True)
class _Variant:
    key: str
    label: str
    target: _Volumes
    tracing: bool
    before_round: Callable[[], None] = _do_nothing


def _measure(variant: _Variant, budget: Budget) -> tuple[Timing, Timing]:
    with _tracing(variant.tracing):
        called = measure(_call_batch(variant.target, variant.before_round), budget)
        awaited = asyncio.run(ameasure(_await_batch(variant.target, variant.before_round), budget))
    return called, awaited


def _row(variant: _Variant, figures: tuple[Timing, Timing] | None, plain: Row) -> Row:
    row: Row = {"variant": variant.label, "key": variant.key}
    for kind, index in (("def", 0), ("async", 1)):
        nanos = None if figures is None else figures[index].median * 1e9
        base = plain.get(f"{kind}_ns")
        row[f"{kind}_ns"] = nanos
        row[f"{kind}_spread"] = None if figures is None else figures[index].spread
        if nanos is None or not isinstance(base, float):
            row[f"{kind}_overhead_ns"] = row[f"{kind}_ratio"] = None
        else:
            row[f"{kind}_overhead_ns"] = nanos - base
            row[f"{kind}_ratio"] = nanos / base
    return row


def _table() -> Table:
    return Table(
        name="wrapper",
        title="Traced manager method vs plain method (ns per call, overhead and ratio vs plain)",
        columns=(
            Column("variant", "variant"),
            Column("key", "key", show=False),
            Column("def_ns", "def", "time", "ns"),
            Column("def_overhead_ns", "def overhead", "delta", "ns"),
            Column("def_ratio", "def vs plain", "ratio"),
            Column("async_ns", "async def", "time", "ns"),
            Column("async_overhead_ns", "async overhead", "delta", "ns"),
            Column("async_ratio", "async vs plain", "ratio"),
            Column("def_spread", "def spread", "ratio", show=False),
            Column("async_spread", "async spread", "ratio", show=False),
        ),
        notes=[
            "def: obj.create_volume(ctx) called in a loop; async def: await "
            "obj.delete_volume(ctx) in a loop (never suspends).",
            "Each figure includes the loop and the attribute lookup, the same on every row.",
        ],
    )


def run(*, quick: bool) -> list[Table]:
    """Measure every variant; one table, a row per variant."""
    budget = QUICK if quick else FULL
    manager = VolumeManager(host="bench", service_name="bench")
    table = _table()
    plain = _Variant("plain", "plain class, no wrapper", PlainVolumes(), tracing=False)
    plain_row = _row(plain, _measure(plain, budget), {})
    table.rows.append(plain_row)
    off = _Variant("off", "Manager, tracing off", manager, tracing=False)
    table.rows.append(_row(off, _measure(off, budget), plain_row))

    noop = _Variant("noop", "Manager, on, no-op provider", manager, tracing=True)
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        table.rows.append(_row(noop, _measure(noop, budget), plain_row))
    else:
        table.rows.append(_row(noop, None, plain_row))
        table.notes.append("no-op provider: skipped, this process installed a global provider.")

    sdk_setup = _sdk()
    exporter = sdk_setup.exporter
    sdk = _Variant(
        "sdk", "Manager, on, SDK (in-memory)", manager, tracing=True, before_round=exporter.clear
    )
    with _steward_provider(sdk_setup.provider):
        figures = _measure(sdk, budget)
    # The last round's spans are still there: proof the calls went through the SDK.
    if len(exporter.get_finished_spans()) < figures[1].number:
        raise RuntimeError(
            "the SDK tracer provider received fewer spans than calls were made; "
            "steward's tracer is not using it"
        )
    exporter.clear()
    table.rows.append(_row(sdk, figures, plain_row))
    return [table]
