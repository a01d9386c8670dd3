from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from steward import Manager, RequestContext, periodic_task
from steward.periodic import collect_periodic_tasks
from steward.tracing import (
    ATTR_HOST,
    ATTR_SERVICE,
    is_tracing_enabled,
    set_tracer_provider,
    set_tracing_enabled,
)

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, steward's spans kept in memory; the OTel global provider is left alone."""
    set_tracer_provider(_PROVIDER)
    _EXPORTER.clear()
    set_tracing_enabled(True)
    yield _EXPORTER
    set_tracing_enabled(False)
    set_tracer_provider(None)
    _EXPORTER.clear()


class VolumeManager(Manager):
    def create_volume(self, context: RequestContext, size: int, *, name: str = "v") -> str:
        """Create a volume of ``size`` GiB."""
        return f"{name}-{size}"

    async def delete_volume(self, context: RequestContext, volume_id: str) -> str:
        """Delete a volume."""
        if volume_id == "missing":
            raise LookupError(volume_id)
        return volume_id

    def _private(self) -> str:
        return "untraced"

    @periodic_task(spacing=5)
    def audit(self, context: RequestContext) -> None:
        """Audit usage."""

    @staticmethod
    def helper() -> str:
        return "static"


class Renamed(VolumeManager):
    __trace_args__ = {"name": "volume"}  # noqa: RUF012 - the seed's class attribute, read-only


def test_wrapper_keeps_signature_docstring_and_kind() -> None:
    sig = inspect.signature(VolumeManager.create_volume)
    assert list(sig.parameters) == ["self", "context", "size", "name"]
    assert sig.parameters["size"].annotation in (int, "int")
    assert VolumeManager.create_volume.__doc__ == "Create a volume of ``size`` GiB."
    assert VolumeManager.create_volume.__name__ == "create_volume"
    assert inspect.iscoroutinefunction(VolumeManager.delete_volume)
    assert not inspect.iscoroutinefunction(VolumeManager.create_volume)
    assert hasattr(VolumeManager.create_volume, "__wrapped__")
    assert not hasattr(VolumeManager._private, "__wrapped__")
    assert VolumeManager.helper() == "static"


def test_periodic_tasks_survive_wrapping() -> None:
    assert [attr for attr, _ in collect_periodic_tasks(VolumeManager)] == ["audit"]
    assert hasattr(VolumeManager.audit, "__wrapped__")


async def test_no_spans_while_tracing_is_off(spans: InMemorySpanExporter) -> None:
    set_tracing_enabled(False)
    assert not is_tracing_enabled()
    manager = VolumeManager(host="h", service_name="volume")
    assert manager.create_volume(RequestContext(), 1) == "v-1"
    assert await manager.delete_volume(RequestContext(), "x") == "x"
    assert spans.get_finished_spans() == ()
    set_tracing_enabled(True)
    manager.create_volume(RequestContext(), 1)
    assert len(spans.get_finished_spans()) == 1


async def test_public_methods_run_in_named_spans(spans: InMemorySpanExporter) -> None:
    manager = VolumeManager(host="node1", service_name="volume")
    assert manager.create_volume(RequestContext(), 2, name="a") == "a-2"
    assert await manager.delete_volume(RequestContext(), "b") == "b"
    assert manager._private() == "untraced"
    finished = spans.get_finished_spans()
    assert [span.name for span in finished] == [
        "rpc:VolumeManager.create_volume",
        "rpc:VolumeManager.delete_volume",
    ]
    for span in finished:
        assert span.attributes is not None
        assert span.attributes[ATTR_HOST] == "node1"
        assert span.attributes[ATTR_SERVICE] == "volume"


async def test_hooks_and_inherited_methods_are_named_after_the_called_class(
    spans: InMemorySpanExporter,
) -> None:
    manager = Renamed(host="h", service_name="volume")
    manager.init_host(None)
    manager.create_volume(RequestContext(), 1)
    await manager.periodic_tasks(RequestContext())
    assert [span.name for span in spans.get_finished_spans()] == [
        "volume:Renamed.init_host",
        "volume:Renamed.create_volume",
        "volume:Renamed.periodic_tasks",
    ]


async def test_exceptions_are_recorded_and_reraised(spans: InMemorySpanExporter) -> None:
    manager = VolumeManager(host="h", service_name="volume")
    with pytest.raises(LookupError):
        await manager.delete_volume(RequestContext(), "missing")
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


async def test_nested_calls_nest_spans(spans: InMemorySpanExporter) -> None:
    class Outer(Manager):
        async def outer(self, context: RequestContext) -> str:
            return self.inner(context)

        def inner(self, context: RequestContext) -> str:
            return "done"

    assert await Outer(host="h").outer(RequestContext()) == "done"
    inner, outer = spans.get_finished_spans()
    assert inner.name == "rpc:Outer.inner"
    assert inner.parent is not None
    assert outer.context is not None
    assert inner.parent.span_id == outer.context.span_id


def test_a_class_is_never_wrapped_twice() -> None:
    class Again(VolumeManager):
        create_volume = VolumeManager.create_volume

    assert Again.create_volume is VolumeManager.create_volume
    assert not hasattr(vars(Again.create_volume)["__wrapped__"], "__wrapped__")


async def test_periodic_task_runs_get_a_span_around_the_method(
    spans: InMemorySpanExporter,
) -> None:
    from steward.testing import FakeClock

    manager = VolumeManager(host="h", service_name="volume", clock=FakeClock())
    manager.periodic_scheduler.start()
    manager.periodic_scheduler.clock.advance(5)  # type: ignore[attr-defined]
    await manager.periodic_scheduler.run_due(RequestContext())
    by_name = {span.name: span for span in spans.get_finished_spans()}
    run, method = by_name["periodic:VolumeManager.audit"], by_name["rpc:VolumeManager.audit"]
    assert method.parent is not None
    assert run.context is not None
    assert method.parent.span_id == run.context.span_id


def test_console_exporter_prints_spans_and_flushes_on_shutdown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from steward.tracing import configure_tracing

    shutdown = configure_tracing(enabled=True, exporter="console", service_name="steward-volume")
    try:
        VolumeManager(host="h", service_name="volume").create_volume(RequestContext(), 1)
    finally:
        shutdown()
        set_tracing_enabled(False)
    out = capsys.readouterr().out
    assert '"name": "rpc:VolumeManager.create_volume"' in out
    assert '"service.name": "steward-volume"' in out


def test_tracing_off_or_exporter_none_installs_nothing() -> None:
    from steward.tracing import configure_tracing

    configure_tracing(enabled=False, exporter="console", service_name="x")()
    assert not is_tracing_enabled()
    with pytest.raises(ValueError, match="must be none, console or otlp"):
        configure_tracing(enabled=True, exporter="zipkin", service_name="x")
    set_tracing_enabled(False)
