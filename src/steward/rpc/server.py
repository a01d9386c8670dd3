"""RPCServer: consume a topic and run the requested endpoint methods.

``await server.serve(task_status=...)`` consumes ``topic``, ``topic.server`` and the topic's
fanout, reports readiness through ``task_status`` (trio's convention; see
:func:`steward._aio.start`) and serves until it is cancelled or fails; then it stops consuming and
lets the requests in flight finish within ``graceful_shutdown_timeout``. ``async with server:``
does the same around a block. The steps are public too: ``await server.start()`` consumes,
``await server.stop()`` stops consuming, ``await server.wait(grace_period=...)`` waits for the
requests in flight and returns those still running after the grace period to their queue
(nothing accepted is lost), ``await server.aclose()`` does all of that and releases the server.

Each request runs as a task of the server's :class:`~steward._aio.TaskGroup`; a call whose caller
set ``call_monitor_timeout`` gets oslo's heartbeat replies while its method runs. A listener whose
consumer dies, or a request task that fails outside its own error handling, fails the server at
once: :attr:`RPCServer.failure` holds the error, ``on_crash`` (given by the owner: a
:class:`~steward.service.Service` stops with it) is told, and :meth:`RPCServer.serve` raises it.

Each message is settled after it is handled: acknowledged once the method returned and the reply
was sent (at-least-once, where oslo acknowledges on arrival), rejected when it can never be
handled (malformed), requeued when the server stops mid-request. Bad input never stops the
server: it logs one line, answers the caller with a precise error when the message names a reply
address, and goes on. Redelivered duplicates are recognised by ``_unique_id`` (the last ids seen
by this server, as oslo) and acknowledged without running twice; a request cut off by a stop is
not one of them: it runs again when it comes back. A copy arriving while the original still runs
(a broker redelivering after a lost connection) is held, and settled as the original ends.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import dataclasses
import logging
import time
import typing
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

from opentelemetry.trace import SpanKind

from steward import config
from steward._aio import (
    TASK_STATUS_IGNORED,
    AsyncStarting,
    CrashHandler,
    TaskGroup,
    TaskStatus,
)
from steward.errors import (
    InvalidTarget,
    MalformedMessage,
    MessageTooLarge,
    NoSuchMethod,
    RPCDispatchError,
    UnsupportedVersion,
)
from steward.redact import shorten
from steward.rpc import wire
from steward.rpc.dispatcher import Dispatcher
from steward.rpc.serializer import Serializer
from steward.rpc.target import Target
from steward.rpc.transports.base import IncomingMessage, Listener, Transport
from steward.tracing import TRACE_CONTEXT_KEYS, is_tracing_enabled, span

__all__ = ["LATENCY_BUCKETS", "UNKNOWN_METHOD", "MethodStats", "RPCServer"]

LOG = logging.getLogger(__name__)

# How many recent _unique_id values to remember for duplicate detection. oslo keeps 16; a server
# holding up to `prefetch` messages at once needs at least that many to catch a redelivery.
_MIN_SEEN_IDS = 16

UNKNOWN_METHOD = "<unknown>"
"""The one statistics series of every request whose method did not resolve to an endpoint's.

Method names come from callers: only the methods the endpoints define (a fixed set) get a series
of their own, so no name a message carries can grow the statistics, the report or ``/metrics``.
"""


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the request-latency histogram; a last bucket holds the rest."""


@dataclasses.dataclass(slots=True)
class MethodStats:
    """Requests for one method: how many, how many failed, how long they took (seconds).

    ``buckets[i]`` counts requests that took at most ``LATENCY_BUCKETS[i]`` seconds and more than
    the bound before it; the last entry counts the slower ones.
    """

    calls: int = 0
    failures: int = 0
    total_seconds: float = 0.0
    max_seconds: float = 0.0
    buckets: list[int] = dataclasses.field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))


