"""Periodic tasks: the ``@periodic_task`` decorator and the scheduler that runs them.

The decorator takes oslo.service's arguments with oslo.service's meaning:

* ``spacing`` seconds between runs; ``0`` (the default) means :data:`DEFAULT_INTERVAL` (60 s);
  a negative spacing, like ``enabled=False``, means the task is never scheduled;
* ``run_immediately`` runs the task at the scheduler's first pass; otherwise it is first due
  ``spacing`` seconds after the scheduler starts (oslo counts from import time, which makes the
  first run of a task in a long-lived process arbitrary);
* ``external_process_ok`` marks a task that may run elsewhere; it is skipped while the
  ``run_external_periodic_tasks`` setting is off;
* ``name`` defaults to the function's name;
* ``singleton`` (steward's own) runs the task on exactly one live service of its binary and
  topic: the scheduler asks its ``singleton_gate`` (the service, holding a lease in the registry)
  before each run, and skips the run when another service holds the lease.

:class:`PeriodicScheduler` keeps the tasks in a heap keyed on their next due time, so a pass costs
in proportion to the tasks that are due, not to all tasks. A task's schedule stays aligned to its
first due time: a task that ran late is next due at the next point of its own grid (missed runs are
not replayed in a burst), plus a jitter of up to 5 % of its spacing that never accumulates into the
grid. A task never overlaps itself. One task's exception is logged with its traceback and the
others still run, unless the pass was asked to ``raise_on_error``. ``async def`` tasks run on the
loop, plain ``def`` ones in an executor thread; the pass's context is the current one in both.

Tasks are collected through inheritance by :func:`collect_periodic_tasks`: a subclass method of the
same name replaces the parent's task (oslo keeps both), and overriding it with an undecorated
method removes it.

One piece past 400 lines: the decorator's arguments mean what the scheduler does with them
(spacing, the grid, ``run_immediately``, ``singleton``), so the two are read side by side; and the
scheduler's heap, grid, singleton gate and threads for plain ``def`` tasks are one piece of state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import inspect
import logging
import math
import random
import typing
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor

from opentelemetry.trace import SpanKind

from steward._aio import in_thread, is_async_callable
from steward.clock import Clock, SystemClock
from steward.context import RequestContext, bind
from steward.errors import BindingError, InvalidPeriodicTaskArg, PeriodicTaskError
from steward.tracing import span

__all__ = [
    "DEFAULT_INTERVAL",
    "MAX_JITTER",
    "PeriodicScheduler",
    "PeriodicTaskSpec",
    "PeriodicTaskStats",
    "collect_periodic_tasks",
    "periodic_task",
]

LOG = logging.getLogger(__name__)

DEFAULT_INTERVAL = 60.0
"""Seconds between runs of a task declared with ``spacing=0``, and the longest idle time."""

MAX_JITTER = 0.05
"""Largest random delay added to a task's next run, as a fraction of its spacing."""

_SPEC_ATTR = "__steward_periodic_task__"

F = typing.TypeVar("F", bound=Callable[..., object])
TaskCallable = Callable[[RequestContext], object]
SingletonGate = Callable[["PeriodicTaskSpec"], Awaitable[bool]]
"""Asked before each run of a singleton task: may this process run it now?"""


@dataclasses.dataclass(frozen=True, slots=True)
class PeriodicTaskSpec:
    """What ``@periodic_task`` recorded about one task, as declared."""

    name: str
    spacing: float
    run_immediately: bool
    external_process_ok: bool
    enabled: bool
    singleton: bool = False

    @property
    def interval(self) -> float:
        """Seconds between runs: ``spacing``, or :data:`DEFAULT_INTERVAL` for ``spacing=0``."""
        return DEFAULT_INTERVAL if self.spacing == 0 else float(self.spacing)

    @property
    def schedulable(self) -> bool:
        """False for a disabled task or a negative spacing: such a task never runs."""
        return self.enabled and self.spacing >= 0


@typing.overload
def periodic_task(fn: F, /) -> F: ...


@typing.overload
def periodic_task(
    *,
    spacing: float = 0,
    run_immediately: bool = False,
    name: str | None = None,
    external_process_ok: bool = False,
    enabled: bool = True,
    singleton: bool = False,
) -> Callable[[F], F]: ...


