from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from steward import Manager, RequestContext
from steward.rpc import RPCClient, RPCServer, Target, get_transport, wire
from steward.rpc.transports.base import Transport
from steward.tracing import set_tracer_provider, set_tracing_enabled


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    set_tracer_provider(provider)
    set_tracing_enabled(True)
    yield exporter
    set_tracing_enabled(False)
    set_tracer_provider(None)


@pytest.fixture(params=["memory", "rabbit"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    """In-process, and through the machine's RabbitMQ (a real broker hop)."""
    url = "memory://" if request.param == "memory" else request.getfixturevalue("rabbit_url")
    transport = get_transport(url)
    yield transport
    await transport.close()


class VolumeManager(Manager):
    async def create(self, context: RequestContext, size: int) -> int:
        return size


class ComputeManager(Manager):
    volumes: RPCClient

    async def boot(self, context: RequestContext, size: int) -> int:
        result: int = await self.volumes.call(context, "create", size=size)
        return result


async def test_one_trace_spans_client_server_and_a_nested_call(
    spans: InMemorySpanExporter, transport: Transport
) -> None:
    compute = ComputeManager(host="c1", service_name="compute")
    compute.volumes = RPCClient(transport, Target("volume"), timeout=30)
    servers = [
        RPCServer(transport, Target("compute", "c1"), [compute]),
        RPCServer(transport, Target("volume", "v1"), [VolumeManager(host="v1")]),
    ]
    for server in servers:
        await server.start()
    try:
        assert (
            await RPCClient(transport, Target("compute")).call(RequestContext(), "boot", size=3)
            == 3
        )
    finally:
        for server in servers:
            await server.stop()
            await server.wait()
    finished = spans.get_finished_spans()
    by_name = {span.name: span for span in finished}
    assert set(by_name) == {
        "compute.boot call",
        "compute.boot handle",
        "rpc:ComputeManager.boot",
        "volume.create call",
        "volume.create handle",
        "rpc:VolumeManager.create",
    }
    assert len({span.context.trace_id for span in finished if span.context}) == 1

    def parent_of(name: str) -> ReadableSpan:
        span = by_name[name]
        assert span.parent is not None
        (parent,) = [s for s in finished if s.context and s.context.span_id == span.parent.span_id]
        return parent

    assert by_name["compute.boot call"].parent is None
    assert by_name["compute.boot call"].kind is SpanKind.CLIENT
    assert parent_of("compute.boot handle").name == "compute.boot call"
    assert by_name["compute.boot handle"].kind is SpanKind.SERVER
    assert parent_of("rpc:ComputeManager.boot").name == "compute.boot handle"
    assert parent_of("volume.create call").name == "rpc:ComputeManager.boot"
    assert parent_of("volume.create handle").name == "volume.create call"
    assert parent_of("rpc:VolumeManager.create").name == "volume.create handle"


async def test_trace_context_travels_as_an_oslo_context_field(
    spans: InMemorySpanExporter,
) -> None:
    client = RPCClient(get_transport("memory://"), Target("t"))
    context = client._context(RequestContext(user_id="u"))
    assert "traceparent" not in context  # no current span: nothing to carry
    from steward.tracing import span

    with span("outer", kind=SpanKind.CLIENT, attributes={}):
        context = client._context(RequestContext(user_id="u"))
    inner = wire.request("m", {}, context)
    assert inner["_context_traceparent"].startswith("00-")
    assert inner["_context_user"] == "u"


async def test_no_trace_context_is_sent_while_tracing_is_off() -> None:
    client = RPCClient(get_transport("memory://"), Target("t"))
    assert "traceparent" not in client._context(RequestContext())
