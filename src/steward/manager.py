"""The Manager: the one piece of code that changes its part of the system.

A manager owns one aspect (volumes, networks, instances) and is the only code that changes it:
*smart managers, dumb data*. A :class:`~steward.service.Service` wraps one manager, exposes its
public methods over RPC, calls its lifecycle hooks in nova's order and runs its periodic tasks.
The manager itself knows nothing of transports.

This is nova's ``nova/manager.py`` redone: same constructor, attributes and hooks; the
osprofiler ``ManagerMeta`` becomes ``__init_subclass__`` wrapping every public method in an
OpenTelemetry span (:mod:`steward.tracing`), and oslo.service's ``PeriodicTasks`` becomes
:mod:`steward.periodic`'s heap scheduler.

What nova's manager fetches from globals (``rpc.get_notifier()``, the db driver by name), a
steward manager is handed: its own ``db`` at construction, and the rest by the service that runs
it, once, through :meth:`Manager.bind` with a frozen :class:`ManagerBindings` (the database, the
notifier, the executor for plain ``def`` work, the gate of singleton periodic tasks). The manager
is generic over its data-access type, so ``class VolumeManager(Manager[Database])`` has a typed
``self.db`` without redeclaring it.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Awaitable, Mapping
from concurrent.futures import Executor

# TypeVar defaults (PEP 696) reach `typing` in 3.13; typing_extensions has them on 3.11.
from typing_extensions import TypeVar

from steward._aio import call_sync_or_async
from steward.clock import Clock
from steward.config import Settings, get_settings
from steward.context import RequestContext
from steward.errors import BindingError
from steward.notify.notifier import NoopNotifier, Notifier
from steward.periodic import (
    PeriodicScheduler,
    PeriodicTaskSpec,
    SingletonGate,
    collect_periodic_tasks,
)
from steward.tracing import traced

__all__ = ["HOOKS", "DbT", "Manager", "ManagerBindings", "run_hook"]

DbT = TypeVar("DbT", default=typing.Any)
"""The type of a manager's data-access object, ``self.db``: ``Manager[Database]``.

