"""Periodic task scheduler: cost of one pass, steward against oslo.service, same task set.

For 10, 1,000 and 10,000 registered tasks, with spacings spread evenly over 60..3600 s, each
side runs passes back to back and the figure is microseconds per pass:

* **oslo** - a ``PeriodicTasks`` subclass built with ``type()``, its methods decorated with
  ``oslo_service.periodic_task.periodic_task(spacing=S)``; a pass is ``run_periodic_tasks(ctx)``.
  Its tasks are plain ``def``, called inline.
* **steward def** / **steward async** - a :class:`steward.Manager` subclass built the same way with
  ``@steward.periodic_task(spacing=S)``; a pass is ``await manager.periodic_tasks(ctx)``. steward
  runs ``def`` tasks in the loop's default executor and ``async def`` tasks on the loop, so both
  are measured.

Every task only counts its runs (``self.runs += 1``, the same on each side), which gives the
*runs/pass* column: proof that both sides did the same work. Two scenarios:

* **idle** - no task is due: the common pass. Real clocks on both sides (nothing is due for the
  first 60 s, and a figure takes under 2 s). oslo looks at every task; steward peeks at its heap.
* **1% due** - fake clocks: before each pass the clock moves on so that 1% of the tasks are due
  per pass on average. Each side first runs one untimed pass at t = 3600 s in which every task
  runs, so the timed passes see the steady state, not the first hour's quieter schedule; then
  every side runs the same number of passes, so all see the same virtual times.

Logging is silenced for the run (oslo logs each task it runs at DEBUG).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import logging
import time
import typing
from collections.abc import Callable, Coroutine, Iterator

import steward
from benchmarks._report import Column, Row, Table
from benchmarks._timing import FULL, QUICK, Budget, acalibrate, ameasure, calibrate, measure
from steward.testing import FakeClock

__all__ = ["DESCRIPTION", "NAME", "SIZES", "run", "spacings"]

NAME = "periodic"
DESCRIPTION = (
    "Periodic scheduler: µs per pass with 10-10,000 tasks, steward's heap vs "
    "oslo.service's PeriodicTasks.run_periodic_tasks (idle and 1% due)"
)

SIZES = (10, 1_000, 10_000)
"""Numbers of registered tasks."""

QUICK_SIZES = (10, 1_000)

SPACING_MIN = 60
SPACING_MAX = 3600
DUE_FRACTION = 0.01
"""Fraction of the tasks due per pass in the ``due`` scenario, on average."""

Scenario = typing.Literal["idle", "due"]
Side = typing.Literal["oslo", "steward def", "steward async"]

_SCENARIO_TITLES: dict[Scenario, str] = {
    "idle": "Periodic pass, no task due (µs per pass; ratio = oslo / steward)",
    "due": "Periodic pass, ~1% of tasks due (µs per pass; ratio = oslo / steward)",
}


def spacings(count: int) -> list[int]:
    """Return ``count`` spacings in seconds, spread evenly over 60..3600."""
    if count == 1:
        return [SPACING_MIN]
    return [SPACING_MIN + i * (SPACING_MAX - SPACING_MIN) // (count - 1) for i in range(count)]


def seconds_per_pass(count: int) -> float:
    """Return how far the clock moves per pass so :data:`DUE_FRACTION` of ``count`` tasks run.

    A task of spacing ``s`` runs ``dt / s`` times per ``dt`` seconds, so the tasks run
    ``dt * sum(1 / s)`` times per pass. The 0-5 % jitter both schedulers add makes it a little less.
    """
    return DUE_FRACTION * count / sum(1 / spacing for spacing in spacings(count))


# --- The task set -------------------------------------------------------------------------------


class _Counting(typing.Protocol):
    runs: int


def _def_task(name: str) -> Callable[[_Counting, object], None]:
    def task(self: _Counting, context: object) -> None:
        self.runs += 1

    task.__name__ = task.__qualname__ = name
    return task


def _async_task(name: str) -> Callable[[_Counting, object], Coroutine[object, object, None]]:
    async def task(self: _Counting, context: object) -> None:
        self.runs += 1

    task.__name__ = task.__qualname__ = name
    return task


def _task_names(count: int) -> list[str]:
    return [f"task_{index:05d}" for index in range(count)]


def build_steward_manager(
    count: int, *, asynchronous: bool, clock: FakeClock | None = None
) -> steward.Manager:
    """Return a manager of ``count`` periodic tasks (``async def`` if ``asynchronous``).

    ``clock`` None is the real clock. The tasks are public methods, so like any manager method
    they carry steward's tracing wrapper (off: one global read and one call per run).
    """
    make = _async_task if asynchronous else _def_task
    namespace: dict[str, object] = {"runs": 0}
    for name, spacing in zip(_task_names(count), spacings(count), strict=True):
        namespace[name] = steward.periodic_task(spacing=spacing)(make(name))
    kind = "Async" if asynchronous else "Def"
    cls = typing.cast(
        "type[steward.Manager]", type(f"Steward{kind}Tasks{count}", (steward.Manager,), namespace)
    )
    return cls(host="bench", clock=clock)


def build_oslo_tasks(count: int) -> typing.Any:  # noqa: ANN401 - oslo.service is untyped
    """Return an oslo.service ``PeriodicTasks`` instance of ``count`` plain ``def`` tasks.

    oslo counts a task's first run from when it was decorated (``now()`` at import time in a real
    service), so build it right before measuring, with its clock already where it should be.
    """
    from oslo_config import cfg
    from oslo_service import periodic_task as oslo_periodic

    namespace: dict[str, object] = {"runs": 0}
    for name, spacing in zip(_task_names(count), spacings(count), strict=True):
        namespace[name] = oslo_periodic.periodic_task(spacing=spacing)(_def_task(name))
    cls = type(f"OsloTasks{count}", (oslo_periodic.PeriodicTasks,), namespace)
    conf = cfg.ConfigOpts()
    conf(args=[])
    return cls(conf)


# --- Measuring ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Figure:
    """One side's result for one size and scenario."""

    seconds_per_pass: float
    runs_per_pass: float
    spread: float
    """(slowest - fastest round) / median round."""