class RPCServer(AsyncStarting):
    """Serves ``endpoints`` on server ``target`` (a topic and a server name) over ``transport``.

    ``executor`` runs plain ``def`` methods (default: a pool of ``executor_thread_pool_size``
    threads owned by the server). ``prefetch`` bounds the requests in progress at once (default:
    ``executor_thread_pool_size``). ``settings`` gives those defaults and the grace period of
    :meth:`serve` (default: the transport's settings; a :class:`~steward.service.Service` passes
    its own). ``on_crash`` is told at once when the server fails (see the module docstring).
    """

    def __init__(
        self,
        transport: Transport,
        target: Target,
        endpoints: Sequence[object],
        *,
        serializer: Serializer | None = None,
        executor: Executor | None = None,
        prefetch: int | None = None,
        settings: config.Settings | None = None,
        on_crash: CrashHandler | None = None,
    ) -> None:
        if not target.topic or not target.server:
            raise InvalidTarget(f"a server target needs a topic and a server, got {target}")
        settings = settings if settings is not None else transport.settings
        self.transport = transport
        self.target = target
        self._own_executor = executor is None
        self.executor = executor or ThreadPoolExecutor(
            max_workers=settings.executor_thread_pool_size,
            thread_name_prefix=f"rpc-{target.topic}",
        )
        self.dispatcher = Dispatcher(endpoints, serializer=serializer, executor=self.executor)
        self.prefetch = prefetch if prefetch is not None else settings.executor_thread_pool_size
        self.graceful_shutdown_timeout = settings.graceful_shutdown_timeout
        self.on_crash = on_crash
        self.failure: BaseException | None = None
        self._failed = asyncio.Event()
        self._listener: Listener | None = None
        self._requests = TaskGroup(f"rpc server {target}", on_crash=self._crashed)
        self._seen: collections.deque[str] = collections.deque(
            maxlen=max(_MIN_SEEN_IDS, 2 * self.prefetch)
        )
        # The _unique_id of each request being run now -> whether it ran (False: cut off).
        self._running: dict[str, asyncio.Future[bool]] = {}
        self.handled = 0
        self.failed = 0
        self.method_stats: dict[str, MethodStats] = {}

    @property
    def running(self) -> bool:
        """Whether the server is consuming."""
        return self._listener is not None

    @property
    def in_flight(self) -> int:
        """Requests received and not yet finished."""
        return len(self._requests)

    def _crashed(self, exc: BaseException) -> None:
        """Fail the server: a consumer or a request task died of ``exc``."""
        if self.failure is not None:
            return
        self.failure = exc
        self._failed.set()
        LOG.error("RPC server for %s failed: %r", self.target, exc)
        if self.on_crash is not None:
            self.on_crash(exc)

    async def serve(self, *, task_status: TaskStatus = TASK_STATUS_IGNORED) -> None:
        """Consume, report readiness, and serve until cancelled; raise what failed the server.

        When it ends, it stops consuming and gives the requests in flight
        ``graceful_shutdown_timeout`` seconds (see :meth:`aclose`).
        """
        async with self:
            task_status.started()
            await self._failed.wait()
            assert self.failure is not None  # noqa: S101 - set with _failed
            raise self.failure

    async def start(self) -> None:
        """Start consuming; calling it on a running server does nothing."""
        if self._requests.closed:
            raise RuntimeError(f"{self!r} is closed")
        if self._listener is None:
            self._listener = await self.transport.listen(
                self.target, self._on_message, prefetch=self.prefetch, on_crash=self._crashed
            )
            LOG.info("RPC server consuming %s on %s", self.target, self.transport.url)

    async def stop(self) -> None:
        """Stop consuming; requests in flight go on (see :meth:`wait`)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.aclose()

    async def wait(self, *, grace_period: float | None = None) -> None:
        """Wait for requests in flight to finish.

        After ``grace_period`` seconds (None: no limit) the ones still running are cancelled and
        their messages returned to the queue.
        """
        pending = await self._requests.wait(grace_period=grace_period)
        if pending:
            LOG.warning(
                "%d requests still running after %s s; returning them to the queue",
                len(pending),
                grace_period,
            )
            for task in pending:
                task.cancel()
            await asyncio.wait(pending)
        if self._own_executor and self._listener is None:
            self.executor.shutdown(wait=False)

    async def aclose(self) -> None:
        """Stop consuming, wait for the requests in flight (the grace period), release all.

        Raises nothing of what failed the server: :attr:`failure` holds it (and :meth:`serve`
        raised it).
        """
        try:
            await self.stop()
        finally:
            await self.wait(grace_period=self.graceful_shutdown_timeout)
            # Its group hands crashes to _crashed (kept in .failure): closing raises none.
            await self._requests.aclose()

    async def _on_message(self, incoming: IncomingMessage) -> None:
        # Return at once so the transport can deliver the next message; the request is a task
        # of the server's group, which wait() and aclose() await.
        self._requests.create_task(self._handle(incoming), name="request")

    async def _handle(self, incoming: IncomingMessage) -> None:
        try:
            await self._process(incoming)
        except asyncio.CancelledError:
            # Stopping mid-request: give the message back rather than lose it.
            await asyncio.shield(incoming.requeue())
            raise
        except Exception:
            LOG.exception("Unexpected error handling a message; returning it to the queue")
            await incoming.requeue()

    async def _process(self, incoming: IncomingMessage) -> None:
        try:
            inner = wire.decode(incoming.body)
        except MalformedMessage as exc:
            LOG.warning("Rejecting a malformed message (%d bytes): %s", len(incoming.body), exc)
            # Even a message steward cannot read may say where its caller waits (a wrong
            # envelope version, say): answer that caller now rather than let it time out.
            address = wire.salvage_reply_address(incoming.body)
            if address is not None:
                await self._reply(address, failure=wire.serialize_failure(exc))
            await incoming.reject()
            return
        address = wire.reply_address(inner)
        try:
            request = self._parse(incoming.body, inner)
        except (MalformedMessage, MessageTooLarge) as exc:
            LOG.warning("Rejecting a request that cannot be handled: %s", exc)
            if address is not None:
                await self._reply(address, failure=wire.serialize_failure(exc))
            await incoming.reject()
            return
        unique_id = request.unique_id
        ran: asyncio.Future[bool] | None = None
        if unique_id is not None:
            if await self._settled_as_duplicate(unique_id, request.method, incoming):
                return
            self._seen.append(unique_id)
            ran = self._running[unique_id] = asyncio.get_running_loop().create_future()
        completed = False
        try:
            result, failure = await self._run(request, address)
            completed = True
        except asyncio.CancelledError:
            # Cut off by a stop before the method finished: the message goes back to the queue
            # and must run when it is delivered again, here or elsewhere, rather than be taken
            # for a duplicate. (Cut off later, while replying, it ran: it is not run again.)
            if unique_id is not None:
                with contextlib.suppress(ValueError):
                    self._seen.remove(unique_id)
            raise
        finally:
            if unique_id is not None and ran is not None:
                del self._running[unique_id]
                ran.set_result(completed)
        if address is not None:
            await self._reply(address, result=result, failure=failure, method=request.method)
        await incoming.ack()

    async def _settled_as_duplicate(
        self, unique_id: str, method: str, incoming: IncomingMessage
    ) -> bool:
        """Settle ``incoming`` if it repeats a request this server ran or runs; say if it did."""
        original = self._running.get(unique_id)
        if original is not None:
            # Delivered again while this server still runs it (the broker gave it back after a
            # lost connection, whose acknowledgement is lost with it): settle this copy as the
            # original ends, so that a stop cutting the original off loses neither.
            LOG.info(
                "Message %r (%r) is being handled; holding its copy",
                shorten(unique_id),
                shorten(method),
            )
            if await asyncio.shield(original):
                await incoming.ack()
            else:
                await incoming.requeue()
            return True
        if unique_id in self._seen:
            LOG.info("Ignoring duplicate message %r (%r)", shorten(unique_id), shorten(method))
            await incoming.ack()
            return True
        return False

    async def _run(
        self, request: wire.Request, address: tuple[str, str] | None
    ) -> tuple[object, str | None]:
        """Dispatch ``request``, sending call-monitor heartbeats to its caller while it runs.

        As oslo: a caller that set ``call_monitor_timeout`` T (``_timeout``) gets an ``ending:
        false`` reply every T/2 seconds (T taken as a whole number, as oslo's ``int()``), none
        if that is under a second. The heartbeats stop the moment the method returns, before
        the reply goes out.
        """
        timeout = request.call_monitor_timeout
        interval = int(timeout) / 2 if timeout is not None else 0
        if address is None or interval < 1:
            return await self._dispatch(request, replying=address is not None)
        async with asyncio.TaskGroup() as beside:  # the request's own: it ends with the request
            heartbeats = beside.create_task(
                self._send_heartbeats(address, interval, request.method), name="heartbeats"
            )
            try:
                return await self._dispatch(request, replying=True)
            finally:
                heartbeats.cancel()

    async def _send_heartbeats(
        self, address: tuple[str, str], interval: float, method: str
    ) -> None:
        """Send an ``ending: false`` reply every ``interval`` seconds until cancelled."""
        msg_id, reply_to = address
        while True:
            await asyncio.sleep(interval)
            LOG.debug("Sending a call-monitor heartbeat for %s (every %g s)", method, interval)
            try:
                body = wire.encode(wire.reply(msg_id, ending=False))
                await self.transport.send_reply(reply_to, body)
            except Exception as exc:  # noqa: BLE001 - the caller's own timeout will tell it
                # oslo stops heartbeating too: the broker or the caller is likely gone.
                LOG.warning(
                    "Could not send a call-monitor heartbeat for %s to %r (%r); sending no more",
                    method,
                    shorten(reply_to),
                    exc,
                )
                return

    async def _dispatch(
        self, request: wire.Request, *, replying: bool
    ) -> tuple[object, str | None]:
        """Run the request's method; return its result, or its serialized failure."""
        result: object = None
        failure: str | None = None
        # Past resolution (NoSuchMethod and UnsupportedVersion are raised before it), the name is
        # one an endpoint defines: bounded, and safe to log and to key statistics by.
        method = request.method
        started = time.perf_counter()
        try:
            with self._span(request, replying=replying):
                result = await self.dispatcher.dispatch(request)
            self.handled += 1
        except (NoSuchMethod, UnsupportedVersion) as exc:
            self.failed += 1
            method = UNKNOWN_METHOD
            LOG.warning("Cannot dispatch %r: %s", shorten(request.method), exc)
            failure = wire.serialize_failure(exc)
        except RPCDispatchError as exc:
            self.failed += 1
            LOG.warning("Cannot dispatch %s: %s", request.method, exc)
            failure = wire.serialize_failure(exc)
        except Exception as exc:
            self.failed += 1
            # An exception that says it is `rpc_expected` is part of the method's contract (a
            # NotFound for an unknown id; oslo's @expected_exceptions): the caller gets it, so
            # one line here, not a traceback per bad request.
            LOG.info(
                "%s raised %s: %s",
                request.method,
                type(exc).__name__,
                shorten(str(exc), 300),  # it may quote the caller's input
                exc_info=not getattr(exc, "rpc_expected", False),
            )
            failure = wire.serialize_failure(exc)
        self._record(method, time.perf_counter() - started, failed=failure is not None)
        return result, failure

    def _span(self, request: wire.Request, *, replying: bool) -> typing.ContextManager[object]:
        if not is_tracing_enabled():
            # Still drop the caller's trace keys, so they do not travel on in the context.
            for key in TRACE_CONTEXT_KEYS:
                request.context.pop(key, None)
            return contextlib.nullcontext()
        method = shorten(request.method)  # the span starts before the method is resolved
        return span(
            f"{self.target.topic}.{method} handle",
            kind=SpanKind.SERVER if replying else SpanKind.CONSUMER,
            attributes={
                "rpc.system": "steward",
                "rpc.method": method,
                "messaging.destination.name": str(self.target.topic),
                "steward.server": str(self.target.server),
            },
            carrier=request.context,
        )

    def _record(self, method: str, seconds: float, *, failed: bool) -> None:
        stats = self.method_stats.get(method)
        if stats is None:
            stats = self.method_stats[method] = MethodStats()
        stats.calls += 1
        stats.failures += failed
        stats.total_seconds += seconds
        stats.max_seconds = max(stats.max_seconds, seconds)
        stats.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def _parse(self, body: bytes, inner: wire.JSONDict) -> wire.Request:
        # The size is checked after decoding so that even an oversized call gets its answer.
        if len(body) > self.transport.max_message_size:
            raise MessageTooLarge(len(body), self.transport.max_message_size)
        return wire.parse_request(inner)

    async def _reply(
        self,
        address: tuple[str, str],
        *,
        result: object = None,
        failure: str | None = None,
        method: str = "?",
    ) -> None:
        msg_id, reply_to = address
        limit = self.transport.max_message_size
        try:
            body = wire.encode(wire.reply(msg_id, result=result, failure=failure), max_size=limit)
        except (TypeError, MessageTooLarge) as exc:
            LOG.warning("Result of %s cannot be sent back: %s", method, exc)
            problem = TypeError(f"result of {method!r} cannot be sent back: {exc}")
            body = wire.encode(wire.reply(msg_id, failure=wire.serialize_failure(problem)))
        try:
            await self.transport.send_reply(reply_to, body)
        except Exception:
            LOG.exception(
                "Could not send the reply to message %r to %r", shorten(msg_id), shorten(reply_to)
            )

    def __repr__(self) -> str:
        return f"RPCServer({self.transport!r}, {self.target})"
