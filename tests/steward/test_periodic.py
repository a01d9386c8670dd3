from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from steward import Manager, RequestContext, periodic_task
from steward.context import get_current
from steward.errors import BindingError, InvalidPeriodicTaskArg, PeriodicTaskError
from steward.manager import ManagerBindings
from steward.periodic import (
    DEFAULT_INTERVAL,
    PeriodicScheduler,
    PeriodicTaskSpec,
    collect_periodic_tasks,
)
from steward.testing import FakeClock

T = TypeVar("T")


def no_jitter() -> float:
    return 0.0


def make(cls: type[Manager], clock: FakeClock) -> Any:
    manager = cls(host="h1", service_name="svc", clock=clock)
    manager.periodic_scheduler.jitter = no_jitter
    return manager


class Recorder(Manager):
    """Records (task name, virtual time) for each run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runs: list[tuple[str, float]] = []

    def record(self, name: str) -> None:
        self.runs.append((name, self.periodic_scheduler.clock.monotonic()))


@pytest.fixture
def ctx() -> RequestContext:
    return RequestContext(request_id="req-periodic")


# --- the decorator ---------------------------------------------------------------------------


def test_decorator_bare_and_with_arguments_record_oslo_arguments() -> None:
    def bare(self: object, context: RequestContext) -> None: ...

    def full(self: object, context: RequestContext) -> None: ...

    assert periodic_task(bare) is bare
    decorated = periodic_task(
        spacing=5, run_immediately=True, name="renamed", external_process_ok=True, enabled=False
    )(full)
    specs = dict(collect_periodic_tasks(type("C", (), {"bare": bare, "full": decorated})))
    assert specs["bare"] == PeriodicTaskSpec("bare", 0, False, False, True)
    assert specs["full"] == PeriodicTaskSpec("renamed", 5, True, True, False)


def test_empty_parentheses_work_unlike_oslo() -> None:
    @periodic_task()
    def task(self: object, context: RequestContext) -> None: ...

    assert collect_periodic_tasks(type("C", (), {"task": task}))[0][1].spacing == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"spacing": "ten"}, "`spacing` must be a number of seconds", id="string"),
        pytest.param({"spacing": True}, "`spacing` must be a number of seconds", id="bool"),
        pytest.param({"spacing": float("nan")}, "`spacing` must be a number", id="nan"),
        pytest.param({"spacing": float("inf")}, "`spacing` must be finite", id="inf"),
        pytest.param({"enabled": "yes"}, "`enabled` must be True or False", id="enabled"),
        pytest.param({"name": ""}, "`name` must be a non-empty string", id="empty-name"),
    ],
)
def test_bad_arguments_raise_invalid_periodic_task_arg(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidPeriodicTaskArg, match=message) as caught:
        periodic_task(**kwargs)
    assert isinstance(caught.value, ValueError)


def test_unknown_argument_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        periodic_task(ticks_between_runs=3)  # type: ignore[call-overload]


# --- scheduling on a fake clock --------------------------------------------------------------


class Default(Recorder):
    @periodic_task
    def every_minute(self, context: RequestContext) -> None:
        self.record("every_minute")


async def test_spacing_zero_means_sixty_seconds_after_start(
    fake_clock: FakeClock, ctx: RequestContext
) -> None:
    manager = make(Default, fake_clock)
    assert await manager.periodic_tasks(ctx) == DEFAULT_INTERVAL
    fake_clock.advance(59.9)
    assert await manager.periodic_tasks(ctx) == pytest.approx(0.1)
    assert manager.runs == []
    fake_clock.advance(0.1)
    assert await manager.periodic_tasks(ctx) == 60
    assert manager.runs == [("every_minute", 1060.0)]


class Never(Recorder):
    @periodic_task(spacing=-1)
    def negative(self, context: RequestContext) -> None:
        self.record("negative")

    @periodic_task(spacing=1, enabled=False)
    def disabled(self, context: RequestContext) -> None:
        self.record("disabled")


async def test_negative_or_disabled_tasks_never_run(
    fake_clock: FakeClock, ctx: RequestContext, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="steward.periodic"):
        manager = make(Never, fake_clock)
    assert manager.periodic_scheduler.names == []
    for _ in range(5):
        assert await manager.periodic_tasks(ctx) == DEFAULT_INTERVAL
        fake_clock.advance(100)
    assert manager.runs == []
    assert "Skipping periodic task Never.negative because its interval is negative" in caplog.text
    assert "Skipping periodic task Never.disabled because it is disabled" in caplog.text


class Immediate(Recorder):
    @periodic_task(spacing=10, run_immediately=True)
    def now(self, context: RequestContext) -> None:
        self.record("now")

    @periodic_task(spacing=10)
    def later(self, context: RequestContext) -> None:
        self.record("later")


async def test_run_immediately_runs_at_first_pass_others_after_spacing(
    fake_clock: FakeClock, ctx: RequestContext
) -> None:
    manager = make(Immediate, fake_clock)
    assert await manager.periodic_tasks(ctx) == 10
    assert manager.runs == [("now", 1000.0)]
    fake_clock.advance(10)
    assert await manager.periodic_tasks(ctx) == 10
    assert manager.runs == [("now", 1000.0), ("now", 1010.0), ("later", 1010.0)]


async def test_first_run_counts_from_scheduler_start_not_class_creation(
    fake_clock: FakeClock, ctx: RequestContext
) -> None:
    manager = make(Immediate, fake_clock)
    fake_clock.advance(500)  # a long time between construction and the service starting
    await manager.periodic_tasks(ctx)
    assert manager.runs == [("now", 1500.0)]
    fake_clock.advance(9.5)
    assert await manager.periodic_tasks(ctx) == pytest.approx(0.5)
    assert [name for name, _ in manager.runs] == ["now"]


class Ten(Recorder):
    @periodic_task(spacing=10)
    def tick(self, context: RequestContext) -> None:
        self.record("tick")


async def test_late_pass_runs_once_and_stays_on_the_grid(
    fake_clock: FakeClock, ctx: RequestContext
) -> None:
    manager = make(Ten, fake_clock)
    await manager.periodic_tasks(ctx)  # schedule starts at 1000: grid 1010, 1020, ...
    fake_clock.set(1035)  # 1010, 1020 and 1030 were missed
    assert await manager.periodic_tasks(ctx) == 5  # next grid point is 1040, not 1045
    assert manager.runs == [("tick", 1035.0)]
    assert await manager.periodic_tasks(ctx) == 5  # no catch-up burst
    fake_clock.set(1040)
    await manager.periodic_tasks(ctx)
    assert manager.runs == [("tick", 1035.0), ("tick", 1040.0)]


async def test_jitter_stays_within_five_percent_and_does_not_accumulate(
    fake_clock: FakeClock, ctx: RequestContext
) -> None:
    manager = make(Ten, fake_clock)
    manager.periodic_scheduler.jitter = lambda: 0.999
    await manager.periodic_tasks(ctx)
    fake_clock.set(1010)
    due_times = []
    for _ in range(50):
        idle = await manager.periodic_tasks(ctx)
        due_times.append(fake_clock.monotonic() + idle)
        fake_clock.advance(idle)
    grid = [1020 + 10 * i for i in range(50)]
    for due, point in zip(due_times, grid, strict=True):
        assert point <= due <= point + 10 * 0.05
    assert len(manager.runs) == 50


class Slow(Recorder):
    @periodic_task(spacing=3600)
    def hourly(self, context: RequestContext) -> None:
        self.record("hourly")


async def test_idle_time_is_never_more_than_sixty_seconds(
    fake_clock: FakeClock, ctx: RequestContext
) -> None:
    manager = make(Slow, fake_clock)
    for _ in range(70):
        idle = await manager.periodic_tasks(ctx)
        assert 0 < idle <= 60
        fake_clock.advance(idle)
    assert manager.runs == [("hourly", 4600.0)]


async def test_no_tasks_idles_sixty_seconds(fake_clock: FakeClock, ctx: RequestContext) -> None:
    assert await make(Recorder, fake_clock).periodic_tasks(ctx) == DEFAULT_INTERVAL


# --- inheritance -----------------------------------------------------------------------------


class Base(Recorder):
    @periodic_task(spacing=10)
    def shared(self, context: RequestContext) -> None:
        self.record("Base.shared")

    @periodic_task(spacing=10)
    def dropped(self, context: RequestContext) -> None:
        self.record("Base.dropped")

    @periodic_task(spacing=10)
    def inherited(self, context: RequestContext) -> None:
        self.record("Base.inherited")


class Child(Base):
    @periodic_task(spacing=20)
    def shared(self, context: RequestContext) -> None:
        self.record("Child.shared")

    def dropped(self, context: RequestContext) -> None:
        """Overridden without the decorator: no longer a task."""

    @periodic_task(spacing=10)
    def own(self, context: RequestContext) -> None:
        self.record("Child.own")


async def test_subclass_overrides_replace_and_undecorated_overrides_remove(
    fake_clock: FakeClock, ctx: RequestContext
) -> None:
    assert [attr for attr, _ in collect_periodic_tasks(Child)] == ["shared", "inherited", "own"]
    manager = make(Child, fake_clock)
    await manager.periodic_tasks(ctx)
    fake_clock.advance(20)
    await manager.periodic_tasks(ctx)
    assert sorted(name for name, _ in manager.runs) == [
        "Base.inherited",
        "Child.own",
        "Child.shared",
    ]
    base = make(Base, fake_clock)
    assert base.periodic_scheduler.names == ["shared", "dropped", "inherited"]


def test_two_tasks_with_one_name_are_an_error() -> None:
    with pytest.raises(PeriodicTaskError, match="two periodic tasks named 'sync'"):

        class Clash(Manager):
            @periodic_task(name="sync")
            def first(self, context: RequestContext) -> None: ...

            @periodic_task(name="sync")
            def second(self, context: RequestContext) -> None: ...


# --- running ---------------------------------------------------------------------------------


class Mixed(Recorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: dict[str, tuple[str, RequestContext | None]] = {}

    @periodic_task(spacing=1, run_immediately=True)
    def blocking(self, context: RequestContext) -> None:
        self.seen["blocking"] = (threading.current_thread().name, get_current())

    @periodic_task(spacing=1, run_immediately=True)
    async def cooperative(self, context: RequestContext) -> None:
        self.seen["cooperative"] = (threading.current_thread().name, get_current())


async def test_sync_tasks_run_in_a_thread_async_on_the_loop_with_context(
    fake_clock: FakeClock, ctx: RequestContext
) -> None:
    manager = make(Mixed, fake_clock)
    await manager.periodic_tasks(ctx)
    loop_thread = threading.current_thread().name
    assert manager.seen["blocking"][0] != loop_thread
    assert manager.seen["cooperative"][0] == loop_thread
    assert manager.seen["blocking"][1] is ctx
    assert manager.seen["cooperative"][1] is ctx


class Failing(Recorder):
    @periodic_task(spacing=10, run_immediately=True)
    def broken(self, context: RequestContext) -> None:
        self.record("broken")
        raise RuntimeError("disk on fire")

    @periodic_task(spacing=10, run_immediately=True)
    async def healthy(self, context: RequestContext) -> None:
        self.record("healthy")


async def test_one_failing_task_is_logged_and_the_others_run(
    fake_clock: FakeClock, ctx: RequestContext, caplog: pytest.LogCaptureFixture
) -> None:
    manager = make(Failing, fake_clock)
    with caplog.at_level(logging.ERROR, logger="steward.periodic"):
        assert await manager.periodic_tasks(ctx) == 10
    assert [name for name, _ in manager.runs] == ["broken", "healthy"]
    (record,) = caplog.records
    assert record.getMessage() == "Error during Failing.broken"
    assert record.exc_info is not None
    assert "disk on fire" in caplog.text
    stats = {s.name: s for s in manager.periodic_scheduler.stats()}
    assert stats["broken"].failures == 1
    assert stats["broken"].last_error == "RuntimeError: disk on fire"
    assert stats["healthy"].failures == 0
    assert stats["healthy"].runs == 1


async def test_raise_on_error_propagates_and_leaves_the_rest_due(
    fake_clock: FakeClock, ctx: RequestContext
) -> None:
    manager = make(Failing, fake_clock)
    with pytest.raises(RuntimeError, match="disk on fire"):
        await manager.periodic_tasks(ctx, raise_on_error=True)
    assert [name for name, _ in manager.runs] == ["broken"]
    assert await manager.periodic_tasks(ctx) == 10
    assert [name for name, _ in manager.runs] == ["broken", "healthy"]


class Blocking(Recorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.active = 0
        self.max_active = 0

    @periodic_task(spacing=1, run_immediately=True)
    async def long(self, context: RequestContext) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.started.set()
        try:
            await self.release.wait()
        finally:
            self.active -= 1
        self.record("long")


async def test_a_task_never_overlaps_itself(fake_clock: FakeClock, ctx: RequestContext) -> None:
    manager = make(Blocking, fake_clock)
    first = asyncio.create_task(manager.periodic_tasks(ctx))
    await manager.started.wait()
    for _ in range(3):
        fake_clock.advance(5)  # due again while the first run is still going
        await manager.periodic_tasks(ctx)
    assert manager.max_active == 1
    manager.release.set()
    await first
    assert manager.max_active == 1
    assert len(manager.runs) == 1
    fake_clock.advance(5)
    await manager.periodic_tasks(ctx)
    assert len(manager.runs) == 2


class ThreadBlocking(Recorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls = 0

    @periodic_task(spacing=1, run_immediately=True)
    def long(self, context: RequestContext) -> None:
        self.calls += 1
        self.started.set()
        self.release.wait(timeout=30)


async def test_a_cancelled_pass_does_not_let_a_thread_task_start_twice(
    fake_clock: FakeClock, ctx: RequestContext
) -> None:
    manager = make(ThreadBlocking, fake_clock)
    first = asyncio.create_task(manager.periodic_tasks(ctx))
    await asyncio.to_thread(manager.started.wait, 30)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    fake_clock.advance(5)
    await manager.periodic_tasks(ctx)
    assert manager.calls == 1, "the thread still runs the first call"
    manager.release.set()
    await manager.periodic_scheduler.wait_threads()
    assert not manager.periodic_scheduler.stats()[0].running
    fake_clock.advance(5)
    await manager.periodic_tasks(ctx)
    assert manager.calls == 2


class External(Recorder):
    @periodic_task(spacing=10, run_immediately=True, external_process_ok=True)
    def elsewhere(self, context: RequestContext) -> None:
        self.record("elsewhere")


async def test_external_tasks_skip_while_run_external_is_off(
    fake_clock: FakeClock, ctx: RequestContext
) -> None:
    manager = make(External, fake_clock)
    manager.periodic_scheduler.run_external = False
    assert await manager.periodic_tasks(ctx) == 10
    assert manager.runs == []
    manager.periodic_scheduler.run_external = True
    fake_clock.advance(10)
    await manager.periodic_tasks(ctx)
    assert manager.runs == [("elsewhere", 1010.0)]


# --- cost ------------------------------------------------------------------------------------


class CountingClock(FakeClock):
    def __init__(self) -> None:
        super().__init__(start=0.0)
        self.reads = 0

    def monotonic(self) -> float:
        self.reads += 1
        return super().monotonic()


async def noop(context: RequestContext) -> None:
    return None


@pytest.mark.parametrize("count", [10, 10_000])
async def test_an_idle_pass_does_not_look_at_every_task(count: int, ctx: RequestContext) -> None:
    clock = CountingClock()
    tasks = [(PeriodicTaskSpec(f"t{i}", 60 + i, False, False, True), noop) for i in range(count)]
    scheduler = PeriodicScheduler(tasks, clock=clock, jitter=no_jitter)
    scheduler.start()
    clock.reads = 0
    await scheduler.run_due(ctx)
    # Two clock reads, whatever the number of tasks: the heap top is all a pass looks at.
    assert clock.reads == 2
    clock.advance(60.5)
    clock.reads = 0
    await scheduler.run_due(ctx)
    assert clock.reads == 2 + 2  # one due task: one read to start it, one for its duration


class Broken(Recorder):
    @periodic_task(spacing=1, run_immediately=True)
    def work(self, context: RequestContext) -> None:
        self.record("work")


async def test_a_task_that_cannot_be_submitted_is_not_left_running(
    fake_clock: FakeClock, ctx: RequestContext
) -> None:
    manager = make(Broken, fake_clock)
    executor = RefusesFirstTask()
    manager.bind(ManagerBindings(executor=executor))
    try:
        await manager.periodic_tasks(ctx)
        (stats,) = manager.periodic_scheduler.stats()
        assert stats.running is False
        assert stats.failures == 1
        assert stats.last_error is not None
        assert "shutdown" in stats.last_error
        fake_clock.advance(1)
        await manager.periodic_tasks(ctx)
        assert manager.runs == [("work", 1001.0)]
    finally:
        executor.shutdown()


class RefusesFirstTask(ThreadPoolExecutor):
    """An executor that refuses its first task, as one that is shut down does."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.refused = False

    def submit(
        self, fn: Callable[..., T], /, *args: object, **kwargs: object
    ) -> concurrent.futures.Future[T]:
        if not self.refused:
            self.refused = True
            raise RuntimeError("cannot schedule new futures after shutdown")
        return super().submit(fn, *args, **kwargs)