def periodic_task(
    fn: F | None = None,
    /,
    *,
    spacing: float = 0,
    run_immediately: bool = False,
    name: str | None = None,
    external_process_ok: bool = False,
    enabled: bool = True,
    singleton: bool = False,
) -> F | Callable[[F], F]:
    """Mark a manager method as a periodic task; usable bare or with arguments.

    The method is called as ``method(self, context)``. Raises :class:`InvalidPeriodicTaskArg` when
    an argument has the wrong type (``spacing="ten"``); unknown arguments (oslo's removed
    ``ticks_between_runs``) are a ``TypeError`` as for any function.
    """
    if isinstance(spacing, bool) or not isinstance(spacing, int | float) or math.isnan(spacing):
        raise InvalidPeriodicTaskArg(
            f"`spacing` must be a number of seconds (0 for the default of "
            f"{DEFAULT_INTERVAL:g} s, negative to disable), got {spacing!r}"
        )
    if math.isinf(spacing):
        raise InvalidPeriodicTaskArg(
            f"`spacing` must be finite; use enabled=False to disable a task, got {spacing!r}"
        )
    for flag, value in (
        ("run_immediately", run_immediately),
        ("external_process_ok", external_process_ok),
        ("enabled", enabled),
        ("singleton", singleton),
    ):
        if not isinstance(value, bool):
            raise InvalidPeriodicTaskArg(f"`{flag}` must be True or False, got {value!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise InvalidPeriodicTaskArg(f"`name` must be a non-empty string, got {name!r}")

    def decorate(func: F) -> F:
        if not callable(func) or isinstance(func, staticmethod | classmethod):
            raise InvalidPeriodicTaskArg(
                f"@periodic_task decorates a method taking (self, context), got {func!r}"
            )
        spec = PeriodicTaskSpec(
            name=name or func.__name__,
            spacing=spacing,
            run_immediately=run_immediately,
            external_process_ok=external_process_ok,
            enabled=enabled,
            singleton=singleton,
        )
        setattr(func, _SPEC_ATTR, spec)
        return func

    return decorate if fn is None else decorate(fn)


def _spec_of(value: object) -> PeriodicTaskSpec | None:
    spec = getattr(value, _SPEC_ATTR, None)
    return spec if isinstance(spec, PeriodicTaskSpec) else None


def collect_periodic_tasks(cls: type) -> tuple[tuple[str, PeriodicTaskSpec], ...]:
    """Return ``(attribute, spec)`` for each periodic task ``cls`` has, base classes' first.

    An attribute counts as Python resolves it on ``cls``: a subclass override replaces the
    parent's task, and an undecorated override removes it. Two tasks with one name are an error.
    """
    candidates: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            if _spec_of(value) is not None:
                candidates[attr] = None
    tasks: list[tuple[str, PeriodicTaskSpec]] = []
    owners: dict[str, str] = {}
    for attr in candidates:
        spec = _spec_of(inspect.getattr_static(cls, attr, None))
        if spec is None:
            continue
        if spec.name in owners:
            raise PeriodicTaskError(
                f"{cls.__qualname__} has two periodic tasks named {spec.name!r} "
                f"(methods {owners[spec.name]!r} and {attr!r}); give one another `name`"
            )
        owners[spec.name] = attr
        tasks.append((attr, spec))
    return tuple(tasks)


@dataclasses.dataclass(slots=True)
class PeriodicTaskStats:
    """What a scheduler knows of one task; times are on the scheduler's clock."""

    name: str
    spacing: float
    runs: int = 0
    failures: int = 0
    running: bool = False
    last_started: float | None = None
    last_duration: float | None = None
    last_error: str | None = None
    next_due: float | None = None


@dataclasses.dataclass(slots=True, eq=False)
class _Entry:
    seq: int
    spec: PeriodicTaskSpec
    fn: TaskCallable
    is_async: bool
    interval: float
    stats: PeriodicTaskStats
    origin: float | None = None  # a point of the task's grid; None until first anchored

    def __lt__(self, other: _Entry) -> bool:  # heap ties: declaration order
        return self.seq < other.seq


class PeriodicScheduler:
    """Runs the due tasks of one owner (a manager) and says when the next one is due.

    ``tasks`` are ``(spec, callable)`` pairs; each callable takes the pass's context. Tasks that
    are disabled or have a negative spacing are logged and left out. The schedule starts at
    :meth:`start` or at the first :meth:`run_due`, whichever comes first.

    ``singleton_gate`` decides, before each run of a ``singleton`` task, whether this scheduler
    may run it (None: always). ``executor`` runs plain ``def`` tasks (None: the loop's default
    executor). Both are given here or, for the scheduler a manager builds itself, once through
    :meth:`bind` (the service's, when it wraps the manager). ``jitter`` gives a
    number in [0, 1) per run, scaled to at most :data:`MAX_JITTER` of the spacing
    (:func:`random.random` by default; tests set ``scheduler.jitter = lambda: 0.0`` to assert
    exact times).
    """

    def __init__(
        self,
        tasks: Iterable[tuple[PeriodicTaskSpec, TaskCallable]],
        *,
        owner: str = "",
        clock: Clock | None = None,
        executor: Executor | None = None,
        run_external: bool = True,
        jitter: Callable[[], float] = random.random,
        singleton_gate: SingletonGate | None = None,
    ) -> None:
        self.owner = owner
        self._singleton_gate = singleton_gate
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._executor = executor
        self._bound = False
        self.run_external = run_external
        self.jitter = jitter
        self._entries: list[_Entry] = []
        for spec, fn in tasks:
            if not spec.schedulable:
                reason = "it is disabled" if not spec.enabled else "its interval is negative"
                LOG.info("Skipping periodic task %s.%s because %s", owner, spec.name, reason)
                continue
            self._entries.append(
                _Entry(
                    seq=len(self._entries),
                    spec=spec,
                    fn=fn,
                    is_async=is_async_callable(fn),
                    interval=spec.interval,
                    stats=PeriodicTaskStats(name=spec.name, spacing=spec.interval),
                )
            )
        self._heap: list[tuple[float, _Entry]] = []
        self._threads: set[asyncio.Future[object]] = set()
        self._started = False

    @property
    def executor(self) -> Executor | None:
        """Where plain ``def`` tasks run (None: the loop's default executor)."""
        return self._executor

    @property
    def singleton_gate(self) -> SingletonGate | None:
        """Asked before each run of a singleton task (None: this scheduler always may)."""
        return self._singleton_gate

    def bind(
        self, *, executor: Executor | None = None, singleton_gate: SingletonGate | None = None
    ) -> None:
        """Take the executor and singleton gate of whoever runs the tasks, once, before they start.

        None keeps what the constructor was given. :meth:`Manager.bind <steward.Manager.bind>`
        calls it for a manager's scheduler. A second call, or one after the schedule started,
        raises :class:`~steward.errors.BindingError`: tasks would already have run without them.
        """
        if self._bound:
            raise BindingError(
                f"the periodic scheduler of {self.owner or 'this owner'} already has its executor "
                f"and singleton gate; bind() is called once, by the service that runs it"
            )
        if self._started:
            raise BindingError(
                f"the periodic scheduler of {self.owner or 'this owner'} has started running "
                f"tasks; call bind() before the first pass (periodic_tasks() or start())"
            )
        self._bound = True
        if executor is not None:
            self._executor = executor
        if singleton_gate is not None:
            self._singleton_gate = singleton_gate

    @property
    def names(self) -> list[str]:
        """Names of the scheduled tasks, in declaration order."""
        return [entry.spec.name for entry in self._entries]

    @property
    def started(self) -> bool:
        """Whether the schedule has been anchored to the clock."""
        return self._started

    def start(self) -> None:
        """Anchor the schedule at the clock's now; later calls do nothing."""
        if self._started:
            return
        self._started = True
        now = self.clock.monotonic()
        for entry in self._entries:
            if entry.spec.run_immediately:
                due = now
            else:
                entry.origin = now
                due = now + entry.interval
            self._push(entry, due)

    def stats(self) -> list[PeriodicTaskStats]:
        """Return a copy of every scheduled task's statistics, in declaration order."""
        return [dataclasses.replace(entry.stats) for entry in self._entries]

    def idle_for(self) -> float:
        """Seconds until the next task is due (0 if one is due now), never above 60."""
        if not self._heap:
            return DEFAULT_INTERVAL
        return min(DEFAULT_INTERVAL, max(0.0, self._heap[0][0] - self.clock.monotonic()))

    async def run_due(self, context: RequestContext, *, raise_on_error: bool = False) -> float:
        """Run every task due now, one after another; return :meth:`idle_for` afterwards.

        With ``raise_on_error`` the first task exception propagates (the tasks not yet run stay
        due); otherwise it is logged and counted, and the pass goes on.
        """
        self.start()
        now = self.clock.monotonic()
        while self._heap and self._heap[0][0] <= now:
            _, entry = heapq.heappop(self._heap)
            started = self.clock.monotonic()
            self._push(entry, self._next_due(entry, started))
            if entry.stats.running:
                LOG.debug(
                    "Periodic task %s.%s is still running; skipping this run",
                    self.owner,
                    entry.spec.name,
                )
                continue
            if entry.spec.external_process_ok and not self.run_external:
                continue
            if entry.spec.singleton and not await self._may_run_singleton(entry.spec):
                continue
            await self._run(entry, context, started, raise_on_error=raise_on_error)
        return self.idle_for()

    async def _may_run_singleton(self, spec: PeriodicTaskSpec) -> bool:
        if self._singleton_gate is None:
            return True  # no cluster to share with: this scheduler is the only one
        try:
            allowed = await self._singleton_gate(spec)
        except Exception:
            # Leadership cannot be confirmed (registry away): not running is the safe side.
            LOG.warning(
                "Cannot confirm who runs singleton task %s.%s; skipping this run",
                self.owner,
                spec.name,
                exc_info=True,
            )
            return False
        if not allowed:
            LOG.debug("Singleton task %s.%s runs elsewhere", self.owner, spec.name)
        return allowed

    def _push(self, entry: _Entry, due: float) -> None:
        entry.stats.next_due = due
        heapq.heappush(self._heap, (due, entry))

    def _next_due(self, entry: _Entry, now: float) -> float:
        """Return the first point of the entry's grid after ``now``, plus jitter."""
        interval = entry.interval
        if entry.origin is None:
            entry.origin = now
        boundary = now - ((now - entry.origin) % interval)
        due = boundary + interval
        if due <= now:  # float rounding put the boundary one step behind
            due += interval
        return due + interval * MAX_JITTER * self.jitter()

    async def _run(
        self, entry: _Entry, context: RequestContext, started: float, *, raise_on_error: bool
    ) -> None:
        stats = entry.stats
        LOG.debug("Running periodic task %s.%s", self.owner, entry.spec.name)
        stats.running = True
        stats.runs += 1
        stats.last_started = started
        try:
            with (
                bind(context),
                span(
                    f"periodic:{self.owner}.{entry.spec.name}",
                    kind=SpanKind.INTERNAL,
                    attributes={"steward.periodic_task": entry.spec.name},
                ),
            ):
                if entry.is_async:
                    try:
                        await typing.cast("typing.Awaitable[object]", entry.fn(context))
                    finally:
                        stats.running = False
                else:
                    await self._run_in_thread(entry, context)
        except Exception as exc:
            stats.failures += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"
            if raise_on_error:
                raise
            LOG.exception("Error during %s.%s", self.owner, entry.spec.name)
        else:
            stats.last_error = None
        finally:
            stats.last_duration = self.clock.monotonic() - started

    async def _run_in_thread(self, entry: _Entry, context: RequestContext) -> None:
        try:
            future = in_thread(self._executor, entry.fn, context)
        except BaseException:
            entry.stats.running = False  # never started: no thread will clear it
            raise

        def finished(done: asyncio.Future[object]) -> None:
            # The thread, not the awaiting pass, decides when the task stops running: a pass
            # cancelled mid-task must not let the next pass start a second copy.
            entry.stats.running = False
            if not done.cancelled():
                done.exception()  # retrieved here too, in case the pass was cancelled

        future.add_done_callback(finished)
        self._threads.add(future)
        future.add_done_callback(self._threads.discard)
        await asyncio.shield(future)

    async def wait_threads(self) -> None:
        """Wait until every ``def`` task still running in a thread has returned.

        A cancelled pass stops waiting for its thread, but the thread runs on; a service that
        stops calls this before ``cleanup_host`` so no task outlives it.
        """
        while self._threads:
            await asyncio.wait(set(self._threads))
