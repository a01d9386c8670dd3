"""What a launcher turns on around its services: tracing, and the metrics and health endpoint.

Both read the launcher's settings: ``tracing_enabled`` and ``tracing_exporter`` configure
OpenTelemetry (:func:`steward.tracing.configure_tracing`) for as long as the services run;
``metrics_port`` (with ``metrics_host``) serves Prometheus metrics and ``/healthz``/``/readyz``
(:class:`steward.observe.Observer`) while they serve.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence

from steward.config import Settings
from steward.observe import Observer
from steward.service import Service
from steward.tracing import configure_tracing

__all__ = ["serving_metrics", "tracing"]


@contextlib.contextmanager
def tracing(settings: Settings, *, service_name: str) -> Iterator[None]:
    """Configure tracing from ``settings`` for the block; flush and shut it down after."""
    shutdown = configure_tracing(
        enabled=settings.tracing_enabled,
        exporter=settings.tracing_exporter,
        service_name=service_name,
    )
    try:
        yield
    finally:
        shutdown()


@contextlib.asynccontextmanager
async def serving_metrics(
    settings: Settings, services: Sequence[Service]
) -> AsyncIterator[Observer | None]:
    """Serve metrics and health probes of ``services`` for the block, if ``metrics_port`` is set."""
    if settings.metrics_port is None:
        yield None
        return
    observer = Observer(services, host=settings.metrics_host, port=settings.metrics_port)
    await observer.start()
    try:
        yield observer
    finally:
        await observer.close()