class OsloPasses:
    """Passes of oslo.service's ``run_periodic_tasks`` over ``count`` tasks, as a timing batch.

    Scenario ``idle`` reads the real clock. Scenario ``due`` reads a FakeClock of its own, moved
    :func:`seconds_per_pass` before each pass, after one untimed pass at t = 3600 s in which
    every task runs.
    """

    def __init__(self, count: int, scenario: Scenario) -> None:
        from oslo_service import periodic_task as oslo_periodic

        self._module = oslo_periodic
        self._context = steward.RequestContext()
        self._clock = FakeClock() if scenario == "due" else None
        self._step = seconds_per_pass(count)
        with self._clock_installed():  # the decorator reads the clock: first runs count from it
            self._tasks = build_oslo_tasks(count)
        self._caught_up = self._clock is None
        self._passes = 0

    @property
    def runs_per_pass(self) -> float:
        """Task runs per pass so far, the catching-up pass left out."""
        runs: int = self._tasks.runs
        return runs / self._passes if self._passes else 0.0

    @contextlib.contextmanager
    def _clock_installed(self) -> Iterator[None]:
        """Make oslo.service's periodic_task module read this object's clock, then restore it.

        Benchmark only. The module reads time through its global ``now`` (``from time import
        monotonic as now``) and takes no clock, so the global is swapped around each batch.
        oslo reads it once per task per pass; FakeClock.monotonic costs less than the real
        time.monotonic here (~20 ns against ~40 ns), which flatters oslo, never steward.
        """
        if self._clock is None:
            yield
            return
        saved = self._module.now
        self._module.now = self._clock.monotonic
        try:
            yield
        finally:
            self._module.now = saved

    def __call__(self, number: int) -> float:
        """Run ``number`` passes; return the seconds they took."""
        run_periodic_tasks, context = self._tasks.run_periodic_tasks, self._context
        with self._clock_installed():
            if self._clock is None:
                started = time.perf_counter()
                for _ in range(number):
                    run_periodic_tasks(context)
                elapsed = time.perf_counter() - started
            else:
                if not self._caught_up:
                    self._clock.set(SPACING_MAX)
                    run_periodic_tasks(context)
                    self._tasks.runs = 0
                    self._caught_up = True
                advance, step = self._clock.advance, self._step
                started = time.perf_counter()
                for _ in range(number):
                    advance(step)
                    run_periodic_tasks(context)
                elapsed = time.perf_counter() - started
        self._passes += number
        return elapsed


