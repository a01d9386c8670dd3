"""The Manager: the one piece of code that changes its part of the system.

A manager owns one aspect (volumes, networks, instances) and is the only code that changes it:
*smart managers, dumb data*. A :class:`~steward.service.Service` wraps one manager, exposes its
public methods over RPC, calls its lifecycle hooks in nova's order and runs its periodic tasks.
The manager itself knows nothing of transports.

This is nova's ``nova/manager.py`` redone: same constructor, attributes and hooks; the
osprofiler ``ManagerMeta`` becomes ``__init_subclass__`` wrapping every public method in an
OpenTelemetry span (:mod:`steward.tracing`), and oslo.service's ``PeriodicTasks`` becomes
:mod:`steward.periodic`'s heap scheduler.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping

from steward.clock import Clock
from steward.config import Settings, get_settings
from steward.context import RequestContext
from steward.notify import NoopNotifier
from steward.periodic import PeriodicScheduler, PeriodicTaskSpec, collect_periodic_tasks
from steward.tracing import traced

__all__ = ["Manager"]


class Manager:
    """Base class of every manager.

    ``host`` defaults to the ``host`` setting (the machine's hostname); ``db`` is the data-access
    object the manager reads and writes through (``self.db``); ``service_name`` names it in
    notifications (publisher id ``"<service_name>.<host>"``) and in the registry. ``clock`` and
    ``settings`` are for tests and embedding; by default the real clock and the process settings.

    Override the hooks as plain ``def`` or ``async def``; the service awaits both. Every public
    method (name not starting with ``_``), hooks included, runs inside an OpenTelemetry span named
    ``"<__trace_args__['name']>:<Class>.<method>"`` while tracing is enabled.
    """

    __trace_args__: typing.ClassVar[Mapping[str, str]] = {"name": "rpc"}
    _periodic_task_specs: typing.ClassVar[tuple[tuple[str, PeriodicTaskSpec], ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._periodic_task_specs = collect_periodic_tasks(cls)
        _trace_public_methods(cls)

    def __init__(
        self,
        host: str | None = None,
        db: object | None = None,
        service_name: str = "undefined",
        *,
        clock: Clock | None = None,
        settings: Settings | None = None,
    ) -> None:
        settings = settings if settings is not None else get_settings()
        self.host: str = host or settings.host
        self.db = db
        self.service_name = service_name
        self.backdoor_port: int | None = None
        self.additional_endpoints: list[object] = []
        self.notifier = NoopNotifier(f"{service_name}.{self.host}")
        self.periodic_scheduler = PeriodicScheduler(
            [(spec, getattr(self, attr)) for attr, spec in self._periodic_task_specs],
            owner=type(self).__name__,
            clock=clock,
            run_external=settings.run_external_periodic_tasks,
        )

    async def periodic_tasks(self, context: RequestContext, raise_on_error: bool = False) -> float:
        """Run the periodic tasks that are due; return seconds until the next is due (<= 60)."""
        return await self.periodic_scheduler.run_due(context, raise_on_error=raise_on_error)

    async def init_host(self, service_ref: object | None) -> None:
        """Prepare the host before the service starts; its registry record may not exist yet.

        ``service_ref`` is this service's registry record from a previous run, or None.
        """

    async def pre_start_hook(self, service_ref: object | None) -> None:
        """Run after the service record is created or updated, before RPC consumers start."""

    async def post_start_hook(self) -> None:
        """Run once RPC consumers are started, before heartbeats and periodic tasks begin."""

    async def cleanup_host(self) -> None:
        """Release what the manager holds, after the service stopped consuming."""

    async def reset(self) -> None:
        """Drop cached state on SIGHUP, after the configuration is re-read."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} host={self.host!r} service_name={self.service_name!r}>"


def _trace_public_methods(cls: type[Manager]) -> None:
    """Wrap each public function defined on ``cls`` itself in a tracing span."""
    prefix = cls.__trace_args__.get("name", "rpc")
    for name, value in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(value):
            continue
        if inspect.isgeneratorfunction(value) or inspect.isasyncgenfunction(value):
            continue  # a span would close before the caller consumed the generator
        setattr(cls, name, traced(value, prefix=prefix))


_trace_public_methods(Manager)
