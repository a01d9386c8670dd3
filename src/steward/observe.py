"""Metrics and health over HTTP: Prometheus ``/metrics``, ``/healthz`` and ``/readyz``.

Off unless ``metrics_port`` is set; it listens on 127.0.0.1 unless ``metrics_host`` says otherwise.
The metrics are exposed through prometheus-client from the services' own statistics, read at
scrape time (so the hot path pays nothing): RPC requests and failures and a latency histogram per
method, requests in flight, periodic-task runs, failures and last duration, the age of the last
heartbeat, notifications sent.

* ``/healthz`` answers 200 while the process's event loop runs a no-op within a second (a loop
  stuck in blocking code fails it): Kubernetes' liveness probe.
* ``/readyz`` answers 200 when every service's RPC consumers run and its last heartbeat reached
  the registry: the readiness probe. Both answer 503 with the reason otherwise.

The HTTP server is the standard library's WSGI server in a thread the :class:`Observer` owns: a
scrape never waits on the event loop except for the snapshot it takes there, so a slow loop shows
up as a failing ``/healthz`` rather than as a hung endpoint.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
import typing
from collections.abc import Iterable, Iterator, Sequence
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from steward._optional import require

if typing.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from steward.service import Service

__all__ = ["Observer"]

LOG = logging.getLogger(__name__)

# How long an HTTP thread waits for the event loop before declaring it stuck.
LOOP_DEADLINE = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class _Snapshot:
    """Everything a scrape needs, copied on the loop's thread."""

    families: list[typing.Any]
    ready: list[str]  # reasons for not being ready; empty when ready


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: typing.Any) -> None:  # noqa: ANN401 - stdlib's
        LOG.debug("metrics: %s", format % args)


class Observer:
    """Serves metrics and probes for ``services`` on ``host:port`` (port 0: any free port)."""

    def __init__(
        self, services: Sequence[Service], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.services = list(services)
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        """Bind and start serving in a thread; ``self.port`` is the bound port afterwards."""
        require("prometheus_client", feature="metrics (metrics_port)")  # scrapes import it
        self._loop = asyncio.get_running_loop()
        self._server = make_server(self.host, self.port, self._app, handler_class=_QuietHandler)
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="steward-metrics", daemon=True
        )
        self._thread.start()
        LOG.info("Metrics and health on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        """Stop serving and join the thread."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()
        if thread is not None:
            await asyncio.to_thread(thread.join)

    # --- on the HTTP thread -------------------------------------------------------------------

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        try:
            snapshot = self._snapshot_from_loop()
        except (TimeoutError, concurrent.futures.TimeoutError, RuntimeError) as exc:
            return _respond(start_response, 503, f"event loop not responding: {exc!r}\n")
        if path == "/healthz":
            return _respond(start_response, 200, "ok\n")
        if path == "/readyz":
            if snapshot.ready:
                return _respond(
                    start_response, 503, "not ready: " + "; ".join(snapshot.ready) + "\n"
                )
            return _respond(start_response, 200, "ready\n")
        if path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415
            from prometheus_client.registry import Collector, CollectorRegistry  # noqa: PLC0415

            class _Fixed(Collector):
                def collect(self) -> Iterator[typing.Any]:
                    return iter(snapshot.families)

            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Fixed())
            body = generate_latest(registry)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [body]
        return _respond(start_response, 404, "not found: try /metrics, /healthz or /readyz\n")

    def _snapshot_from_loop(self) -> _Snapshot:
        if self._loop is None or self._loop.is_closed():
            raise RuntimeError("no event loop")
        future = asyncio.run_coroutine_threadsafe(self._snapshot(), self._loop)
        try:
            return future.result(timeout=LOOP_DEADLINE)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    # --- on the loop --------------------------------------------------------------------------

    async def _snapshot(self) -> _Snapshot:
        from prometheus_client.core import (  # noqa: PLC0415 - only scrapes need it
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        from steward.rpc.server import LATENCY_BUCKETS  # noqa: PLC0415

        requests = CounterMetricFamily(
            "steward_rpc_requests", "RPC requests handled, by method", labels=["service", "method"]
        )
        failures = CounterMetricFamily(
            "steward_rpc_failures", "RPC requests that failed", labels=["service", "method"]
        )
        latency = HistogramMetricFamily(
            "steward_rpc_request_duration_seconds",
            "Time to handle an RPC request",
            labels=["service", "method"],
        )
        in_flight = GaugeMetricFamily(
            "steward_rpc_in_flight", "RPC requests being handled", labels=["service"]
        )
        runs = CounterMetricFamily(
            "steward_periodic_task_runs", "Periodic task runs", labels=["service", "task"]
        )
        task_failures = CounterMetricFamily(
            "steward_periodic_task_failures",
            "Periodic task runs that failed",
            labels=["service", "task"],
        )
        durations = GaugeMetricFamily(
            "steward_periodic_task_last_duration_seconds",
            "Duration of the last run of each periodic task",
            labels=["service", "task"],
        )
        heartbeat_age = GaugeMetricFamily(
            "steward_heartbeat_age_seconds",
            "Seconds since the last heartbeat reached the registry",
            labels=["service"],
        )
        notifications = CounterMetricFamily(
            "steward_notifications_sent",
            "Notifications handed to the broker by the messaging driver",
            labels=["service"],
        )
        reasons: list[str] = []
        bounds = [str(bound) for bound in LATENCY_BUCKETS] + ["+Inf"]
        for service in self.services:
            name = service.binary
            server = service.rpcserver
            if server is None or not server.running:
                reasons.append(f"{name}: RPC consumers are not running")
            if service.failure is not None:
                # Unauthenticated HTTP: the exception's type only, its text stays in the log.
                reasons.append(f"{name}: failed ({type(service.failure).__name__})")
            if not service.registry_reachable:
                reasons.append(f"{name}: the registry has not taken a heartbeat")
            if service.last_heartbeat is not None:
                age = service.clock.monotonic() - service.last_heartbeat
                heartbeat_age.add_metric([name], age)
            if server is not None:
                in_flight.add_metric([name], server.in_flight)
                for method, stats in server.method_stats.items():
                    requests.add_metric([name, method], stats.calls)
                    failures.add_metric([name, method], stats.failures)
                    cumulative, total = [], 0
                    for bound, count in zip(bounds, stats.buckets, strict=True):
                        total += count
                        cumulative.append((bound, total))
                    latency.add_metric([name, method], cumulative, stats.total_seconds)
            notifications.add_metric([name], service.manager.notifier.delivered)
            for task in service.manager.periodic_scheduler.stats():
                runs.add_metric([name, task.name], task.runs)
                task_failures.add_metric([name, task.name], task.failures)
                if task.last_duration is not None:
                    durations.add_metric([name, task.name], task.last_duration)
        families = [
            requests, failures, latency, in_flight, runs, task_failures, durations, heartbeat_age,
            notifications,
        ]  # fmt: skip
        return _Snapshot(families=families, ready=reasons)


def _respond(start_response: StartResponse, status: int, text: str) -> list[bytes]:
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "text/plain; charset=utf-8")])
    return [text.encode()]
