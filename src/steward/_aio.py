"""Asyncio helpers: calling user code that may be ``def`` or ``async def``; owned task groups.

Managers override hooks and write periodic tasks either way; the framework awaits both the same
way. Coroutine functions run on the loop; plain functions run in an executor thread (blocking work
never runs on the loop) with the caller's :mod:`contextvars` copied in, so the current
:class:`~steward.context.RequestContext` is visible in both.

:class:`TaskGroup` is where every long-lived task of steward runs: each object that starts
background work (a transport's consumers, an RPC server's requests, a service's loops) owns one,
and closing the object closes its group.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import types
import typing
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor

__all__ = [
    "TASK_STATUS_IGNORED",
    "AsyncClosing",
    "AsyncStarting",
    "TaskGroup",
    "TaskStatus",
    "call_sync_or_async",
    "in_thread",
    "is_async_callable",
    "start",
]

LOG = logging.getLogger(__name__)

_T = typing.TypeVar("_T")


def is_async_callable(fn: Callable[..., object]) -> bool:
    """Return whether calling ``fn`` gives a coroutine (it sees through ``functools.partial``)."""
    return inspect.iscoroutinefunction(fn)


def in_thread(
    executor: Executor | None, fn: Callable[..., object], /, *args: object, **kwargs: object
) -> asyncio.Future[typing.Any]:
    """Run ``fn(*args, **kwargs)`` in ``executor`` with the caller's contextvars copied in.

    Returns the loop's future of the call (``executor`` None: the loop's default executor), as
    :meth:`asyncio.loop.run_in_executor` does; the one place a plain ``def`` of user code goes to
    a thread, so each sees the current :class:`~steward.context.RequestContext`.
    """
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return asyncio.get_running_loop().run_in_executor(executor, call)


async def call_sync_or_async(
    fn: Callable[..., object],
    /,
    *args: object,
    executor: Executor | None = None,
) -> object:
    """Call ``fn(*args)``: await it when it is ``async def``, else run it in ``executor``.

    ``executor`` None means the loop's default executor. The contextvars of the caller are copied
    into the thread, as :func:`asyncio.to_thread` does.
    """
    if is_async_callable(fn):
        result = fn(*args)
        assert inspect.isawaitable(result)  # noqa: S101 - guaranteed by is_async_callable
        return await result
    result = await in_thread(executor, fn, *args)
    if inspect.isawaitable(result):  # a plain def that hands back a coroutine
        return await result
    return result


CrashHandler = Callable[[BaseException], None]
"""Told, at once, of the exception a task of a :class:`TaskGroup` died of."""


class TaskGroup:
    """The tasks one long-lived object owns, closed with it.

    :class:`asyncio.TaskGroup` belongs to the block (and the task) that entered it, and cancels
    that task when a child fails: right for a ``serve()`` coroutine, wrong for a transport or a
    server that outlives the call that started it (a FastAPI lifespan, the first RPC call). This
    group belongs to an object instead, as aiotools' ``PersistentTaskGroup`` does: ``owner``
    names it in logs and task names; a task that dies of an exception is logged at once and
    handed to ``on_crash`` (the owner decides: a listener fails its server, a server fails its
    service). Without ``on_crash``, crashes are kept in :attr:`crashes` and :meth:`aclose`, which
    cancels what still runs and waits for it, raises them: nothing fails unseen. Tasks that end
    normally are simply forgotten.
    """

    def __init__(self, owner: str, *, on_crash: CrashHandler | None = None) -> None:
        self.owner = owner
        self.on_crash = on_crash
        self.crashes: list[BaseException] = []
        self._tasks: set[asyncio.Task[typing.Any]] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called: no task may start any more."""
        return self._closed

    def __len__(self) -> int:
        """Return how many tasks still run."""
        return len(self._tasks)

    def create_task(
        self, coro: Coroutine[typing.Any, typing.Any, _T], *, name: str | None = None
    ) -> asyncio.Task[_T]:
        """Run ``coro`` in this group; raise :class:`RuntimeError` once the group is closed."""
        if self._closed:
            coro.close()  # never awaited: say nothing of it beyond the error
            raise RuntimeError(f"the task group of {self.owner} is closed")
        task = asyncio.get_running_loop().create_task(
            coro, name=f"{self.owner}: {name}" if name else None
        )
        self._tasks.add(task)
        task.add_done_callback(self._on_done)
        return task

    def _on_done(self, task: asyncio.Task[typing.Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        LOG.error("Task %r of %s crashed", task.get_name(), self.owner, exc_info=exc)
        if self.on_crash is not None:
            self.on_crash(exc)
        else:
            self.crashes.append(exc)

    async def wait(self, *, grace_period: float | None = None) -> set[asyncio.Task[typing.Any]]:
        """Wait up to ``grace_period`` seconds (None: for ever) for the tasks; return those left."""
        if not self._tasks:
            return set()
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_period)
        return pending

    async def aclose(self) -> None:
        """Cancel the tasks still running, wait for them, raise what crashed unhandled (once).

        A cancellation of the caller still propagates after the group's tasks are cancelled; a
        second call only waits.
        """
        self._closed = True
        for task in self._tasks:
            task.cancel()
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        crashes, self.crashes = self.crashes, []
        if len(crashes) == 1:
            raise crashes[0]
        if crashes:
            raise BaseExceptionGroup(f"tasks of {self.owner} crashed", crashes)

    def __repr__(self) -> str:
        return f"<TaskGroup of {self.owner}: {len(self._tasks)} tasks>"


class TaskStatus(typing.Protocol):
    """How a ``serve(task_status=...)`` coroutine says it is ready, as trio's ``task_status``."""

    def started(self, value: object = None) -> None:
        """Report readiness (once): the server accepts work from now on."""


class _IgnoredStatus:
    def started(self, value: object = None) -> None:
        """Report readiness to nobody."""


TASK_STATUS_IGNORED: TaskStatus = _IgnoredStatus()
"""The default ``task_status`` of ``serve()``: readiness goes unreported."""


class _FutureStatus:
    def __init__(self, future: asyncio.Future[object]) -> None:
        self._future = future

    def started(self, value: object = None) -> None:
        if self._future.done():
            raise RuntimeError("started() was already called")
        self._future.set_result(value)


class _Spawner(typing.Protocol):
    def create_task(
        self, coro: Coroutine[typing.Any, typing.Any, _T], *, name: str | None = None
    ) -> asyncio.Task[_T]: ...


async def start(
    group: _Spawner,
    serve: Callable[..., Coroutine[typing.Any, typing.Any, object]],
    /,
    *args: object,
    name: str | None = None,
) -> object:
    """Run ``serve(*args, task_status=...)`` in ``group`` and return once it reports it is ready.

    trio's ``nursery.start``: returns the value given to ``task_status.started()``; if ``serve``
    fails or returns before that, raises what it raised (or :class:`RuntimeError`); cancelled
    before that, cancels ``serve`` too. ``group`` is an :class:`asyncio.TaskGroup` or a
    :class:`TaskGroup` (which reports a failure before readiness to its owner as well).
    """
    ready: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    task = group.create_task(serve(*args, task_status=_FutureStatus(ready)), name=name)
    try:
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # As trio's nursery.start: what the caller gave up on before it was ready does not go
        # on without it. (A service cancelled while starting undoes its start.)
        task.cancel()
        await asyncio.wait([task])
        raise
    if ready.done():
        return ready.result()
    ready.cancel()
    if task.cancelled():
        raise asyncio.CancelledError
    exc = task.exception()
    if exc is not None:
        raise exc
    raise RuntimeError(f"{serve.__qualname__} returned without reporting it was ready")


class AsyncClosing:
    """``async with obj:`` closes ``obj`` with its :meth:`aclose` on the way out.

    The one definition of the context-manager half of steward's long-lived objects (transports,
    listeners, notifiers); :class:`AsyncStarting` also starts on the way in (a server, a service).
    """

    async def aclose(self) -> None:
        """Release what the object holds (each subclass's own)."""
        raise NotImplementedError

    async def __aenter__(self) -> typing.Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncStarting(AsyncClosing):
    """``async with obj:`` starts ``obj`` (its :meth:`start`) and closes it on the way out.

    The context-manager half of what serves: an RPC server, a service, a notification listener.
    """

    async def start(self) -> None:
        """Start serving (each subclass's own)."""
        raise NotImplementedError

    async def __aenter__(self) -> typing.Self:
        await self.start()
        return self
