"""Service: one manager, served over RPC, heartbeating into the registry.

:meth:`Service.start` follows nova's order exactly:

1. ``manager.init_host(service_ref)`` — ``service_ref`` is the record of a previous run, or None;
2. create or update this service's record in the registry;
3. ``manager.pre_start_hook(service_ref)``;
4. RPC consumers on ``topic``, ``topic.<host>`` and the topic's fanout, dispatching to the
   manager, a base endpoint (namespace ``baseapi``: ``ping``, ``get_backdoor_port``) and the
   manager's ``additional_endpoints``;
5. ``manager.post_start_hook()``;
6. the heartbeat loop (every ``report_interval``) and the periodic-task loop (first pass after a
   random delay up to ``periodic_fuzzy_delay``, then sleeping what ``periodic_tasks()`` returns,
   capped by ``periodic_interval_max``), both in the service's task group.

``await service.serve(task_status=...)`` runs the whole life: starts, reports readiness through
``task_status`` (trio's convention; :func:`steward._aio.start` awaits it), serves until it is
cancelled or fails, and stops. ``async with service:`` starts and stops around a block;
:meth:`Service.start`, :meth:`Service.wait` and :meth:`Service.stop` are the steps.

Ownership: the service's long-lived tasks (its loops) run in its
:class:`~steward._aio.TaskGroup`; its RPC server runs the requests in its own, and the
transport's listener the consumers in its own. A task that dies of an error anywhere down that
chain fails the service at once: :attr:`Service.failure` holds the error, the service reports
unhealthy (``/healthz``, the report), and :meth:`Service.wait` (so :meth:`Service.serve`) stops
the service and raises :class:`~steward.errors.ServiceFailed`.

A step that fails stops start-up with :class:`~steward.errors.ServiceStartError` and undoes what
was started. :meth:`Service.stop` reverses it: stop consuming; stop the loops and mark the
service stopped in the registry (down at once for everyone asking); let requests in flight finish
for up to ``graceful_shutdown_timeout`` (what is left is cancelled and its messages go back to the
queue); release singleton leases; ``manager.cleanup_host()``; close what the service opened. Many
services can share one process and one transport.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import typing
import uuid
from concurrent.futures import ThreadPoolExecutor

from steward import config
from steward._aio import TASK_STATUS_IGNORED, AsyncStarting, TaskGroup, TaskStatus
from steward.clock import Clock, SystemClock
from steward.context import RequestContext, get_admin_context
from steward.db import Database
from steward.errors import ServiceFailed, ServiceStartError
from steward.manager import Manager, ManagerBindings, run_hook
from steward.notify import Notifier
from steward.periodic import PeriodicTaskSpec
from steward.registry import Registry, ServiceRecord
from steward.report import build_report
from steward.rpc import RPCServer, Target, Transport, get_transport

if typing.TYPE_CHECKING:
    from steward.console import Console

__all__ = ["BaseRPCAPI", "Service"]

LOG = logging.getLogger(__name__)

# How long a stopping service tries to mark itself stopped in the registry before it goes on
# stopping (its record then goes down the nova way, once its heartbeats are old).
_STOPPED_REPORT_SECONDS = 5.0


class BaseRPCAPI:
    """The endpoint every service has beside its manager (nova's ``BaseRPCAPI``)."""

    target = Target(namespace="baseapi", version="1.1")

    def __init__(
        self,
        service_name: str,
        backdoor_port: int | None,
        report: typing.Callable[[], dict[str, typing.Any]] | None = None,
    ) -> None:
        self.service_name = service_name
        self.backdoor_port = backdoor_port
        self._report = report

    async def ping(self, context: RequestContext, arg: typing.Any) -> dict[str, typing.Any]:  # noqa: ANN401 - echoes any JSON
        """Echo ``arg``: a round trip that proves the service consumes its topic."""
        return {"service": self.service_name, "arg": arg}

    async def get_backdoor_port(self, context: RequestContext) -> int | None:
        """Return the debug console's port, or None when it is off."""
        return self.backdoor_port

    async def report(self, context: RequestContext) -> dict[str, typing.Any]:
        """Return the service report (:mod:`steward.report`): stacks, stats, configuration."""
        if self._report is None:
            return {}
        return self._report()


class Service(AsyncStarting):
    """Runs ``manager`` as a service on ``topic``. See the module docstring for the lifecycle.

    ``binary`` names the service in the registry (default ``"steward-<topic>"``). ``transport``
    and ``registry`` may be shared between services; those the service creates itself (from
    ``settings``) it also closes. ``clock`` drives the heartbeat and periodic loops (tests pass a
    fake one). ``version`` is recorded in the registry. ``settings`` None means the transport's
    when a transport is given, else the process's (:func:`steward.config.get_settings`): a
    Service is a public constructor; entry points pass the settings they built.

    The service hands ``manager`` its collaborators here, once (:meth:`Manager.bind
    <steward.Manager.bind>`): the registry's database when the manager has no ``db`` of its own,
    the notifier the settings choose, the executor its plain ``def`` work runs in, and the gate of
    its singleton periodic tasks. A manager runs in one service: wrapping it again raises
    :class:`~steward.errors.BindingError`. :meth:`create` builds the manager too, as nova's
    ``Service.create`` does.
    """

    @classmethod
    def create(
        cls,
        manager: typing.Callable[..., Manager],
        *,
        topic: str,
        host: str | None = None,
        binary: str | None = None,
        transport: Transport | None = None,
        registry: Registry | None = None,
        settings: config.Settings | None = None,
        clock: Clock | None = None,
        version: int = 0,
        **manager_options: typing.Any,  # noqa: ANN401 - the manager's own keyword arguments
    ) -> Service:
        """Build the manager from its class (or any factory) and return the service that runs it.

        The manager is built as ``manager(host=host, settings=settings, clock=clock,
        **manager_options)``: ``host`` None means the ``host`` setting, and the manager reads the
        same settings and clock as its service. The other arguments are the constructor's.
        """
        if settings is None:
            settings = transport.settings if transport is not None else config.get_settings()
        built = manager(
            host=host or settings.host, settings=settings, clock=clock, **manager_options
        )
        return cls(
            built,
            topic=topic,
            binary=binary,
            transport=transport,
            registry=registry,
            settings=settings,
            clock=clock,
            version=version,
        )

    def __init__(
        self,
        manager: Manager,
        *,
        topic: str,
        binary: str | None = None,
        transport: Transport | None = None,
        registry: Registry | None = None,
        settings: config.Settings | None = None,
        clock: Clock | None = None,
        version: int = 0,
    ) -> None:
        self.manager = manager
        self.topic = topic
        self.binary = binary or f"steward-{topic}"
        self.host = manager.host
        if settings is None:
            settings = transport.settings if transport is not None else config.get_settings()
        self.settings = settings
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.version = version
        self._own_transport = transport is None
        self.transport: Transport = transport or get_transport(settings=self.settings)
        self._own_registry = registry is None
        self.registry = registry or Registry(
            Database.from_settings(self.settings), settings=self.settings
        )
        self.service_ref: ServiceRecord | None = None
        self.rpcserver: RPCServer | None = None
        self.executor = ThreadPoolExecutor(
            max_workers=self.settings.executor_thread_pool_size,
            thread_name_prefix=f"{self.binary}",
        )
        # Who holds singleton leases: unique per process, since workers share host and binary.
        self.holder = f"{self.host}/{self.binary}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._leases: set[str] = set()
        self.tasks = TaskGroup(f"{self.binary} on {self.host}", on_crash=self._crashed)
        self._loops: list[asyncio.Task[None]] = []
        self.failure: BaseException | None = None
        self._ended = asyncio.Event()  # stopped, or failed
        self._console: Console | None = None
        self._registry_lost = False
        self._stopping = False
        self._stopped = False
        self._stop_lock = asyncio.Lock()
        self.last_heartbeat: float | None = None  # on self.clock
        # Notifications' own transport (notification_transport_url), which the service closes.
        self._notification_transport: Transport | None = None
        manager.bind(self._bindings())

    def _bindings(self) -> ManagerBindings[Database]:
        """Return what the manager is handed (see :class:`~steward.manager.ManagerBindings`)."""
        notifier = None  # noop: the manager keeps the one it has (a test may have given one)
        if self.settings.notification_driver != "noop":
            transport = self.transport
            if self.settings.notification_transport_url is not None:
                # oslo's [oslo_messaging_notifications] transport_url: a broker of their own.
                transport = get_transport(
                    self.settings.notification_transport_url, settings=self.settings
                )
                self._notification_transport = transport
            notifier = Notifier(
                transport,
                self.manager.notifier.publisher_id,
                driver=self.settings.notification_driver,
                topics=self.settings.notification_topics,
                settings=self.settings,
                on_crash=self._crashed,
            )
        return ManagerBindings(
            db=self.registry.db,  # usable from init_host on, if the manager has none of its own
            notifier=notifier,
            executor=self.executor,
            singleton_gate=self._may_run_singleton,
        )

    # --- start ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the service in nova's order; raise :class:`ServiceStartError` if a step fails."""
        LOG.info("Starting %s on %s (topic %s)", self.binary, self.host, self.topic)
        step = "preparing the database"
        host_ready = False
        try:
            if self._own_registry:
                await self.registry.db.ensure_schema()
            previous = await self.registry.get(self.host, self.binary)
            step = "init_host"
            await run_hook(self.manager, "init_host", previous, executor=self.executor)
            host_ready = True
            step = "creating the service record"
            self.service_ref = await self.registry.create_or_update(
                self.host, self.binary, self.topic, version=self.version
            )
            step = "pre_start_hook"
            await run_hook(self.manager, "pre_start_hook", self.service_ref, executor=self.executor)
            if self.settings.backdoor_socket is not None or self.settings.backdoor_port is not None:
                step = "starting the debug console"
                await self._start_console()
            step = "starting RPC consumers"
            await self._start_rpc()
            step = "post_start_hook"
            await run_hook(self.manager, "post_start_hook", executor=self.executor)
        except BaseException as exc:
            # A failed step, or a cancellation (serve() cancelled while starting): undo what
            # started either way, so nothing consumes or heartbeats for a service that is not.
            if isinstance(exc, Exception):
                LOG.exception("%s on %s failed to start while %s", self.binary, self.host, step)
            else:
                LOG.warning("%s on %s: start-up cut off while %s", self.binary, self.host, step)
            await self._undo_start(host_ready=host_ready)
            if not isinstance(exc, Exception):
                raise
            raise ServiceStartError(
                f"{self.binary} on {self.host} failed to start while {step}: {exc}"
            ) from exc
        self._loops.append(self.tasks.create_task(self._heartbeat_loop(), name="heartbeat"))
        if self.settings.periodic_enable:
            self._loops.append(self.tasks.create_task(self._periodic_loop(), name="periodic tasks"))
        LOG.info("%s on %s started", self.binary, self.host)

    async def _undo_start(self, *, host_ready: bool) -> None:
        self._stopping = True  # what is undone is stopped: a later stop() has nothing to do
        self._stopped = True
        self._ended.set()  # and wait() returns
        await self._close(cancel_requests=not host_ready)
        if host_ready:
            # init_host ran: give the manager its chance to release what it took.
            try:
                await run_hook(self.manager, "cleanup_host", executor=self.executor)
            except Exception:
                LOG.exception("cleanup_host of %s failed after a failed start", self.binary)
            finally:
                await self._release_resources()

    async def serve(self, *, task_status: TaskStatus = TASK_STATUS_IGNORED) -> None:
        """Start, report readiness (``task_status.started(self)``), serve, stop.

        Serves until cancelled (then stops gracefully and lets the cancellation through) or
        until the service fails (then stops and raises :class:`~steward.errors.ServiceFailed`).
        """
        await self.start()  # undoes itself if it fails or is cancelled
        try:
            task_status.started(self)
            await self.wait()
        finally:
            await self.stop()

    async def aclose(self) -> None:
        """Stop (:meth:`stop`): leaving ``async with service:`` does this."""
        await self.stop()

    def _crashed(self, exc: BaseException) -> None:
        """Fail the service: one of its tasks, or of its RPC server's, died of ``exc``."""
        if self.failure is not None or self._stopping:
            return
        self.failure = exc
        LOG.error("%s on %s failed (%r); it stops", self.binary, self.host, exc)
        self._ended.set()

    @property
    def healthy(self) -> bool:
        """Whether the service runs: started, not stopping, and no task of it has failed."""
        return (
            self.failure is None
            and not self._stopping
            and self.rpcserver is not None
            and self.rpcserver.running
        )

    async def _start_console(self) -> None:
        from steward import console  # noqa: PLC0415 - opt-in

        namespace = {"service": self, "manager": self.manager, "settings": self.settings}
        if self.settings.backdoor_socket is not None:  # oslo.service: the socket wins
            if self.settings.backdoor_port is not None:
                LOG.warning("backdoor_socket is set: backdoor_port is ignored")
            path = console.socket_path(self.settings.backdoor_socket, binary=self.binary)
            self._console = await console.start_unix_console(path, namespace)
        elif self.settings.backdoor_port is not None:
            self._console = await console.start_console(self.settings.backdoor_port, namespace)
            self.manager.backdoor_port = self._console.port

    async def _start_rpc(self) -> None:
        endpoints: list[object] = [
            self.manager,
            BaseRPCAPI(self.manager.service_name, self.manager.backdoor_port, self.report),
            *self.manager.additional_endpoints,
        ]
        self.rpcserver = RPCServer(
            self.transport,
            Target(self.topic, self.host),
            endpoints,
            executor=self.executor,
            settings=self.settings,
            on_crash=self._crashed,
        )
        await self.rpcserver.start()

    # --- loops ---------------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await self.report_state()
            await self.clock.sleep(self.settings.report_interval)

    async def report_state(self) -> None:
        """Send one heartbeat and renew held leases; log a lost registry once, and its return."""
        assert self.service_ref is not None  # noqa: S101 - set by start() before the loops
        try:
            self.service_ref = await self.registry.heartbeat(self.service_ref)
            self.last_heartbeat = self.clock.monotonic()
            for lease in list(self._leases):
                if not await self.registry.acquire_lease(
                    lease, self.holder, duration=self.registry.service_down_time
                ):
                    LOG.warning("Lost singleton lease %s to another service", lease)
                    self._leases.discard(lease)
        except Exception:
            if not self._registry_lost:
                self._registry_lost = True
                LOG.exception("Lost connection to the registry; heartbeats will be retried")
            return
        if self._registry_lost:
            self._registry_lost = False
            LOG.info("Connection to the registry recovered; heartbeats resumed")

    async def _periodic_loop(self) -> None:
        fuzzy = self.settings.periodic_fuzzy_delay
        if fuzzy:
            await self.clock.sleep(random.uniform(0, fuzzy))  # noqa: S311 - spreads load, not security
        while True:
            try:
                idle = await self.manager.periodic_tasks(get_admin_context())
            except Exception:
                LOG.exception("Periodic task pass of %s failed", self.binary)
                idle = self.settings.periodic_interval_max
            await self.clock.sleep(min(idle, self.settings.periodic_interval_max))

    def lease_name(self, spec: PeriodicTaskSpec) -> str:
        """Return the registry lease of singleton task ``spec``: one per binary, topic and task."""
        return f"{self.binary}:{self.topic}:{spec.name}"

    async def _may_run_singleton(self, spec: PeriodicTaskSpec) -> bool:
        name = self.lease_name(spec)
        held = await self.registry.acquire_lease(
            name, self.holder, duration=self.registry.service_down_time
        )
        if held:
            self._leases.add(name)
        else:
            self._leases.discard(name)
        return held

    @property
    def registry_reachable(self) -> bool:
        """Whether the last heartbeat reached the registry."""
        return self.last_heartbeat is not None and not self._registry_lost

    def report(self) -> dict[str, typing.Any]:
        """Return this service's report (:func:`steward.report.build_report`)."""
        return build_report([self], settings=self.settings)

    # --- reload and stop -----------------------------------------------------------------------

    async def reset(self, settings: config.Settings | None = None) -> None:
        """Apply reloaded ``settings`` (mutable options only) and call ``manager.reset()``."""
        if settings is not None:
            self.settings = settings
            self.manager.periodic_scheduler.run_external = settings.run_external_periodic_tasks
        await run_hook(self.manager, "reset", executor=self.executor)

    async def stop(self) -> None:
        """Stop gracefully (see the module docstring); once.

        A second caller waits for the first one's stop to end. A stop cut off by a cancellation
        is not done: the next call runs what is left (each step may run again safely).
        """
        async with self._stop_lock:
            if self._stopped:
                return
            self._stopping = True
            self._ended.set()
            LOG.info("Stopping %s on %s", self.binary, self.host)
            await self._close(cancel_requests=False)
            try:
                await run_hook(self.manager, "cleanup_host", executor=self.executor)
            finally:
                await self._release_resources()
            self._stopped = True
            LOG.info("%s on %s stopped", self.binary, self.host)

    async def _close(self, *, cancel_requests: bool) -> None:
        if self.rpcserver is not None:
            await self.rpcserver.stop()
        if self._loops:
            loops, self._loops = self._loops, []
            for loop in loops:
                loop.cancel()
            # asyncio.wait, not await: the loops' own CancelledError is expected (a crash was
            # reported by the group), while a cancellation of stop() itself still propagates.
            await asyncio.wait(loops)
        # No heartbeat comes any more (or never came: a start undone after its record was made):
        # say so now, rather than look up for service_down_time to callers that would send
        # requests nobody takes.
        await self._report_stopped()
        if self.rpcserver is not None:
            grace = 0 if cancel_requests else self.settings.graceful_shutdown_timeout
            self.rpcserver.graceful_shutdown_timeout = grace
            await self.rpcserver.aclose()
        await self.manager.periodic_scheduler.wait_threads()
        try:
            async with asyncio.timeout(self.settings.graceful_shutdown_timeout):
                await self.manager.notifier.close()
        except TimeoutError:
            LOG.error("Notifications still unsent after the grace period; dropping them")  # noqa: TRY400 - no traceback to show
        for lease in list(self._leases):
            try:
                await self.registry.release_lease(lease, self.holder)
            except Exception:
                LOG.warning("Could not release singleton lease %s", lease, exc_info=True)
        self._leases.clear()
        if cancel_requests:
            await self._release_resources()

    async def _report_stopped(self) -> None:
        if self.service_ref is None:
            return
        try:
            # Bounded: a registry that does not answer must not eat the requests' grace period.
            async with asyncio.timeout(_STOPPED_REPORT_SECONDS):
                await self.registry.stopped(self.service_ref)
        except Exception:
            # The registry may be what failed; the service stops all the same, and its record
            # goes down once its heartbeats are service_down_time old.
            LOG.warning("Could not mark %s on %s stopped in the registry", self.binary, self.host,
                        exc_info=True)  # fmt: skip

    async def _release_resources(self) -> None:
        # Each release is tried whatever the one before did: a transport that fails to close
        # must not leave the database engine, the executor and the task group behind.
        console, self._console = self._console, None
        releases: list[tuple[str, typing.Callable[[], typing.Awaitable[None]]]] = []
        if console is not None:
            releases.append(("the debug console", console.close))
        if self._own_transport:
            releases.append(("its transport", self.transport.aclose))
        if self._notification_transport is not None:
            releases.append(("its notification transport", self._notification_transport.aclose))
        if self._own_registry:
            releases.append(("its database", self.registry.db.dispose))
        for what, release in releases:
            try:
                await release()
            except Exception:
                LOG.exception("%s on %s: could not release %s", self.binary, self.host, what)
        self.executor.shutdown(wait=False)
        await self.tasks.aclose()

    async def ended(self) -> None:
        """Wait until the service is asked to stop or fails (see :attr:`failure`), no more."""
        await self._ended.wait()

    async def wait(self) -> None:
        """Wait until the service stops, or fails: then stop it and raise ServiceFailed."""
        await self._ended.wait()
        if self.failure is not None:
            await self.stop()
            raise ServiceFailed(
                f"{self.binary} on {self.host} failed: {self.failure!r}"
            ) from self.failure

    def __repr__(self) -> str:
        return f"<Service: host={self.host}, binary={self.binary}, topic={self.topic}>"