class StewardPasses:
    """Passes of ``await manager.periodic_tasks(ctx)`` over ``count`` tasks, as a timing batch.

    The same scenarios as :class:`OsloPasses`: the real clock for ``idle``; for ``due`` a
    FakeClock given to the manager, moved the same way.
    """

    def __init__(self, count: int, scenario: Scenario, *, asynchronous: bool) -> None:
        self._context = steward.RequestContext()
        self._clock = FakeClock() if scenario == "due" else None
        self._step = seconds_per_pass(count)
        self.manager = build_steward_manager(count, asynchronous=asynchronous, clock=self._clock)
        # Anchor the schedule now, as oslo's decorator does: first runs count from here.
        self.manager.periodic_scheduler.start()
        self._counter = typing.cast("_Counting", self.manager)
        self._caught_up = self._clock is None
        self._passes = 0

    @property
    def runs_per_pass(self) -> float:
        """Task runs per pass so far, the catching-up pass left out."""
        return self._counter.runs / self._passes if self._passes else 0.0

    async def __call__(self, number: int) -> float:
        """Run ``number`` passes; return the seconds they took."""
        periodic_tasks, context = self.manager.periodic_tasks, self._context
        if self._clock is None:
            started = time.perf_counter()
            for _ in range(number):
                await periodic_tasks(context)
            elapsed = time.perf_counter() - started
        else:
            if not self._caught_up:
                self._clock.set(SPACING_MAX)
                await periodic_tasks(context)
                self._counter.runs = 0
                self._caught_up = True
            advance, step = self._clock.advance, self._step
            started = time.perf_counter()
            for _ in range(number):
                advance(step)
                await periodic_tasks(context)
            elapsed = time.perf_counter() - started
        self._passes += number
        return elapsed


def measure_sides(
    count: int, scenario: Scenario, budget: Budget, *, with_oslo: bool
) -> dict[Side, Figure | None]:
    """Measure each side on a fresh task set of ``count`` tasks; oslo's is None without oslo.

    In the ``due`` scenario every side runs the same number of passes, calibrated once on a
    throwaway task set of the slowest side, so all of them see the same virtual times and run
    the same tasks: the schedule is not uniform over time, and unequal windows would give them
    unequal work.
    """
    number: int | None = None
    if scenario == "due":
        if with_oslo:
            number = calibrate(OsloPasses(count, scenario), budget)
        else:
            probe = StewardPasses(count, scenario, asynchronous=False)
            number = asyncio.run(acalibrate(probe, budget))
    figures: dict[Side, Figure | None] = {"oslo": None}
    if with_oslo:
        oslo = OsloPasses(count, scenario)
        timing = measure(oslo, budget, number=number)
        figures["oslo"] = Figure(timing.median, oslo.runs_per_pass, timing.spread)
    sides: tuple[tuple[Side, bool], ...] = (("steward def", False), ("steward async", True))
    for side, asynchronous in sides:
        passes = StewardPasses(count, scenario, asynchronous=asynchronous)
        timing = asyncio.run(ameasure(passes, budget, number=number))
        figures[side] = Figure(timing.median, passes.runs_per_pass, timing.spread)
    return figures