# --- bind: the executor and singleton gate of whoever runs the tasks ----------------------------


def singleton_spec(name: str = "sweep") -> PeriodicTaskSpec:
    return PeriodicTaskSpec(
        name=name, spacing=10, run_immediately=True, external_process_ok=False, enabled=True,
        singleton=True,
    )  # fmt: skip


async def test_bind_gives_the_scheduler_its_executor_and_singleton_gate(
    fake_clock: FakeClock, ctx: RequestContext
) -> None:
    ran: list[str] = []
    asked: list[str] = []

    async def gate(spec: PeriodicTaskSpec) -> bool:
        asked.append(spec.name)
        return spec.name == "mine"

    def work(context: RequestContext) -> None:
        ran.append(threading.current_thread().name)

    async def other(context: RequestContext) -> None:
        ran.append("other")

    scheduler = PeriodicScheduler(
        [(singleton_spec("mine"), work), (singleton_spec("theirs"), other)],
        clock=fake_clock, jitter=no_jitter,
    )  # fmt: skip
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bound") as executor:
        scheduler.bind(executor=executor, singleton_gate=gate)
        assert (scheduler.executor, scheduler.singleton_gate) == (executor, gate)
        await scheduler.run_due(ctx)
    assert asked == ["mine", "theirs"]
    assert len(ran) == 1
    assert ran[0].startswith("bound")


def test_bind_without_values_keeps_what_the_constructor_was_given() -> None:
    async def gate(spec: PeriodicTaskSpec) -> bool:
        return True

    with ThreadPoolExecutor(max_workers=1) as executor:
        scheduler = PeriodicScheduler([], executor=executor, singleton_gate=gate)
        scheduler.bind()
        assert (scheduler.executor, scheduler.singleton_gate) == (executor, gate)


def test_a_scheduler_is_bound_once_and_before_it_starts() -> None:
    bound = PeriodicScheduler([], owner="Volume")
    bound.bind()
    with pytest.raises(BindingError, match="Volume already has its executor"):
        bound.bind()
    started = PeriodicScheduler([], owner="Volume")
    started.start()
    with pytest.raises(BindingError, match="has started running tasks; call bind"):
        started.bind()