A plain ``Manager`` is ``Manager[Any]``: any object, or None, as in nova.
"""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ManagerBindings(typing.Generic[DbT]):
    """What the service that runs a manager hands it, once, through :meth:`Manager.bind`.

    Every field is optional; None leaves the manager as it was built.

    ``db``
        The data-access object of a manager built without one (a :class:`~steward.service.Service`
        gives its registry's database); a manager that has its own ``db`` keeps it.
    ``notifier``
        Replaces the manager's noop notifier (the service's, when its settings choose a driver).
    ``executor``
        Runs the manager's plain ``def`` periodic tasks (the service's bounded thread pool, which
        also runs its plain ``def`` RPC methods and hooks); None: the loop's default executor.
    ``singleton_gate``
        Asked before each run of a ``singleton`` periodic task whether this process may run it
        (the service, holding a lease in the registry); None: always.
    """

    db: DbT | None = None
    notifier: Notifier | None = None
    executor: Executor | None = None
    singleton_gate: SingletonGate | None = None


class Manager(typing.Generic[DbT]):
    """Base class of every manager.

    ``host`` defaults to the ``host`` setting (the machine's hostname); ``db`` is the data-access
    object the manager reads and writes through (``self.db``, typed ``DbT``: subclass
    ``Manager[Database]``). A manager built without one gets its service's database when the
    service binds it (:meth:`bind`), before ``init_host``; until then ``self.db`` is None.
    ``service_name`` names it in notifications (publisher id ``"<service_name>.<host>"``) and in
    the registry. ``clock`` and ``settings`` are for tests and embedding; by default the real
    clock and the process settings.

    Override the hooks as plain ``def`` or ``async def``; the service awaits both. Every public
    method (name not starting with ``_``), hooks included, runs inside an OpenTelemetry span named
    ``"<__trace_args__['name']>:<Class>.<method>"`` while tracing is enabled.
    """

    __trace_args__: typing.ClassVar[Mapping[str, str]] = {"name": "rpc"}
    # Public, but not for remote callers: the RPC dispatcher refuses these names.
    __rpc_private__: typing.ClassVar[frozenset[str]] = frozenset(
        ("init_host", "pre_start_hook", "post_start_hook", "cleanup_host", "reset")
    ) | {"periodic_tasks", "bind"}
    _periodic_task_specs: typing.ClassVar[tuple[tuple[str, PeriodicTaskSpec], ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._periodic_task_specs = collect_periodic_tasks(cls)
        _trace_public_methods(cls)

    def __init__(
        self,
        host: str | None = None,
        db: DbT | None = None,
        service_name: str = "undefined",
        *,
        clock: Clock | None = None,
        settings: Settings | None = None,
    ) -> None:
        settings = settings if settings is not None else get_settings()
        self.host: str = host or settings.host
        # Typed as what it is once the manager runs: given here, or bound before init_host.
        self.db: DbT = typing.cast("DbT", db)
        self.service_name = service_name
        self.backdoor_port: int | None = None
        self.additional_endpoints: list[object] = []
        self.notifier = NoopNotifier(f"{service_name}.{self.host}", settings=settings)
        self.periodic_scheduler = PeriodicScheduler(
            [(spec, getattr(self, attr)) for attr, spec in self._periodic_task_specs],
            owner=type(self).__name__,
            clock=clock,
            run_external=settings.run_external_periodic_tasks,
        )
        self._bindings: ManagerBindings[DbT] | None = None

    @property
    def bindings(self) -> ManagerBindings[DbT] | None:
        """What :meth:`bind` was handed, or None while no service has bound the manager."""
        return self._bindings

    def bind(self, bindings: ManagerBindings[DbT]) -> None:
        """Take the collaborators of the service that runs this manager; once, before it starts.

        :class:`~steward.service.Service` calls it when it wraps the manager, so they are there
        from ``init_host`` on; a manager used without a service never needs it. ``bindings.db``
        is used only if the manager has no ``db`` of its own; a notifier replaces the manager's;
        the executor and the singleton gate go to its periodic scheduler
        (:meth:`PeriodicScheduler.bind`).

        Raises :class:`~steward.errors.BindingError` when the manager is bound already (a manager
        runs in one service) or its periodic tasks have started running without them.
        """
        if self._bindings is not None:
            raise BindingError(
                f"{self!r} is bound already: a manager runs in one service, which binds it once; "
                f"build one manager per service"
            )
        if self.periodic_scheduler.started:
            raise BindingError(
                f"{self!r} has started running periodic tasks; bind it before the first "
                f"periodic_tasks() pass, as a service does when it wraps the manager"
            )
        self.periodic_scheduler.bind(
            executor=bindings.executor, singleton_gate=bindings.singleton_gate
        )
        self._bindings = bindings
        if self.db is None and bindings.db is not None:
            self.db = bindings.db
        if bindings.notifier is not None:
            self.notifier = bindings.notifier

    async def periodic_tasks(self, context: RequestContext, raise_on_error: bool = False) -> float:
        """Run the periodic tasks that are due; return seconds until the next is due (<= 60)."""
        return await self.periodic_scheduler.run_due(context, raise_on_error=raise_on_error)

    # The hooks return ``Awaitable[None] | None`` so that subclasses may override them with a
    # plain ``def`` or an ``async def`` and still type-check; run_hook() awaits either.

    def init_host(self, service_ref: object | None) -> Awaitable[None] | None:
        """Prepare the host before the service starts; its registry record may not exist yet.

        ``service_ref`` is this service's registry record from a previous run, or None.
        """
        return None

    def pre_start_hook(self, service_ref: object | None) -> Awaitable[None] | None:
        """Run after the service record is created or updated, before RPC consumers start."""
        return None

    def post_start_hook(self) -> Awaitable[None] | None:
        """Run once RPC consumers are started, before heartbeats and periodic tasks begin."""
        return None

    def cleanup_host(self) -> Awaitable[None] | None:
        """Release what the manager holds, after the service stopped consuming."""
        return None

    def reset(self) -> Awaitable[None] | None:
        """Drop cached state on SIGHUP, after the configuration is re-read."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} host={self.host!r} service_name={self.service_name!r}>"


HOOKS = ("init_host", "pre_start_hook", "post_start_hook", "cleanup_host", "reset")
"""The lifecycle hooks, in the order a service's life calls them (reset comes on SIGHUP)."""


async def run_hook(
    manager: Manager, name: str, *args: object, executor: Executor | None = None
) -> None:
    """Call lifecycle hook ``name`` of ``manager`` and wait for it, however it was written.

    An ``async def`` override is awaited on the loop; a plain ``def`` one runs in ``executor``
    (None: the loop's default), with the current context; a hook the subclass did not override
    is skipped. Exceptions propagate to the caller.
    """
    if name not in HOOKS:
        raise ValueError(f"`name` must be one of {', '.join(HOOKS)}, got {name!r}")
    if getattr(type(manager), name) is getattr(Manager, name):
        return
    await call_sync_or_async(getattr(manager, name), *args, executor=executor)


def _trace_public_methods(cls: type[Manager]) -> None:
    """Wrap each public function defined on ``cls`` itself in a tracing span."""
    prefix = cls.__trace_args__.get("name", "rpc")
    for name, value in list(vars(cls).items()):
        if name.startswith("_") or name == "bind" or not inspect.isfunction(value):
            continue  # bind is the service's handover at construction, not the manager's work
        if inspect.isgeneratorfunction(value) or inspect.isasyncgenfunction(value):
            continue  # a span would close before the caller consumed the generator
        setattr(cls, name, traced(value, prefix=prefix))


_trace_public_methods(Manager)