def _oslo_available() -> bool:
    return importlib.util.find_spec("oslo_service") is not None


@contextlib.contextmanager
def _logging_disabled() -> Iterator[None]:
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


def _row(count: int, scenario: Scenario, figures: dict[Side, Figure | None]) -> Row:
    def micros(side: Side) -> float | None:
        figure = figures[side]
        return None if figure is None else figure.seconds_per_pass * 1e6

    def runs(side: Side) -> float | None:
        figure = figures[side]
        return None if figure is None else figure.runs_per_pass

    def spread(side: Side) -> float | None:
        figure = figures[side]
        return None if figure is None else figure.spread

    def ratio(side: Side) -> float | None:
        oslo, other = figures["oslo"], figures[side]
        if oslo is None or other is None:
            return None
        return oslo.seconds_per_pass / other.seconds_per_pass

    return {
        "tasks": count,
        "clock_step_s": seconds_per_pass(count) if scenario == "due" else None,
        "runs_per_pass": runs("steward async"),
        "oslo_runs_per_pass": runs("oslo"),
        "steward_def_runs_per_pass": runs("steward def"),
        "oslo_us": micros("oslo"),
        "steward_def_us": micros("steward def"),
        "steward_async_us": micros("steward async"),
        "ratio_def": ratio("steward def"),
        "ratio_async": ratio("steward async"),
        "oslo_spread": spread("oslo"),
        "steward_def_spread": spread("steward def"),
        "steward_async_spread": spread("steward async"),
    }


def _table(scenario: Scenario) -> Table:
    return Table(
        name=scenario,
        title=_SCENARIO_TITLES[scenario],
        columns=(
            Column("tasks", "tasks", "count"),
            Column("clock_step_s", "clock step", "time", "s", show=False),
            Column("runs_per_pass", "runs/pass", "count", show=scenario == "due"),
            Column("oslo_runs_per_pass", "oslo runs/pass", "count", show=False),
            Column("steward_def_runs_per_pass", "def runs/pass", "count", show=False),
            Column("oslo_us", "oslo.service", "time", "µs"),
            Column("steward_def_us", "steward def", "time", "µs"),
            Column("steward_async_us", "steward async", "time", "µs"),
            Column("ratio_def", "oslo / def", "ratio"),
            Column("ratio_async", "oslo / async", "ratio"),
            Column("oslo_spread", "oslo spread", "ratio", show=False),
            Column("steward_def_spread", "def spread", "ratio", show=False),
            Column("steward_async_spread", "async spread", "ratio", show=False),
        ),
    )


def run(*, quick: bool) -> list[Table]:
    """Measure both scenarios at every size; one table per scenario."""
    budget, sizes = (QUICK, QUICK_SIZES) if quick else (FULL, SIZES)
    with_oslo = _oslo_available()
    tables = {scenario: _table(scenario) for scenario in _SCENARIO_TITLES}
    with _logging_disabled():
        for scenario, table in tables.items():
            for count in sizes:
                figures = measure_sides(count, scenario, budget, with_oslo=with_oslo)
                table.rows.append(_row(count, scenario, figures))
    steps = ", ".join(f"{seconds_per_pass(count):.2f} s" for count in sizes)
    tables["due"].notes.append(
        f"Clock step per pass: {steps}. Every side runs the same passes at the same virtual "
        "times; runs/pass is task runs per pass (each side's count is in the JSON)."
    )
    for table in tables.values():
        table.notes.append(
            "Ratio > 1: steward's pass is that many times cheaper. def tasks run in an executor "
            "thread, async ones on the loop; oslo's run inline."
        )
        if not with_oslo:
            table.notes.append("oslo.service is not installed: pip install -e '.[bench]'.")
    return list(tables.values())
