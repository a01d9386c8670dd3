"""OpenTelemetry spans around manager methods (the seed's osprofiler ``ManagerMeta``).

:class:`~steward.Manager` wraps every public method of every subclass with :func:`traced` when the
class is defined. While tracing is off (the default; ``tracing_enabled`` turns it on) a wrapped
method costs one global read and one extra call, about 0.1 µs: ``benchmarks/tracing.py``
measures it. While it is on, each call runs inside a span named
``"<trace name>:<Class>.<method>"`` (``rpc:VolumeManager.create_volume`` with the default
``__trace_args__ = {"name": "rpc"}``) carrying the manager's host and service name as the
``steward.host`` and ``steward.service`` attributes.

Spans go to the OpenTelemetry API's global tracer provider, or to the one given to
:func:`set_tracer_provider`; with none installed they are non-recording, which still costs a few
microseconds per call.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping

from opentelemetry import propagate, trace

from steward._optional import requiring

__all__ = [
    "ATTR_HOST",
    "ATTR_SERVICE",
    "TRACE_CONTEXT_KEYS",
    "configure_tracing",
    "inject_trace_context",
    "is_tracing_enabled",
    "set_tracer_provider",
    "set_tracing_enabled",
    "span",
    "traced",
]

ATTR_HOST = "steward.host"
ATTR_SERVICE = "steward.service"

_tracer = trace.get_tracer("steward")
_enabled = False

# Marks a function that already carries the wrapper, so a class is never wrapped twice.
_TRACED_MARK = "__steward_traced__"

F = typing.TypeVar("F", bound="Callable[..., object]")


def set_tracing_enabled(enabled: bool) -> None:
    """Turn the spans of traced methods on or off, for the whole process, at once."""
    global _enabled  # noqa: PLW0603 - one switch read on every traced call
    _enabled = enabled


def is_tracing_enabled() -> bool:
    """Return whether traced methods currently produce spans."""
    return _enabled


def set_tracer_provider(provider: trace.TracerProvider | None) -> None:
    """Send steward's spans to ``provider``; None goes back to OpenTelemetry's global provider.

    The global provider can be set only once per process; this lets an application (or a test)
    give steward its own without touching the global one.
    """
    global _tracer  # noqa: PLW0603 - the tracer every traced call uses
    _tracer = trace.get_tracer("steward") if provider is None else provider.get_tracer("steward")


class _Traceable(typing.Protocol):
    host: str
    service_name: str


def _start_span(owner: _Traceable, prefix: str, name: str) -> trace.Span:
    # The class the method was called on names the span, and its __trace_args__ win over the
    # defining class's, so an inherited hook is "rpc:VolumeManager.init_host".
    cls = type(owner)
    trace_args = getattr(cls, "__trace_args__", None)
    if isinstance(trace_args, Mapping):
        prefix = str(trace_args.get("name", prefix))
    return _tracer.start_span(
        f"{prefix}:{cls.__name__}.{name}",
        attributes={
            ATTR_HOST: str(getattr(owner, "host", "")),
            ATTR_SERVICE: str(getattr(owner, "service_name", "")),
        },
    )


def traced(fn: F, *, prefix: str) -> F:
    """Wrap method ``fn`` so that, while tracing is enabled, each call runs in a span.

    The span's name is ``"<prefix>:<class of self>.<fn name>"``, so an inherited method is named
    after the class it was called on. ``async def`` methods get an ``async def`` wrapper, so
    :func:`inspect.iscoroutinefunction` still tells them apart; signature and docstring are kept.
    Exceptions are recorded on the span and re-raised unchanged.
    """
    if getattr(fn, _TRACED_MARK, False):
        return fn
    name = fn.__name__
    wrapper: Callable[..., object]
    if inspect.iscoroutinefunction(fn):
        async_fn = typing.cast("Callable[..., Awaitable[object]]", fn)

        # ``*args`` rather than ``self, *args``: one fewer repack on the hot (tracing off) path.
        @functools.wraps(fn)
        async def async_wrapper(*args: object, **kwargs: object) -> object:
            if not _enabled:
                return await async_fn(*args, **kwargs)
            started = _start_span(typing.cast("_Traceable", args[0]), prefix, name)
            with trace.use_span(started, end_on_exit=True):
                return await async_fn(*args, **kwargs)

        wrapper = async_wrapper
    else:

        @functools.wraps(fn)
        def sync_wrapper(*args: object, **kwargs: object) -> object:
            if not _enabled:
                return fn(*args, **kwargs)
            started = _start_span(typing.cast("_Traceable", args[0]), prefix, name)
            with trace.use_span(started, end_on_exit=True):
                return fn(*args, **kwargs)

        wrapper = sync_wrapper
    setattr(wrapper, _TRACED_MARK, True)
    return typing.cast("F", wrapper)


TRACE_CONTEXT_KEYS = ("traceparent", "tracestate")
"""The W3C trace-context keys carried in a request's context dict (``_context_traceparent``)."""


def inject_trace_context(carrier: MutableMapping[str, typing.Any]) -> None:
    """Write the current span's W3C trace context into ``carrier`` (a request's context dict).

    oslo.messaging puts ``traceparent`` in the context dict the same way, so it travels as
    ``_context_traceparent``; peers that do not trace ignore it. Does nothing while tracing is off.
    """
    if _enabled:
        propagate.inject(carrier)


@contextlib.contextmanager
def span(
    name: str,
    *,
    kind: trace.SpanKind,
    attributes: Mapping[str, str],
    carrier: MutableMapping[str, typing.Any] | None = None,
) -> Iterator[trace.Span | None]:
    """Run the block in a span while tracing is on (else yield None at no cost).

    Used for RPC hops and periodic-task runs; manager methods get theirs from :func:`traced`.

    ``carrier`` on the server side is the request's context dict: its trace context becomes the
    span's parent, and its trace keys are removed so they do not travel further.
    """
    if not _enabled:
        yield None
        return
    parent = None
    if carrier is not None:
        parent = propagate.extract(carrier)
        for key in TRACE_CONTEXT_KEYS:
            carrier.pop(key, None)
    with _tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes=dict(attributes)
    ) as current:
        yield current


def configure_tracing(
    *, enabled: bool, exporter: str, service_name: str
) -> typing.Callable[[], None]:
    """Apply the ``tracing_enabled`` and ``tracing_exporter`` settings; return a shutdown hook.

    ``exporter`` ``"none"`` leaves spans to the process's global provider (if the application
    installed one); ``"console"`` prints them; ``"otlp"`` sends them over OTLP/HTTP, configured by
    the standard ``OTEL_EXPORTER_OTLP_*`` environment variables. The hook flushes pending spans.
    """
    set_tracing_enabled(enabled)
    if not enabled or exporter == "none":
        return lambda: None
    with requiring(f"tracing export (tracing_exporter={exporter})"):
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 - the SDK is optional
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )

    span_exporter: SpanExporter
    if exporter == "console":
        import sys  # noqa: PLC0415

        # The current stdout, not the one bound when the SDK was imported.
        span_exporter = ConsoleSpanExporter(out=sys.stdout)
    elif exporter == "otlp":
        with requiring("tracing export (tracing_exporter=otlp)"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

        span_exporter = OTLPSpanExporter()
    else:
        raise ValueError(f"`exporter` must be none, console or otlp, got {exporter!r}")
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    set_tracer_provider(provider)

    def shutdown() -> None:
        provider.shutdown()
        set_tracer_provider(None)

    return shutdown
